"""The training-free engine v2: dense charts, a fold-free surround, full-resolution sampling of the
ORIGINAL exemplar photo, and real compositing.

    face chart (FaceMesh piecewise-affine)  ─┐
    silhouettes (selfie segmentation)        ├─ person map: chart inside, harmonic surround outside
    frame                                    ┘     (snapped to the exemplar's silhouette), unfolded
    exemplar minus its person ── PatchMatch completion ── background map (frame to frame)
    person regions the exemplar does not show ── PatchMatch completion from the person's own texture
    ── both sampled from the original photo ── multi-band blend by the input's silhouette

No learned parameters. It refuses pairs it cannot do (no face on either side for the face task)
with a message naming what is missing, unless ``allow_partial``.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import cv2
import numpy as np
import torch

from core.charts.base import ChartMap
from core.charts.body import PART_ID as BODY_PART_ID
from core.charts.body import body_chart
from core.charts.body import decorations as body_decorations
from core.charts.face import corresponding_points, face_chart, face_points
from core.charts.folds import fold_fraction, jacobian_determinant, unfold
from core.charts.masks import FACE_REGION as MASK_FACE_REGION
from core.charts.masks import class_index_map as mask_class
from core.charts.masks import labelled as mask_labelled
from core.charts.masks import layered as mask_layered
from core.charts.masks import mask_chart
from core.charts.masks import person_shown as mask_person_shown
from core.charts.masks import solid as mask_solid
from core.charts.masks import whole_face as mask_face_whole
from core.charts.mirror import mirror_condition, uses_mirror
from core.charts.scene import follow, match_scene
from core.charts.surround import FRAME_WEIGHT, apply_affine, fit_similarity, surround_map
from core.compose import blend, complete, front_layer, photo_level, sample, sample_votes
from core.conditions.ade20k import PERSON
from core.conditions.condition import Condition
from core.conditions.detectors import person_mask
from core.detail import add_detail, add_edges, detail_region
from core.environment import reuse_heap, torch_threads
from core.errors import InputError, NoSubjectError
from core.imageio import disc, fit_geometry, to_tensor
from core.limits import check_choice
from core.patchmatch import LevelMatch
from core.person_layer import exemplar_outline, held_past_frame, outline_background
from core.protocol import EngineOutput, Progress
from core.vocabulary import TRAINING_FREE, shown

CHARTS = {"face": face_chart, "pose": body_chart, "mask": mask_chart}
V2_TASKS = tuple(CHARTS)  # tasks v2 can run
# Tasks where v2 is the default (v1 stays on request, ``version=1``): masks (better than v1 on every
# cross-identity pair, docs/engine.md) and pose (hidden limbs get stand-ins, video frames are v2's too).
V2_DEFAULT = ("face", "pose", "mask")
JOINT_KEEP = 0.02  # pose: the body chart stays exact within this (times the longer side) of a found joint
PLAIN_SOURCE = 0.3  # pose: the person's fill copies only its plain clothing when that is this share of what it may copy
# Masks: the input's outline snaps onto the exemplar person's within this times the face's side, and the
# output's frame is not pulled into the exemplar's. Silhouettes of other shapes (a bent, full-length figure
# onto a portrait) have their nearest outline points anywhere, and a body larger than the exemplar's frame
# squeezed towards it: snapped from a whole face away and pulled in, the painted cameraman's neck stretched
# into streaks and 1.9 % of his map folded (docs/engine.md, "The painted cameraman"). What lies beyond the
# exemplar's frame is filled from its clothing instead.
MASK_REACH = 0.25
RIM = 0.03  # the input's silhouette past the exemplar's person, up to this times the person's side, shows background
HOLE_MARGIN = 0.03  # the exemplar's person hole in its backdrop: the silhouette dilated (and closed) by this x its side
ZOOM_WARN = 2.0  # warn when the exemplar's pixels are enlarged more than this
# Refuse a face exemplar whose face would be enlarged more than this (unless allow_partial): a 40 px face
# blown up ~7x is a smear no detail synthesis rescues (docs/engine.md, faces on hard exemplars).
ZOOM_REFUSE = 5.0
# The person/background seam is an object's outline: one band (the feathered alpha). A multi-band blend
# spreads a dark person's low frequencies ~10 px into a bright background: a halo, arms like shadows.
SEAM_BANDS = 0
# Tasks whose backgrounds are completed along the level structures beside the hole (compose.complete's
# ``follow``): whole figures, where wide stretches of backdrop are completed behind the exemplar's person
# (mask coherence mean 1.263 -> 1.263, the launch-pad "tripod" gone; pose 1.050 -> 1.048). Face framings are
# close: there it measured 1.181 -> 1.190 (three Grace Hopper exemplar pairs +0.02-0.04): isotropic guess.
FOLLOW_TASKS = ("mask", "pose")
# Tasks whose exemplar background is matched in CIELab on the completion's coarser levels (compose.complete's
# ``perceptual``): where the completion's navy and light-blue zones meet, RGB matching drew a red line down the
# seam from a flag's red-and-white stripe edge (the app's painted cameraman onto Grace Hopper). Mask only: pose's
# astronaut/mirrored -> grace_hopper rose 1.130 -> 1.155 (mask's pairs within 0.01, mean 1.133 -> 1.130).
# docs/engine.md, eighth session, engineer C.
PERCEPTUAL_TASKS = ("mask",)
# Tasks whose exemplar background (its person's hole) is stitched from a few dominant shifts of the picture, the
# completion's own offsets one more label (compose.complete's ``stitched``, core/stitch.py): a flag's stars and
# stripes go on where the completion leaves a flat navy mass. None by default: it looks better on Grace Hopper's
# flag, but the coherence of every mask pair and of the Grace Hopper face pairs rose (mask mean 1.130 -> 1.158,
# face 1.103 -> 1.121). docs/engine.md, ninth session, engineer C.
STITCHED_TASKS: tuple[str, ...] = ()
# Tasks whose exemplar background is completed in layers (compose.complete's ``layers``: a level edge beside
# the person, a table top or a horizon, splits the hole, each side filled from its own side). None by
# default: tables and horizons look continued, but one cross pair rose more than noise in each task (mask
# astronaut/rotated -> cameraman +0.023, grace_hopper/zoomed-out -> astronaut/oil +0.031; pose astronaut ->
# cameraman +0.017, though the pose mean fell 1.035 -> 1.028). docs/engine.md, seventh session, engineer C.
LAYER_TASKS: tuple[str, ...] = ()
DETAIL = True  # face: add the exemplar's fine detail where the map enlarges it (core/detail.py)
EDGES = True  # face: steeper edges where the map enlarges it, from the photo's own smaller scales (core/detail.py)
# The exemplar background's completion runs in this thread beside the person's (two independent PatchMatch
# completions, each its own seeded generator: the same fills, and the second core busy).
_BESIDE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warpaint-completion")
# torch's intra-op threads in each of the engine's two threads (the thread beside starts inside the engine's
# scope, so with the same setting): its tensors are small (the completions work at 128 px) and the two threads
# already fill 2 cores, so a team of 2 on each only waits (docs/engine.md, "Engine v2 speed (fifth session)").
ENGINE_THREADS = 1
MIRROR_NOTE = ("The exemplar is used mirrored (it mirrors the input's scene, or its face is turned the other way); "
               "any text it shows is mirrored too (the mirror setting 'never' keeps it as given).")


def fold_message(folded: float) -> list[str]:
    """The note on the map's smoothed fold-overs, said from 0.01 % (as printed): "0.00 %" reads like a fault."""
    return [f"{folded:.2%} of the map folded over and was smoothed."] if folded >= 5e-5 else []


