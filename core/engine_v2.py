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

import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.charts.face import face_chart, face_points
from core.charts.folds import fold_fraction, unfold
from core.charts.surround import apply_affine, fit_similarity, surround_map
from core.compose import blend, complete, photo_level, sample, sample_votes
from core.conditions import detectors
from core.conditions.condition import Condition
from core.engine import EngineOutput
from core.errors import InputError
from core.imageio import fit_geometry, to_tensor
from core.patchmatch import LevelMatch

Progress = Callable[[float, str], None]
V2_TASKS = ("face",)  # tasks with charts (pose and mask join when their charts land)
ZOOM_WARN = 2.0  # warn when the exemplar's pixels are enlarged more than this
PERSON_THRESHOLD = 0.5


def person_mask(photo: np.ndarray) -> np.ndarray:
    """(H, W) bool person silhouette of an RGB photo (MediaPipe selfie segmentation)."""
    seg = detectors.run("selfie", photo).segmentation_mask
    return np.asarray(seg) > PERSON_THRESHOLD


class TrainingFreeEngineV2:
    """Charts + surround + compositing; stateless apart from its settings."""

    version = 2

    def __init__(self, completion_side: int = 128, seam_sigma: float = 1.5):
        self.completion_side = completion_side  # working size of the PatchMatch completion
        self.seam_sigma = seam_sigma  # feather of the person's edge (output pixels) before multi-band blending

    @torch.no_grad()
    def __call__(self, source: Condition, exemplar: Condition, *, allow_partial: bool = False, seed: int = 0,
                 progress: Progress | None = None, **_: object) -> EngineOutput:
        """``source`` at the output size (H, W); ``exemplar`` at its own working size, carrying its photo
        (``.image``) and, for full resolution, the original (``.photo``)."""
        report = progress or (lambda fraction, text: None)
        if exemplar.image is None:
            raise InputError("The exemplar must be a photo (or a Condition extracted from one, with its image).")
        if source.task != "face":
            raise InputError(f"The training-free engine v2 has no charts for the {source.task} task yet.")
        t0 = time.perf_counter()
        seconds: dict[str, float] = {}
        messages: list[str] = []
        size = source.size
        photo = exemplar.photo if exemplar.photo is not None else exemplar.image
        ex_size = exemplar.size

        # 1. Charts and silhouettes.
        report(0.05, "face chart (FaceMesh, piecewise affine)")
        chart = face_chart(source, exemplar, allow_partial=allow_partial)
        messages += chart.notes
        ex_person = person_mask(exemplar.image)
        src_person = person_mask(source.image) if source.image is not None else None
        seconds["charts"] = time.perf_counter() - t0

        # 2. The person map: the chart inside, a harmonic surround outside, no folds.
        t = time.perf_counter()
        report(0.25, "mapping the surroundings (silhouettes, frame)")
        src_pts, ex_pts = face_points(source), face_points(exemplar)
        if chart.defined.any() and src_pts is not None and ex_pts is not None:
            n = min(len(src_pts[0]), len(ex_pts[0]))
            similarity = fit_similarity(src_pts[0][:n], ex_pts[0][:n])
        else:
            similarity = frame_affine(size, ex_size)
        if src_person is None:  # a sketch: the exemplar's silhouette carried over by the similarity
            src_person = cv2.remap(ex_person.astype(np.uint8), *_xy(apply_affine(similarity, size)),
                                   cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
        src_person = src_person | chart.defined
        zoom = float(np.sqrt(abs(np.linalg.det(similarity[:, :2]))))
        face_side = max(1.0, float(np.sqrt(chart.defined.sum())))
        positions = surround_map(size, similarity, chart.positions, chart.defined, src_person, ex_person,
                                 reach=1.0 * face_side * zoom)
        feather = cv2.GaussianBlur(chart.defined.astype(np.float32), (0, 0), 1.0)[..., None]
        feather = np.where(chart.defined[..., None], np.maximum(feather, 0.999 * (feather > 0.5)), feather)
        positions = feather * chart.positions + (1 - feather) * positions
        positions, folded = unfold(positions, apply_affine(similarity, size), used=src_person)
        folds_left = fold_fraction(positions, src_person)
        seconds["map"] = time.perf_counter() - t

        # 3. Where the exemplar does not show the person (outside its frame, or on its background):
        # the person's own texture (face excluded), by PatchMatch completion in the output.
        t = time.perf_counter()
        report(0.45, "completing what the exemplar does not show")
        ex_h, ex_w = ex_size
        inside = ((positions[..., 0] >= -0.5) & (positions[..., 0] <= ex_h - 0.5)
                  & (positions[..., 1] >= -0.5) & (positions[..., 1] <= ex_w - 0.5))
        core = cv2.erode(ex_person.astype(np.uint8), _disk(max(1, round(0.01 * max(ex_size)))))
        on_person = cv2.remap(core, *_xy(positions), cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
        person_hole = src_person & ~(inside & on_person) & ~chart.defined
        to_photo = photo_scale(photo.shape[:2], ex_size)
        level = photo_level(photo, to_photo(positions))
        person_img = sample(photo, to_photo(positions), level)
        if person_hole.any():
            face_zone = cv2.dilate(chart.defined.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
            fill = complete(person_img, person_hole, src_person & ~person_hole & ~face_zone, self.completion_side)
            holes = np.argwhere(person_hole).astype(np.float32)
            votes = _at(positions, fill.sources(holes))  # (V, N, 2) exemplar pixels
            positions[person_hole] = votes[0]
            person_img[person_hole] = sample_votes(photo, to_photo(votes), level)
        # The exemplar's background with its person removed, mapped frame to frame.
        background = frame_map(size, ex_size)
        ex_hole = cv2.dilate(ex_person.astype(np.uint8), _disk(max(3, round(0.03 * max(ex_size))))) > 0
        ex_fill = complete(exemplar.image, ex_hole, None, self.completion_side)
        bg_level = photo_level(photo, to_photo(background))
        back_img = sample(photo, to_photo(background), bg_level)
        r = np.clip(np.round(background[..., 0]).astype(int), 0, ex_h - 1)
        c = np.clip(np.round(background[..., 1]).astype(int), 0, ex_w - 1)
        covered = ex_hole[r, c]
        if covered.any():
            votes = ex_fill.sources(background[covered])
            background[covered] = votes[0]
            back_img[covered] = sample_votes(photo, to_photo(votes), bg_level)
        seconds["completion"] = time.perf_counter() - t

        # 4. Composite.
        t = time.perf_counter()
        report(0.85, "compositing")
        alpha = cv2.GaussianBlur(src_person.astype(np.float32), (0, 0), self.seam_sigma)
        image = blend(person_img, back_img, alpha)
        seconds["compose"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - t0

        used = np.where(src_person[..., None], positions, background)
        person_px = max(1, int(src_person.sum()))
        stats = {
            "zoom": zoom * float(np.sqrt(abs(1 / (to_photo.sy * to_photo.sx)))),  # exemplar photo px / output px
            "folds_fixed": folded,
            "folds_left": folds_left,
            "person_filled": float(person_hole.sum()) / person_px,
            "background_completed": float(ex_hole.mean()),
        }
        enlarge = 1.0 / max(stats["zoom"], 1e-6)
        if chart.defined.any() and enlarge > ZOOM_WARN:
            messages.append(f"The exemplar's face is {enlarge:.1f}x smaller than the output's: its pixels are "
                            "enlarged that much (soft). Use a larger exemplar photo or crop it closer to the face.")
        if stats["person_filled"] > 0.05:
            messages.append(f"{stats['person_filled']:.0%} of the person is not shown by the exemplar (outside its "
                            "frame or hidden) and was filled from the exemplar's clothing/hair texture.")
        if folded > 0:
            messages.append(f"{folded:.2%} of the map folded over and was smoothed.")
        report(1.0, "composited at full resolution")
        return _output(image, person_img, used, alpha, person_hole, ex_size, size, seconds, messages, stats)


class _PhotoScale:
    """Exemplar condition pixels -> original photo pixels (the fit_image crop and scale, undone)."""

    def __init__(self, photo_hw: tuple[int, int], cond_hw: tuple[int, int]):
        self.top, self.left, _, _, self.sx, self.sy = fit_geometry(photo_hw, cond_hw)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        out = np.empty_like(positions)
        out[..., 0] = (positions[..., 0] + 0.5) / self.sy - 0.5 + self.top
        out[..., 1] = (positions[..., 1] + 0.5) / self.sx - 0.5 + self.left
        return out


def photo_scale(photo_hw: tuple[int, int], cond_hw: tuple[int, int]) -> _PhotoScale:
    return _PhotoScale(photo_hw, cond_hw)


def frame_affine(size: tuple[int, int], ex_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) output x, y -> exemplar x, y: the exemplar's centre crop with the output's aspect, scaled."""
    top, left, ch, cw, _, _ = fit_geometry(ex_size, size)
    h, w = size
    return np.array([[cw / w, 0, (0.5 * cw / w - 0.5) + left], [0, ch / h, (0.5 * ch / h - 0.5) + top]])


def frame_map(size: tuple[int, int], ex_size: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) (row, col) in exemplar pixels: the output's frame onto the exemplar's."""
    return apply_affine(frame_affine(size, ex_size), size)


def _xy(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(positions[..., 1], dtype=np.float32),
            np.ascontiguousarray(positions[..., 0], dtype=np.float32))


def _at(positions: np.ndarray, points: np.ndarray) -> np.ndarray:
    """positions (H, W, 2) read at (..., 2) (row, col) points (nearest pixel)."""
    r = np.clip(np.round(points[..., 0]).astype(np.int64), 0, positions.shape[0] - 1)
    c = np.clip(np.round(points[..., 1]).astype(np.int64), 0, positions.shape[1] - 1)
    return positions[r, c]


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _output(image, warped, positions, alpha, hole, ex_size, size, seconds, messages, stats) -> EngineOutput:
    """Pack into the engine output type (tensors; one pseudo level at 1/4 size so the app can show the map)."""
    img_t = to_tensor(image)
    pos_t = torch.from_numpy(np.ascontiguousarray(positions.transpose(2, 0, 1)))[None].float()
    conf = torch.from_numpy(np.ascontiguousarray(1 - hole.astype(np.float32)))[None, None]
    small = (max(1, size[0] // 4), max(1, size[1] // 4))
    scale = torch.tensor([small[0] / size[0], small[1] / size[1]]).view(1, 2, 1, 1)
    level = LevelMatch(warp=F.interpolate(img_t, size=small, mode="area"),
                       positions=((F.interpolate(pos_t, size=small, mode="area") + 0.5) * scale - 0.5)[:, None],
                       weights=torch.ones(1, 1, *small), confidence=F.interpolate(conf, size=small, mode="area"))
    out = EngineOutput(image=img_t, warped=to_tensor(warped), positions=pos_t, confidence=conf,
                       fill=torch.from_numpy(hole.astype(np.float32))[None, None], levels=[level],
                       seconds=seconds, messages=messages, stats=stats)
    return out