def _layer_tasks(tasks: object) -> tuple[str, ...]:
    """``completion_layers`` as a tuple of FOLLOW_TASKS names: one name is taken whole ("pose", not its
    letters); anything else is refused with the allowed names."""
    if isinstance(tasks, str):
        tasks = (tasks,)
    if not isinstance(tasks, (tuple, list, set, frozenset)):
        listed = ", ".join(repr(t) for t in FOLLOW_TASKS)
        raise InputError(f"completion_layers must be a list of task names (of {listed}); got {shown(tasks)}.")
    return tuple(check_choice("completion_layers task", task, FOLLOW_TASKS) for task in tasks)


class TrainingFreeEngineV2:
    """Charts + surround + compositing; stateless apart from its settings. Follows the engine
    protocol (core/protocol.py); ``allow_partial`` is its own per-call argument."""

    name = TRAINING_FREE  # the default training-free engine (v1 stays as ``version=1``)
    version = 2
    stride = 32  # output sides are rounded down to a multiple of this (as v1: same sizes either way)
    resolution = 512  # the default output side
    iterations = 0  # no PatchMatch iterations of its own (callers that read v1's setting get 0)

    def __init__(self, completion_side: int = 128, seam_sigma: float = 1.5,
                 completion_layers: Sequence[str] = LAYER_TASKS):
        self.completion_side = completion_side  # working size of the PatchMatch completion
        # the tasks whose exemplar background is completed in layers (of FOLLOW_TASKS; LAYER_TASKS)
        self.completion_layers = _layer_tasks(completion_layers)
        self.seam_sigma = seam_sigma  # feather of the person's edge (output pixels) before multi-band blending
        self._backgrounds = CompletedBackgrounds()  # a video's frames share one exemplar: completed once a clip

    @torch.no_grad()
    def __call__(self, sources: Sequence[Condition], exemplar: torch.Tensor,
                 exemplar_conditions: Sequence[Condition], *, iterations: int | None = None,
                 temperature: float | None = None, seed: int = 0, progress: Progress | None = None,
                 allow_partial: bool = False, mirror: str = "auto", **_: object) -> EngineOutput:
        """``sources`` at the output size (H, W); ``exemplar_conditions`` at their own working sizes,
        carrying their photo (``.image``) and, for full resolution, the original (``.photo``).
        ``exemplar`` (the fitted view, for the protocol), ``iterations`` and ``temperature`` are unused:
        nothing here is matched iteratively. ``mirror``: use the exemplar mirrored when it mirrors the
        input's scene or its face is turned the other way ("auto"), never, or "always" (``MIRROR_MODES``)."""
        n = len(sources)
        if len(exemplar_conditions) != n:
            raise ValueError("one source and one exemplar condition per item")

        def item_progress(i: int) -> Progress | None:
            return None if progress is None else lambda f, text: progress((i + f) / n, text)

        with torch_threads(ENGINE_THREADS), reuse_heap():  # many same-sized temporaries: heap pages reused
            return EngineOutput.concat([self.one(src, ex, allow_partial=allow_partial, mirror=mirror,
                                                 progress=item_progress(i))
                                        for i, (src, ex) in enumerate(zip(sources, exemplar_conditions))])

    def one(self, source: Condition, exemplar: Condition, *, allow_partial: bool = False, mirror: str = "auto",
            progress: Progress | None = None) -> EngineOutput:
        """One item (see ``__call__``)."""
        report = progress or (lambda fraction, text: None)
        if exemplar.image is None:
            raise InputError("The exemplar must be a photo (or a Condition extracted from one, with its image).")
        task = source.task
        if task not in V2_TASKS:
            raise InputError(f"The training-free engine v2 has no charts for the {task} task.")
        t0 = time.perf_counter()
        seconds: dict[str, float] = {}
        messages: list[str] = []
        size = source.size
        # A mirror image of the input's scene, or a face turned the other way: the exemplar is used mirrored
        # (the map is built on its mirror image; positions are reported in the exemplar as given).
        # A mask pair "auto": only a face turned the other way (core.charts.mirror.face_turned_other_way).
        mirrored = uses_mirror(mirror, source, exemplar)
        if mirrored:
            exemplar = mirror_condition(exemplar)
            messages.append("The exemplar is used mirrored, as asked." if mirror == "always" else MIRROR_NOTE)
        photo = exemplar.photo if exemplar.photo is not None else exemplar.image
        ex_size = exemplar.size

        # 1. Charts and silhouettes.
        report(0.05, f"{task} charts")
        chart = CHARTS[task](source, exemplar, allow_partial=allow_partial)
        messages += chart.notes
        if chart.missing:
            messages.append(f"The exemplar lacks: {', '.join(chart.missing)} (filled from nearby texture).")
        src_person, ex_person, protect = _subjects(task, source, exemplar, chart)
        stand_in = chart.stand_in if chart.stand_in is not None else np.zeros(size, bool)
        seconds["charts"] = time.perf_counter() - t0

        # 2. The person map: the chart inside, a harmonic surround outside, no folds.
        t = time.perf_counter()
        report(0.25, "mapping the surroundings (silhouettes, frame)")
        similarity = _similarity(task, source, exemplar, chart, size, ex_size)
        if src_person is None:  # a sketch: the exemplar's silhouette carried over by the similarity; where the
            # exemplar's frame cuts its person (shoulders at the bottom edge), the person goes on past it
            src_person = cv2.remap(ex_person.astype(np.uint8), *_xy(apply_affine(similarity, size)),
                                   cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE) > 0
        whole_frame = task == "mask" and not mask_layered(source, exemplar)  # a painted scene: one layer
        # A painted scene's person that took the exemplar's face is mapped as in layered pairs: the face
        # anchors its surround, the other classes' charts do not (their quilted tiles would fold it).
        anchored = chart.defined & protect if whole_frame and protect.any() else chart.defined
        src_person = src_person | anchored | stand_in
        everywhere = np.ones(size, bool) if whole_frame else None  # a painted scene's map is used everywhere
        to_photo = photo_scale(photo.shape[:2], ex_size)
        zoom = float(np.sqrt(abs(np.linalg.det(similarity[:, :2]))))  # exemplar condition px / output px
        photo_zoom = zoom * float(np.sqrt(abs(1 / (to_photo.sy * to_photo.sx))))  # exemplar photo px / output px
        enlarge = 1.0 / max(photo_zoom, 1e-6)  # how much the exemplar photo's pixels are enlarged
        if task == "face" and not allow_partial and chart.defined.any():  # before any work is started
            refuse_blow_up(enlarge)
        # The exemplar's background with its person removed, completed where the view shows it: it needs only
        # the similarity, so it starts now in the thread beside this one (surround, folds and the person's fill).
        background = apply_affine(background_affine(similarity, size, ex_size), size)
        beyond = np.zeros(size, bool)  # background the exemplar's frame does not show: synthesized
        ex_hole = np.zeros(ex_size, bool)
        if not whole_frame:
            segmented = mask_labelled(exemplar) if task == "mask" else ex_person  # with what it holds (a camera)
            ex_hole = backdrop_hole(segmented)
        ex_job = self._background_job(exemplar, ex_hole, background, beyond, whole_frame)
        face_side = max(1.0, float(np.sqrt(anchored.sum())))
        positions = surround_map(size, similarity, chart.positions, anchored, src_person, ex_person,
                                 reach=(MASK_REACH if task == "mask" else 1.0) * face_side * zoom,
                                 frame_weight=0.0 if task == "mask" else FRAME_WEIGHT)
        feather = cv2.GaussianBlur(chart.defined.astype(np.float32), (0, 0), 1.0)[..., None]
        feather = np.where(chart.defined[..., None], np.maximum(feather, 0.999 * (feather > 0.5)), feather)
        # The chart is blended into the surround inside its own edge only: outside it the chart has no
        # positions (zeros), so the feather must not reach there.
        positions = feather * np.where(chart.defined[..., None], chart.positions, positions) + (1 - feather) * positions
        # When the exemplar shows the input's own scene (another shot of it: its edges line up with the input's
        # condition edges far better than chance), both layers follow those edges (core/charts/scene.py) and
        # the background is mapped like the person, not reframed.
        scene = None
        if task == "face" or (task == "pose" and source.image is not None):  # a pose: the edges of its photo
            along = apply_affine(similarity, size)
            keep = chart.defined if task == "face" else _joints(source, JOINT_KEEP)  # where the chart is exact
            scene = match_scene(source, exemplar, np.where(src_person[..., None], positions, along), keep)
            if scene.agrees:
                positions = follow(positions, scene.displacement)
                # the background follows the scene too: its completion, started for the reframed view, again
                background = follow(along, scene.displacement)
                beyond = ~_in_frame(background, ex_size) & ~src_person
                ex_job.cancel()
                ex_job = self._background_job(exemplar, ex_hole, background, beyond, whole_frame)
                messages.append("The exemplar shows the input's own scene: its surroundings follow the input's "
                                "edges.")
        # Folds are looked for inside the person, off its edge: across the edge the map meets the
        # surround, but the output there is the composite of two pictures, not one map.
        inner = cv2.erode((src_person if everywhere is None else everywhere).astype(np.uint8),
                          np.ones((5, 5), np.uint8)) > 0
        exact = cv2.erode(chart.defined.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 if task == "face" else None
        pieces = chart.pieces if task == "pose" else None  # body parts torn apart where their maps disagree
        if task == "mask":  # the face's mesh and quilted tiles are exact; classes and tiles meet at seams
            pieces = np.where(chart.defined, chart.pieces, 0) if chart.pieces is not None else None
            exact = (cv2.erode((chart.region == MASK_FACE_REGION).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) \
                | (chart.defined & (chart.confidence >= 0.9) & (chart.region != MASK_FACE_REGION))
        # The last resort where smoothing cannot unfold: the similarity; in a painted scene it would cross classes.
        fallback = positions.copy() if whole_frame else apply_affine(similarity, size)
        # Not on stand-ins (a texture, not one map); for a pose, not past the exemplar's frame either (the body
        # chart's map goes on past a frame that cuts the body off): what maps there is filled below, whatever its
        # folds. (Faces as before: a close-up exemplar's pair rose 1.162 -> 1.219 in coherence.)
        shown_map = inner & ~stand_in & (_in_frame(positions, ex_size) if task == "pose" else True)
        positions, folded = unfold(positions, fallback, used=shown_map, keep=exact, pieces=pieces)
        det = jacobian_determinant(positions)  # the map's, for the two measures below
        if exact is not None and fold_fraction(positions, inner, pieces, det) > 0:  # folds inside the mesh (a turned
            # face's triangles flip): smoothed with the smallest radii only, so the rest of the face stays exact
            positions, _ = unfold(positions, apply_affine(similarity, size), used=shown_map, rounds=2,
                                  pieces=pieces)
            det = jacobian_determinant(positions)
        folds_left = fold_fraction(positions, shown_map, pieces, det)
        positions[stand_in] = chart.positions[stand_in]  # parts the exemplar hides: a stand-in's texture
        seconds["map"] = time.perf_counter() - t

        # 3. Where the exemplar does not show the person (outside its frame, or on its background):
        # the person's own texture (face excluded), by PatchMatch completion in the output.
        t = time.perf_counter()
        report(0.45, "completing what the exemplar does not show")
        inside = _in_frame(positions, ex_size)
        core = cv2.erode(ex_person.astype(np.uint8), disc(max(1, round(0.01 * max(ex_size)))))
        on_person = cv2.remap(core, *_xy(positions), cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
        # (The body chart's positions past the exemplar's frame continue its map there: nothing to sample, filled.)
        charted = chart.defined & inside if task == "pose" else chart.defined
        person_hole = src_person & ~(inside & on_person) & ~charted & ~stand_in
        # The input photo's silhouette reaching a little past the exemplar's person (a rim of hair, a hat's
        # brim): that rim shows the background rather than another part's texture (an orange rim of suit
        # round hair). A skeleton or sketch has no silhouette of its own: its nominal body stays whole.
        front = src_person
        held = np.zeros(size, bool)  # face: what the input's person holds past the exemplar's frame
        if not whole_frame and source.image is not None:
            rim = max(2, round(RIM * np.sqrt(src_person.sum())))
            front = front_layer(src_person, person_hole, rim)
            if task == "face":  # where the exemplar shows its background beside its person, so does the output;
                # and what the input's person holds past the exemplar's frame (a helmet) is no body to dress
                person_hole &= ~outline_background(src_person, person_hole & inside, person_hole & ~inside)
                held = held_past_frame(source.image, src_person, person_hole & ~inside, rim)
                front &= ~held
            person_hole &= front
        level = photo_level(photo, to_photo(positions))
        person_img = sample(photo, to_photo(positions), level)
        if person_hole.any():
            face_zone = cv2.dilate(protect.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
            copy_from = src_person & ~person_hole & ~face_zone & ~held
            if task in ("pose", "mask"):  # the plain clothing, not the badges and ribbons on it (nor a shirt front)
                plain = copy_from & ~body_decorations(person_img, copy_from)
                copy_from = plain if plain.sum() >= PLAIN_SOURCE * copy_from.sum() else copy_from
            fill = complete(person_img, person_hole, copy_from, self.completion_side)
            holes = np.argwhere(person_hole).astype(np.float32)
            votes = _at(positions, fill.sources(holes))  # (V, N, 2) exemplar pixels
            positions[person_hole] = votes[0]
            person_img[person_hole] = sample_votes(photo, to_photo(votes), level, fill.weights(holes))
        back_img, covered = person_img, np.zeros(size, bool)
        if not whole_frame:
            bg_level = photo_level(photo, to_photo(background))
            back_img = sample(photo, to_photo(background), bg_level)
            covered, seen, ex_fill = ex_job.result()
            if ex_fill is not None:
                votes = ex_fill.sources(seen)
                background[covered] = votes[0]
                back_img[covered] = sample_votes(photo, to_photo(votes), bg_level, ex_fill.weights(seen))
            if beyond.any():  # from the background the exemplar does show (never a stretch of its edge)
                fill = complete(back_img, beyond, ~beyond & ~src_person, self.completion_side,
                                follow=task in FOLLOW_TASKS)
                holes = np.argwhere(beyond).astype(np.float32)
                votes = _at(background, fill.sources(holes))
                background[beyond] = votes[0]
                back_img[beyond] = sample_votes(photo, to_photo(votes), bg_level, fill.weights(holes))
        seconds["completion"] = time.perf_counter() - t

        # 4. Composite.
        t = time.perf_counter()
        report(0.85, "compositing")
        matte = front.astype(np.float32)
        if task == "face" and not whole_frame and source.image is not None:  # inside the input's silhouette, the
            # exemplar's outline (a hat's brim short of the input's hair): whole and as soft as the picture, not cut
            # along the input's outline. Not past it: the surround there is not unfolded (a crown pushed up folds)
            matte = exemplar_outline(matte, ex_person, positions, inside & ~person_hole & ~held & ~chart.defined,
                                      src_person)  # the face chart's pixels are the person's whatever the outline
            front = matte > 0.5
        alpha = cv2.GaussianBlur(matte, (0, 0), self.seam_sigma)
        image = person_img if whole_frame else blend(person_img, back_img, alpha, levels=SEAM_BANDS)
        # What the output shows, layer by layer (no blending), and where it does not come from one smooth
        # map (fills, completed background, the person/background seam): ``fill`` for evaluation.
        front = front if everywhere is None else everywhere  # (a painted scene's person is no layer of its own)
        used = np.where(front[..., None], positions, background)
        layered = person_img if whole_frame else np.where(front[..., None], person_img, back_img)
        seam = (alpha > 0.02) & (alpha < 0.98) if not whole_frame else np.zeros(size, bool)
        not_mapped = np.where(front, person_hole | stand_in, covered | beyond) | seam | _piece_seams(pieces)
        detail = edges = 0.0
        if task == "face" and EDGES:  # past 2x, edges as the photo's smaller scales draw them (core/detail.py): both
            # layers, each where one smooth map samples it
            image, edges = add_edges(image, photo, to_photo(used), detail_region(~not_mapped, None))
        if task == "face" and DETAIL:  # the exemplar's own grain where its small face is enlarged (core/detail.py)
            where = detail_region(front & ~not_mapped, source.mesh)
            image, detail = add_detail(image, photo, to_photo(used), where)
        seconds["compose"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - t0

        person_px = max(1, int(src_person.sum()))
        stats = {
            "zoom": photo_zoom,
            "folds_fixed": folded,
            "folds_left": folds_left,
            "person_filled": float(person_hole.sum()) / person_px,
            "stand_in": float(stand_in.sum()) / person_px,
            "background_completed": float(ex_hole.mean()),
            "mirrored": mirrored,
            "scene_matched": bool(scene is not None and scene.agrees),
            "background_synthesized": float(beyond.mean()),
            "detail_added": detail,
            "edges_added": edges,
            "held": float(chart.held.sum()) / max(1, int((src_person | chart.held).sum())) if chart.held is not None
            else float(held.sum()) / person_px,
        }
        if chart.defined.any() and enlarge > ZOOM_WARN and (task != "mask" or (chart.region == MASK_FACE_REGION).any()):
            messages.append(f"The exemplar's face is {enlarge:.1f}x smaller than the output's: its pixels are "
                            "enlarged that much (soft). Use a larger exemplar photo or crop it closer to the face.")
        if stats["person_filled"] > 0.05:
            messages.append(f"{stats['person_filled']:.0%} of the person is not shown by the exemplar (outside its "
                            "frame or hidden) and was filled from the exemplar's clothing/hair texture.")
        if held.any():
            messages.append(f"{stats['held']:.0%} of the input's person is something held (off the body the pose "
                            "model sees) where the exemplar shows nothing: its background shows there.")
        if stats["background_synthesized"] > 0.05:
            messages.append(f"{stats['background_synthesized']:.0%} of the picture lies beyond the exemplar's frame "
                            "and was synthesized from the background it shows.")
        messages += fold_message(folded)
        report(1.0, "composited at full resolution")
        chart_img = sample(photo, to_photo(chart.positions), level)
        chart_img[~chart.defined] = 128
        chart_positions = chart.positions
        if mirrored:  # back to the exemplar as given (the map reverses left and right there)
            used, chart_positions = _unmirror(used, ex_size[1]), _unmirror(chart_positions, ex_size[1])
        chart_view = _level(chart_img, chart_positions, chart.confidence, ex_size)
        return _output(image, layered, used, not_mapped, chart_view, ex_size, seconds, messages, stats)

    def _background_job(self, exemplar: Condition, hole: np.ndarray, background: np.ndarray, beyond: np.ndarray,
                        whole_frame: bool) -> _BackgroundJob:
        """The exemplar's background completed over ``hole`` where the output's ``background`` map (H, W, 2)
        reads it (not ``beyond`` the exemplar's frame), started in the thread beside the caller's: its
        result is (output pixels it covers, their exemplar positions, the completion or None)."""
        covered = np.zeros(beyond.shape, bool)
        if not whole_frame:
            ex_h, ex_w = hole.shape
            r = np.clip(np.round(background[..., 0]).astype(int), 0, ex_h - 1)
            c = np.clip(np.round(background[..., 1]).astype(int), 0, ex_w - 1)
            covered = hole[r, c] & ~beyond
        seen = background[covered]
        if not len(seen):
            return _BackgroundJob(None, self, (covered, seen, None))
        before = self._backgrounds.get(exemplar)  # a job given up on (the view changed) leaves it as it was
        stop = threading.Event()  # set when the job is given up: the completion stops at its next pass
        job = _BESIDE.submit(contextvars.copy_context().run,  # the request's time budget too
                             self._completed_background, exemplar, hole, _pixels(seen, hole.shape), stop.is_set)
        return _BackgroundJob(job, self, (covered, seen), (exemplar, before), stop)

    def _completed_background(self, exemplar: Condition, hole: np.ndarray, seen: np.ndarray,
                              cancelled: Callable[[], bool] | None = None):
        """The exemplar's background completed over ``hole`` (its person), matched only within reach of
        the pixels ``seen`` (the same fill there as over the whole hole: ``complete``'s ``need``);
        reused for the same exemplar while it covers what is seen (a video's frames). None (nothing
        cached) when ``cancelled`` says so before it is done."""
        last = self._backgrounds.get(exemplar)
        if last is not None and np.array_equal(last[1], hole):
            if not (seen & ~last[2]).any():
                return last[3]
            seen = seen | last[2]
        follow = exemplar.task in FOLLOW_TASKS
        fill = complete(exemplar.image, hole, None, self.completion_side, need=seen, follow=follow,
                        layers=follow and exemplar.task in self.completion_layers,
                        perceptual=follow and exemplar.task in PERCEPTUAL_TASKS,
                        stitched=exemplar.task in STITCHED_TASKS,
                        cancelled=cancelled)
        if fill is not None:
            self._backgrounds.put((exemplar, hole, seen, fill))
        return fill


class CompletedBackgrounds:
    """The last few exemplars' completed backgrounds, (exemplar condition, its hole, the pixels matched, the
    completion) each: a small thread-safe LRU keyed by the exemplar condition's identity, so requests run at
    once on one engine keep each other's (an entry is checked against its hole before use)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._entries: OrderedDict[int, tuple] = OrderedDict()  # id(exemplar) -> entry (which keeps it alive)
        self._lock = threading.Lock()

    def get(self, exemplar: Condition) -> tuple | None:
        with self._lock:
            entry = self._entries.get(id(exemplar))
            if entry is None or entry[0] is not exemplar:
                return None
            self._entries.move_to_end(id(exemplar))
            return entry

    def put(self, entry: tuple) -> None:
        with self._lock:
            self._entries[id(entry[0])] = entry
            self._entries.move_to_end(id(entry[0]))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def restore(self, exemplar: Condition, entry: tuple | None) -> None:
        """This exemplar's entry set back to ``entry`` (None: none); other exemplars' are left alone."""
        if entry is not None:
            self.put(entry)
            return
        with self._lock:
            self._entries.pop(id(exemplar), None)


class _BackgroundJob:
    """The exemplar background's completion under way in the thread beside (or nothing to complete)."""

    def __init__(self, future: Future | None, engine: TrainingFreeEngineV2, covered_seen: tuple,
                 before: tuple | None = None, stop: threading.Event | None = None):
        # before: (the exemplar, its cached background when the job started)
        self.future, self.engine, self.covered_seen, self.before, self.stop = future, engine, covered_seen, before, stop

    def result(self) -> tuple[np.ndarray, np.ndarray, object]:
        """(H, W) bool output pixels it covers, (N, 2) their exemplar positions, the completion (or None)."""
        return self.covered_seen if self.future is None else (*self.covered_seen, self.future.result())

    def cancel(self) -> None:
        """Give the job up (the view changed): told to stop at the completion's next pass, waited for if it
        has started, and the exemplar's completed background left as it was before it (other exemplars', cached
        meanwhile by other requests, are kept). A job that failed fails no one: its result is not wanted."""
        if self.stop is not None:
            self.stop.set()
        if self.future is not None and not self.future.cancel():
            wait([self.future])
            self.engine._backgrounds.restore(*self.before)


def _subjects(task: str, source: Condition, exemplar: Condition, chart: ChartMap
              ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The input's and the exemplar's person silhouettes (the input's None: a sketch or skeleton, carried
    over from the exemplar) and the region whose texture must not be copied elsewhere (the face)."""
    if task == "mask":  # labelled regions are the subject when both masks leave a background unlabeled
        face = chart.region == MASK_FACE_REGION
        if not mask_layered(source, exemplar):  # a painted scene: its person when it took the exemplar's face
            if not face.any():
                return np.ones(source.size, bool), np.ones(exemplar.size, bool), np.zeros(source.size, bool)
            return (mask_solid(mask_class(source) == PERSON) | face, mask_class(exemplar) == PERSON, face)
        return mask_solid(mask_labelled(source)), mask_person_shown(source, exemplar), face
    if task == "pose":
        ex_person = exemplar.subject_mask if exemplar.subject_mask is not None else person_mask(exemplar.image)
        # a skeleton with no photo: the chart's nominal outline of the body (parts the exemplar does not
        # show included: they are filled, not left as background)
        src_person = source.subject_mask if source.image is not None and source.subject_mask is not None \
            else chart.region > 0
        if chart.held is not None:  # what the input's person holds (a helmet): the exemplar's background
            src_person = src_person & ~chart.held
        return src_person, ex_person, chart.region == BODY_PART_ID["head"]
    src_person = person_mask(source.image) if source.image is not None else None
    return src_person, person_mask(exemplar.image), chart.defined


def _similarity(task: str, source: Condition, exemplar: Condition, chart: ChartMap, size: tuple[int, int],
                ex_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) output x, y -> exemplar x, y: the similarity closest to the chart (the face mesh's points,
    or a sample of the chart's pixels), or the frame's when there is no chart."""
    face = chart.defined if task == "face" else chart.defined & (chart.region == MASK_FACE_REGION)
    meshes = face.any() and face_points(source) is not None and face_points(exemplar) is not None
    if meshes and not (task == "mask" and mask_face_whole(source, exemplar)):  # (a face mapped whole: its pixels)
        src_pts, ex_pts, _ = corresponding_points(source, exemplar)
        return fit_similarity(src_pts, ex_pts)
    fitted = face if face.any() else chart.defined  # a painted person's face: placed by its head
    if task != "face" and fitted.sum() >= 3:
        rows, cols = np.nonzero(fitted)
        pick = np.linspace(0, len(rows) - 1, min(len(rows), 4000)).astype(int)
        src = np.stack([cols[pick], rows[pick]], 1).astype(np.float64)
        return fit_similarity(src, chart.positions[rows[pick], cols[pick]][:, ::-1].astype(np.float64))
    return frame_affine(size, ex_size)


class _PhotoScale:
    """Exemplar condition pixels -> original photo pixels (the fit_image crop and scale, undone)."""

    def __init__(self, photo_hw: tuple[int, int], cond_hw: tuple[int, int]):
        self.top, self.left, _, _, self.sx, self.sy = fit_geometry(photo_hw, cond_hw)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        out = np.empty_like(positions)
        out[..., 0] = (positions[..., 0] + 0.5) / self.sy - 0.5 + self.top
        out[..., 1] = (positions[..., 1] + 0.5) / self.sx - 0.5 + self.left
        return out


def refuse_blow_up(enlarge: float) -> None:
    """Raise ``NoSubjectError`` when the person map enlarges the exemplar photo's pixels ``enlarge`` times,
    more than ``ZOOM_REFUSE``."""
    if enlarge > ZOOM_REFUSE:
        raise NoSubjectError(f"The exemplar's face is too small: it would be enlarged {enlarge:.1f}x to fill the "
                             f"input's face (at most {ZOOM_REFUSE:g}x keeps it sharp enough) and come out as a "
                             "smeared blow-up. Use an exemplar where the face is larger (a closer photo or a "
                             "larger picture), a smaller output resolution, or allow a partial result.")


def photo_scale(photo_hw: tuple[int, int], cond_hw: tuple[int, int]) -> _PhotoScale:
    return _PhotoScale(photo_hw, cond_hw)


def frame_affine(size: tuple[int, int], ex_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) output x, y -> exemplar x, y: the exemplar's centre crop with the output's aspect, scaled."""
    top, left, ch, cw, _, _ = fit_geometry(ex_size, size)
    h, w = size
    return np.array([[cw / w, 0, (0.5 * cw / w - 0.5) + left], [0, ch / h, (0.5 * ch / h - 0.5) + top]])


def background_affine(similarity: np.ndarray, size: tuple[int, int], ex_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) output x, y -> exemplar x, y for the background: the person's zoom (the similarity's scale,
    centred where it sends the output's centre) while the output's frame then fits inside the exemplar's,
    else the largest view that fits (the frame map); shifted to stay inside. So a closer input shows the
    exemplar's real surroundings at the person's scale, and a wider one the exemplar's whole frame."""
    h, w = size
    eh, ew = ex_size
    top, left, ch, cw, _, _ = fit_geometry(ex_size, size)
    fit = min(cw / w, ch / h)
    scale = min(float(np.sqrt(abs(np.linalg.det(similarity[:, :2])))), fit)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    px = similarity[0, 0] * cx + similarity[0, 1] * cy + similarity[0, 2]
    py = similarity[1, 0] * cx + similarity[1, 1] * cy + similarity[1, 2]
    half_w, half_h = scale * w / 2, scale * h / 2
    px = float(np.clip(px, half_w - 0.5, ew - 0.5 - half_w)) if 2 * half_w <= ew else (ew - 1) / 2
    py = float(np.clip(py, half_h - 0.5, eh - 0.5 - half_h)) if 2 * half_h <= eh else (eh - 1) / 2
    return np.array([[scale, 0, px - scale * cx], [0, scale, py - scale * cy]])


def backdrop_hole(ex_person: np.ndarray) -> np.ndarray:
    """(H, W) bool: what the exemplar's backdrop completion replaces: its person dilated by ``HOLE_MARGIN`` of its
    side (the silhouette's edge is that uncertain), then closed with the same disc. A sliver of backdrop left
    between two parts of the hole narrower than that margin on each side is the same uncertain edge (the flag's
    stripes between Grace Hopper's shoulder and a flag fold the segmenter took for her): left real amid the
    completion round it, it shows as a splinter. The frame's edge is no part of the hole (padded with backdrop)."""
    radius = max(3, round(HOLE_MARGIN * max(ex_person.shape)))
    margin = disc(radius)
    hole = cv2.dilate(ex_person.astype(np.uint8), margin)
    pad = radius + 1
    closed = cv2.morphologyEx(np.pad(hole, pad), cv2.MORPH_CLOSE, margin)[pad:-pad, pad:-pad]
    return (hole | closed) > 0


def _unmirror(positions: np.ndarray, width: int) -> np.ndarray:
    """(..., 2) (row, col) positions in a mirrored picture of ``width`` -> in the picture as given."""
    out = positions.copy()
    out[..., 1] = width - 1 - out[..., 1]
    return out


def _joints(source: Condition, radius: float) -> np.ndarray:
    """(H, W) bool: discs of ``radius`` (times the longer side) round the input's found joints, where the
    body chart is exact (the scene's displacement is 0 there)."""
    keep = np.zeros(source.size, np.uint8)
    r = max(1, round(radius * max(source.size)))
    for x, y, c in source.keypoints if source.keypoints is not None else ():
        if c > 0:
            cv2.circle(keep, (round(float(x)), round(float(y))), r, 1, -1)
    return keep > 0


def _in_frame(positions: np.ndarray, ex_size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: positions (H, W, 2) (row, col) inside the exemplar's frame (pixel edges included)."""
    ex_h, ex_w = ex_size
    return ((positions[..., 0] >= -0.5) & (positions[..., 0] <= ex_h - 0.5)
            & (positions[..., 1] >= -0.5) & (positions[..., 1] <= ex_w - 0.5))


def _xy(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(positions[..., 1], dtype=np.float32),
            np.ascontiguousarray(positions[..., 0], dtype=np.float32))


def _at(positions: np.ndarray, points: np.ndarray) -> np.ndarray:
    """positions (H, W, 2) read at (..., 2) (row, col) points (nearest pixel)."""
    r = np.clip(np.round(points[..., 0]).astype(np.int64), 0, positions.shape[0] - 1)
    c = np.clip(np.round(points[..., 1]).astype(np.int64), 0, positions.shape[1] - 1)
    return positions[r, c]


def _pixels(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels nearest to (N, 2) (row, col) points (clipped to the frame)."""
    out = np.zeros(size, bool)
    out[np.clip(np.round(points[:, 0]).astype(np.int64), 0, size[0] - 1),
        np.clip(np.round(points[:, 1]).astype(np.int64), 0, size[1] - 1)] = True
    return out


def _piece_seams(pieces: np.ndarray | None) -> np.ndarray | bool:
    """(H, W) bool: pixels with a 4-neighbour in another piece of the map (where it jumps by design), so
    evaluation counts no cell across a seam; False without pieces."""
    if pieces is None:
        return False
    seams = np.zeros(pieces.shape, bool)
    seams[:, 1:] |= pieces[:, 1:] != pieces[:, :-1]
    seams[1:] |= pieces[1:] != pieces[:-1]
    return seams


def _level(picture: np.ndarray, positions: np.ndarray, confidence: np.ndarray, ex_size: tuple[int, int],
           side_div: int = 4) -> LevelMatch:
    """A view for the app, at 1/``side_div`` of the output: the picture, the map (one candidate, exemplar
    positions scaled to the level like the learned engine's) and its confidence."""
    h, w = confidence.shape
    small = (max(1, h // side_div), max(1, w // side_div))
    pos = cv2.resize(positions, (small[1], small[0]), interpolation=cv2.INTER_AREA)
    pos = (pos + 0.5) * np.array([small[0] / ex_size[0], small[1] / ex_size[1]], np.float32) - 0.5
    conf = cv2.resize(confidence.astype(np.float32), (small[1], small[0]), interpolation=cv2.INTER_AREA)
    return LevelMatch(warp=to_tensor(cv2.resize(picture, (small[1], small[0]), interpolation=cv2.INTER_AREA)),
                      positions=torch.from_numpy(np.ascontiguousarray(pos.transpose(2, 0, 1)))[None, None].float(),
                      weights=torch.ones(1, 1, *small), confidence=torch.from_numpy(conf)[None, None])


def _output(image, warped, positions, hole, chart_view, ex_size, seconds, messages, stats) -> EngineOutput:
    """Pack into the engine output type. Two views stand for the levels: the charts alone, then the
    final map (so the app shows what the charts give and what the surround, fill and compositing add)."""
    confidence = 1 - hole.astype(np.float32)
    levels = [chart_view, _level(image, positions, confidence, ex_size, side_div=1)]
    return EngineOutput(image=to_tensor(image), warped=to_tensor(warped),
                        positions=torch.from_numpy(np.ascontiguousarray(positions.transpose(2, 0, 1)))[None].float(),
                        confidence=torch.from_numpy(confidence)[None, None], levels=levels, seconds=seconds,
                        fill=torch.from_numpy(hole.astype(np.float32))[None, None], notes=[messages], stats=[stats])

