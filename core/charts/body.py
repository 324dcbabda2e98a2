"""Body charts (pose task): every output pixel of the person gets local coordinates on its body part.

    limbs   (position t along the bone, signed offset across it / the silhouette's half-width there)
    torso   (u, v) inside the shoulders-hips quad (bilinear: corners map to corners)
    head    a similarity fitted on the head points both sides show (nose, eyes, ears, neck); kept
            upright, nose-to-crown height onto height, when those points disagree in shape (a profile)
    hands   piecewise affine over MediaPipe's 21 hand points (Delaunay triangles)

The same coordinates are then placed on the exemplar's part. Which part owns a pixel: inside
a part's own outline (``|offset| <= half-width``), the part nearest the camera in the usual
depth order (hands, forearms, upper arms, head, torso, legs); elsewhere in the silhouette, the
part with the smallest normalised distance. Silhouettes come from selfie segmentation (photos);
skeletons with no photo (drawn by a user, OpenPose JSON) get nominal widths from the body size.

Limbs the input shows and the exemplar does not (hidden, out of its frame) get a stand-in, reported
in the notes: an upper arm hangs from its shoulder beside the torso where the exemplar shows its
sleeve there (a continuous part of the map); otherwise the part takes the texture of the first
limb in ``DONORS`` the exemplar shows (the other arm, the same limb's other segment: its own
coordinates, a seam against its neighbours, ``ChartMap.stand_in``). A part with nothing to stand
in for it (legs for a head-and-shoulders exemplar) is refused when it is more than
``REFUSE_SHARE`` of the input's body (a sliver is left to the engine's fill and reported).

Skeletons no body could have (``drop_misread``): a shoulder read on the face (a body seen from the side or
bent over) keeps the torso's outline but loses its arm, and the torso is then drawn with the exemplar's
clothing texture instead of its quad; an exemplar limb lying off its person is dropped (a stand-in takes
its place). Both sides misread alike (a pseudo pair) are paired as read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay

from core.charts.base import ChartMap, nearest_in
from core.conditions.condition import Condition
from core.conditions.pose import find_face_line
from core.conditions.skeleton import COCO18
from core.errors import InputError
from core.imageio import disc
from core.utils.deferred import Deferred

# Part ids (ChartMap.region), in depth order: earlier parts are drawn in front of later ones.
HANDS = ("right hand", "left hand")
LIMBS = {  # name: (joint, joint, nominal half-width as a fraction of the body scale)
    "right forearm": (3, 4, 0.08), "left forearm": (6, 7, 0.08),
    "right upper arm": (2, 3, 0.10), "left upper arm": (5, 6, 0.10),
    "right shin": (9, 10, 0.11), "left shin": (12, 13, 0.11),
    "right thigh": (8, 9, 0.16), "left thigh": (11, 12, 0.16),
}
PARTS = (*HANDS, "right forearm", "left forearm", "right upper arm", "left upper arm", "head", "torso",
         "right shin", "left shin", "right thigh", "left thigh")
PART_ID = {name: i + 1 for i, name in enumerate(PARTS)}  # 0 = background
HEAD_JOINTS = (0, 14, 15, 16, 17)  # nose, eyes, ears (the neck anchors the head's scale too)
TORSO = (2, 5, 11, 8)  # right shoulder, left shoulder, left hip, right hip: quad corners (u, v) = 00 10 11 01
EXTREMITY = 0.35  # forearms and shins reach this fraction of their length past the wrist / ankle
FAR = 2.5  # silhouette pixels further than this (normalised distance) from every part stay undefined
WIDTH_RANGE = (0.4, 2.2)  # measured half-widths are kept within these multiples of the nominal one
# Parts the exemplar lacks: whose texture stands in for them, in order of preference (left/right
# counterpart first, then the same limb's other segment: sleeve for sleeve, trouser for trouser).
DONORS = {
    "right upper arm": ("left upper arm", "right forearm", "left forearm"),
    "left upper arm": ("right upper arm", "left forearm", "right forearm"),
    "right forearm": ("left forearm", "right upper arm", "left upper arm"),
    "left forearm": ("right forearm", "left upper arm", "right upper arm"),
    "right thigh": ("left thigh", "right shin", "left shin"),
    "left thigh": ("right thigh", "left shin", "right shin"),
    "right shin": ("left shin", "right thigh", "left thigh"),
    "left shin": ("right shin", "left thigh", "right thigh"),
}
UPPER_ARM = 0.55  # a hanging upper arm's length, x the body scale (neck to mid-hip) ...
HANG_MIN = 0.4  # ... shortened to stay in the exemplar's frame, down to this fraction of it
HANG_OUT = 0.5  # ... its bone this many half-widths outside the shoulder joint (off the chest) ...
HANG_WIDTH = 0.85  # ... and its half-width this fraction of the silhouette's there
HANG_ON_BODY = 0.75  # a hanging arm is used when this much of it lies on the exemplar's silhouette
REFUSE_SHARE = 0.05  # parts with no stand-in are refused when they own this much of the input's body ...
LENGTHS = {"upper arm": 0.55, "forearm": 0.5, "thigh": 0.85, "shin": 0.85}  # typical limbs, x the body scale
SHORT = 0.4  # ... unless shorter than this fraction of their typical length (a guess at the frame's edge)


@dataclass
class Body:
    """One side's body geometry at its condition's size: joints, silhouette and limb widths."""

    joints: np.ndarray  # (18, 2) x, y (missing joints synthesised where a chart needs them)
    found: np.ndarray  # (18,) bool: joints the extractor actually found
    hands: np.ndarray | None  # (2, 21, 3) or None
    silhouette: np.ndarray  # (H, W) bool: measured (photo) or nominal (skeleton only)
    measured: bool  # silhouette from segmentation (True) or nominal widths (False)
    scale: float  # body size in pixels (neck to mid-hip, or its estimate)
    widths: dict[str, np.ndarray]  # limb -> (WIDTH_SAMPLES,) half-width along the bone, pixels
    flanks: np.ndarray | None  # (2, WIDTH_SAMPLES): the torso's silhouette past the quad's right / left
    # side, in units of the quad's width, down the torso (None: nominal outline, the quad itself)
    held: np.ndarray | None = None  # (H, W) bool: what the segmentation took for the person and no body
    # part explains (a held helmet), left out of ``silhouette``; None: nothing held (or a nominal outline)
    doubts: list[str] = field(default_factory=list)  # joints the detector placed where no body has them, and
    # what was done about them (``plausible_skeleton``, ``drop_misread``)
    misread: frozenset = frozenset()  # joints kept for the torso's sake but placed where no body has them (a
    # shoulder found on the face): nothing hangs from them; a torso with one is drawn from texture
    dropped: frozenset = frozenset()  # joints ``drop_misread`` took out (an arm from such a shoulder, a wrist off
    # the person)
    face_line: Deferred | None = None  # () -> (2, 2) x, y of the top of the forehead and the bottom of the chin
    # found on the photo, or None (found when first asked: only a head kept upright needs it); None: no photo


WIDTH_SAMPLES = 9


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _body_scale(joints: np.ndarray, found: np.ndarray) -> float:
    """Neck-to-mid-hip length, or its estimate from the shoulders or the head."""
    if found[[1, 8, 11]].any() and found[1] and (found[8] or found[11]):
        hips = joints[[h for h in (8, 11) if found[h]]].mean(axis=0)
        return float(np.hypot(*(hips - joints[1])))
    if found[2] and found[5]:
        return 1.3 * float(np.hypot(*(joints[2] - joints[5])))
    if found[0] and found[1]:
        return 2.5 * float(np.hypot(*(joints[0] - joints[1])))
    pts = joints[found]
    if not len(pts):
        return 8.0
    return float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 8.0))


TORSO_MIN = 1.0  # hips nearer the neck than this many head radii (or on the head's side of it) are misread


def _facedisc(joints: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Centre and radius of the head from the face joints alone (nose, eyes, ears: the neck may be misread)."""
    face = [i for i in HEAD_JOINTS if found[i]]
    if len(face) < 2:
        return None
    centre = joints[face].mean(axis=0)
    spread = max(float(np.hypot(*(joints[i] - centre))) for i in face)
    eyes = [i for i in (14, 15) if found[i]]
    drop = float(np.hypot(*(joints[0] - joints[eyes].mean(axis=0)))) if found[0] and eyes else 0.0
    return centre, max(1.6 * spread, 2.0 * drop, 4.0)


def plausible_skeleton(joints: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The skeleton with the joints no body could have set right (a copy), and what was done, in words.

    Hips on the head's side of the shoulders, or nearer the neck than a head's radius, are a misread
    body (a detector guessing at a person it sees from above or bent double): they and the legs are
    dropped, and the torso is completed below the shoulders as for a head-and-shoulders photo (legs
    the input needs then get stand-ins or are refused). (A shoulder misread onto the chin, as on the
    cameraman bent over his camera, is left: rebuilt from the hips' line, it gave a worse torso.)"""
    joints, found = joints.copy(), found.copy()
    head = _facedisc(joints, found)
    if head is None:
        return joints, found, []
    centre, radius = head
    doubts = []
    hips = [h for h in (8, 11) if found[h]]
    if hips and found[1]:
        spine = joints[hips].mean(axis=0) - joints[1]
        down = joints[1] - centre
        if spine @ down <= 0 or np.hypot(*spine) < TORSO_MIN * radius:
            found[[8, 9, 10, 11, 12, 13]] = False
            doubts.append("the hips were detected at the shoulders or above them; they and the legs are not used")
    return joints, found, doubts


def _complete_torso(joints: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Synthesise missing hips (a head-and-shoulders shot) below the shoulders, so the torso chart
    exists on both sides of the pair with the same construction."""
    j = joints.copy()
    if not (found[2] and found[5]):
        return j
    rs, ls = j[2], j[5]
    across = ls - rs
    down = np.array([-across[1], across[0]])  # perpendicular to the shoulder line ...
    if found[0] and np.dot(down, j[0] - (rs + ls) / 2) > 0:  # ... pointing away from the nose
        down = -down
    elif not found[0] and down[1] < 0:
        down = -down
    if found[8] and not found[11]:
        j[11] = j[8] + across * 0.6
    elif found[11] and not found[8]:
        j[8] = j[11] - across * 0.6
    elif not (found[8] or found[11]):
        mid = (rs + ls) / 2 + down * 1.25
        j[8], j[11] = mid - across * 0.3, mid + across * 0.3
    return j


ON_BODY = 0.5  # an exemplar limb whose bone lies less than this share on its silhouette was misread (a wrist
# guessed in the background past a camera)
ARM_PARTS = ("right upper arm", "left upper arm", "right forearm", "left forearm")
ARM_OF = {2: ("right upper arm", "right forearm"), 5: ("left upper arm", "left forearm")}  # a shoulder's arm


def _on_face(joints: np.ndarray, found: np.ndarray, point: np.ndarray) -> bool:
    """Whether ``point`` lies on the face: inside the face joints' disc, or nearer a face joint than the face's
    own size (the nose to its farthest eye or ear: a profile's joints all sit at its front, so its disc does
    not reach its cheek)."""
    head = _facedisc(joints, found)
    if head is None:
        return False
    if np.hypot(*(point - head[0])) < head[1]:
        return True
    face = [i for i in HEAD_JOINTS if found[i]]
    if not found[0] or len(face) < 2:
        return False
    size = max(float(np.hypot(*(joints[i] - joints[0]))) for i in face)
    return min(float(np.hypot(*(point - joints[i]))) for i in face) < size


def drop_misread(body: Body, off_body: bool = True) -> Body:
    """The body with the limbs the detector could not have seen dropped (a copy), said in ``doubts``.

    A shoulder on the face (``_on_face``; the cameraman bent over his camera: his far shoulder is read on his
    chin) is kept for the torso's outline, but the arm hanging from it is dropped and the torso is marked
    ``misread``: its quad has a corner on the face, and mapped corner to corner it smears the face and the
    collar across the input's chest (``_torso_texture`` draws it instead). With ``off_body`` (the exemplar's
    side), a limb whose bone lies mostly off the silhouette (a wrist guessed in the background) is dropped too:
    its texture would be the background. On the exemplar, dropped limbs then get the usual stand-ins (the
    other arm's sleeve) or the usual refusal; on the input, their pixels go to the parts that are there (an
    arm from a shoulder on the chin would own the face)."""
    joints, found = body.joints, body.found.copy()
    hands = None if body.hands is None else body.hands.copy()
    misread, doubts = set(body.misread), []
    for shoulder, arm in ARM_OF.items():
        if found[shoulder] and _on_face(joints, found, joints[shoulder]):
            misread.add(shoulder)
            side = arm[0].split()[0]
            doubts.append(f"its {side} shoulder was found on its face, as for a body seen from the side or bent over; "
                          f"its {side} arm is not used, and the torso is drawn with clothing texture, not by its shape")
            found[[LIMBS[n][1] for n in arm]] = False
    if off_body and body.measured:
        h, w = body.silhouette.shape
        for name, (a, b, _) in LIMBS.items():
            if not (found[a] and found[b]):
                continue
            t = np.linspace(0.1, 0.9, WIDTH_SAMPLES)[:, None]
            pts = np.round(joints[a] + t * (joints[b] - joints[a])).astype(int)
            inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
            on = np.zeros(len(pts), bool)
            on[inside] = body.silhouette[pts[inside, 1], pts[inside, 0]]
            if on.mean() < ON_BODY:
                found[b] = False
                doubts.append(f"its {COCO18[b]} lies off its person; its {name} is not used")
    if not doubts:
        return body
    for k, wrist in enumerate((4, 7)):
        if hands is not None and not found[wrist]:
            hands[k, :, 2] = 0.0
    widths = {n: w_ for n, w_ in body.widths.items() if found[LIMBS[n][0]] and found[LIMBS[n][1]]}
    dropped = frozenset(np.flatnonzero(body.found & ~found).tolist())
    return replace(body, found=found, hands=hands, widths=widths, misread=frozenset(misread), dropped=dropped,
                   doubts=[*body.doubts, *doubts])


def _misread_alike(src: Body, ex: Body) -> bool:
    """Whether the input's skeleton, as read, is misread as the exemplar's was (``ex`` after ``drop_misread``): the
    same shoulder on the face, the same limbs off the person (a pseudo pair, two shots of one bent pose). The two
    skeletons then agree in their error and are paired as read."""
    if not (ex.misread or ex.dropped):
        return False
    mine = drop_misread(src)
    return mine.misread == ex.misread and mine.dropped == ex.dropped


def _nominal_silhouette(joints: np.ndarray, found: np.ndarray, hands: np.ndarray | None, scale: float,
                        size: tuple[int, int]) -> np.ndarray:
    """A body outline from the joints alone: limb capsules, the torso quad, a head disc and the hands' hulls."""
    import cv2

    h, w = size
    canvas = np.zeros((h, w), np.uint8)
    for a, b, frac in LIMBS.values():
        if found[a] and found[b]:
            end = joints[b] + (joints[b] - joints[a]) * (EXTREMITY if b in (4, 7, 10, 13) else 0)
            cv2.line(canvas, tuple(np.round(joints[a]).astype(int)), tuple(np.round(end).astype(int)), 1,
                     thickness=max(1, int(round(2 * frac * scale))))
    if found[2] and found[5]:
        cv2.fillConvexPoly(canvas, np.round(joints[list(TORSO)]).astype(np.int32), 1)
    head = _head_centre(joints, found)
    if head is not None:
        cv2.circle(canvas, tuple(np.round(head[0]).astype(int)), max(1, int(round(head[1]))), 1, thickness=-1)
        if found[1]:  # the neck, head to shoulders
            cv2.line(canvas, tuple(np.round(head[0]).astype(int)), tuple(np.round(joints[1]).astype(int)), 1,
                     thickness=max(1, int(round(head[1]))))
    for hand in hands if hands is not None else ():
        if hand[0, 2] > 0:
            cv2.fillConvexPoly(canvas, cv2.convexHull(np.round(hand[:, :2]).astype(np.int32)), 1)
    return canvas > 0


def _head_centre(joints: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Centre and radius of the head disc from the face joints (and the neck for its size)."""
    face = [i for i in HEAD_JOINTS if found[i]]
    if not face:
        return None
    centre = joints[face].mean(axis=0)
    spread = max((float(np.hypot(*(joints[i] - centre))) for i in face), default=0.0)
    neck = float(np.hypot(*(joints[1] - centre))) if found[1] else 0.0
    return centre, max(1.6 * spread, 0.7 * neck, 4.0)


def _measure_widths(silhouette: np.ndarray, a: np.ndarray, b: np.ndarray, nominal: float) -> np.ndarray:
    """Half-width of the silhouette across the bone a->b at WIDTH_SAMPLES positions: the smaller of
    the two sides (a limb pressed against the torso merges with it on one side only), smoothed,
    kept within WIDTH_RANGE of the nominal width."""
    h, w = silhouette.shape
    d = b - a
    length = max(float(np.hypot(*d)), 1e-6)
    n = np.array([-d[1], d[0]]) / length
    t = np.linspace(0.1, 0.9, WIDTH_SAMPLES)
    cap = int(np.ceil(WIDTH_RANGE[1] * nominal)) + 1
    steps = np.arange(cap + 1)
    sides = []
    for sign in (1.0, -1.0):
        pts = a + t[:, None, None] * d + sign * steps[None, :, None] * n  # (T, S, 2)
        x = np.clip(np.round(pts[..., 0]).astype(int), 0, w - 1)
        y = np.clip(np.round(pts[..., 1]).astype(int), 0, h - 1)
        inside = silhouette[y, x] & (pts[..., 0] >= 0) & (pts[..., 0] < w) & (pts[..., 1] >= 0) & (pts[..., 1] < h)
        first_out = np.where(inside.all(axis=1), cap, np.argmin(inside, axis=1)).astype(np.float64)
        sides.append(first_out)
    widths = np.minimum(*sides)
    widths[widths <= 0] = np.nan  # the bone runs outside the silhouette here: use the neighbours
    if np.isnan(widths).all():
        return np.full(WIDTH_SAMPLES, nominal)
    widths = np.where(np.isnan(widths), np.nanmedian(widths), widths)
    padded = np.pad(widths, 1, mode="edge")
    widths = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    return np.clip(widths, WIDTH_RANGE[0] * nominal, WIDTH_RANGE[1] * nominal)


def _width_at(widths: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.interp(t, np.linspace(0.1, 0.9, WIDTH_SAMPLES), widths)


def body_of(cond: Condition) -> Body:
    """The body geometry of a pose condition (photo: measured silhouette; skeleton: nominal)."""
    if cond.keypoints is None:  # an exemplar with no person found (kept with allow_partial): no parts
        kp = np.zeros((18, 3))
    elif len(cond.keypoints) != 18:
        raise InputError("Body charts need a pose condition with 18 COCO keypoints.")
    else:
        kp = np.asarray(cond.keypoints, np.float64)
    joints, found, doubts = plausible_skeleton(kp[:, :2].copy(), kp[:, 2] > 0)
    joints = _complete_torso(joints, found)
    scale = max(_body_scale(joints, found), 8.0)
    size = cond.size
    drawn = cond.preview.any(axis=2) if cond.preview is not None else None
    mask = cond.subject_mask
    measured = (cond.image is not None and mask is not None and mask.shape == size and mask.any()
                and not (drawn is not None and np.array_equal(mask, drawn)))
    hands = None if cond.hands is None else np.asarray(cond.hands, np.float64)
    silhouette = mask.astype(bool) if measured else _nominal_silhouette(joints, found, hands, scale, size)
    body = _measured(joints, found, hands, silhouette, measured, scale)
    body.doubts = doubts
    if measured:
        held = held_objects(body, cond.body_mask)
        if held.any():  # the body measured again without the object (limbs' widths, torso flanks)
            body = replace(_measured(joints, found, hands, silhouette & ~held, measured, scale), held=held,
                           doubts=doubts)
        image = cond.image
        body.face_line = Deferred(lambda: find_face_line(image, kp))
    return body


def _measured(joints: np.ndarray, found: np.ndarray, hands: np.ndarray | None, silhouette: np.ndarray,
              measured: bool, scale: float) -> Body:
    """The body with its limbs' widths and torso flanks measured on ``silhouette`` (nominal when not measured)."""
    widths = {}
    for name, (a, b, frac) in LIMBS.items():
        if found[a] and found[b]:
            nominal = frac * scale
            widths[name] = (_measure_widths(silhouette, joints[a], joints[b], nominal) if measured
                            else np.full(WIDTH_SAMPLES, nominal))
    flanks = _measure_flanks(silhouette, joints, found, widths) if measured and found[2] and found[5] else None
    return Body(joints, found, hands, silhouette, measured, scale, widths, flanks)


HELD_MIN = 0.01  # a piece of the silhouette outside the pose model's body is an object from this share of it ...
HELD_RIM = 0.02  # ... past this rim round that body (x the picture's side: the two segmentations' edges differ) ...
HELD_OUT = 0.5  # ... with at least this share of it outside every body part's outline


def held_objects(body: Body, body_mask: np.ndarray | None) -> np.ndarray:
    """(H, W) bool: pieces of the measured (selfie) silhouette that the pose model's own body segmentation
    ``body_mask`` leaves out and no body part's chart explains: a held helmet, a tripod's head. They are no
    part of the body to be drawn in the exemplar's looks (its clothes would fill them with a dark blob)."""
    import cv2

    held = np.zeros(body.silhouette.shape, bool)
    if not body.measured or body_mask is None or body_mask.shape != held.shape or not body_mask.any():
        return held
    rim = max(1, round(HELD_RIM * max(held.shape)))
    count, labels, stats = off_body_pieces(body.silhouette, body_mask, rim)
    parts = [n for n in PARTS if not _lacking(body)[n]]
    # (limbs at their nominal widths: the measured ones took in the object wherever a hand holds it)
    nominal = replace(body, widths={n: np.full(WIDTH_SAMPLES, LIMBS[n][2] * body.scale) for n in body.widths})
    for k in range(1, count):
        if stats[k, cv2.CC_STAT_AREA] < HELD_MIN * body.silhouette.sum():
            continue
        ys, xs = np.nonzero(labels == k)
        p = np.stack([xs, ys], axis=1).astype(np.float64)
        cost = np.min([_part_cost(nominal, n, p, parts) for n in parts], axis=0) if parts else np.full(len(p), np.inf)
        if (cost > 1.0).mean() >= HELD_OUT:
            # the piece back up to the body's own edge (the rim left out above is the object's too)
            held[ys, xs] = True
    return back_to_the_body(held, body.silhouette, body_mask, rim) if held.any() else held


def off_body_pieces(silhouette: np.ndarray, body_mask: np.ndarray, rim: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The pieces of ``silhouette`` (H, W) bool farther than ``rim`` from the pose model's own body segmentation
    ``body_mask`` (opened by half the rim: slivers where the two segmentations' edges differ go), as OpenCV's
    connected components: (count, labels (H, W), stats)."""
    import cv2

    outside = silhouette & ~(cv2.dilate(body_mask.astype(np.uint8), disc(rim)) > 0)
    outside = cv2.morphologyEx(outside.astype(np.uint8), cv2.MORPH_OPEN, disc(max(1, rim // 2)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(outside, connectivity=8)
    return count, labels, stats


def back_to_the_body(held: np.ndarray, silhouette: np.ndarray, body_mask: np.ndarray, rim: int) -> np.ndarray:
    """``held`` pieces grown back up to the body's own edge: the rim ``off_body_pieces`` left out is theirs too."""
    import cv2

    return held | (cv2.dilate(held.astype(np.uint8), disc(rim + 1)) > 0) & silhouette & ~body_mask


FLANK_RANGE = (0.02, 0.8)  # torso flank widths kept within these fractions of the quad's width


def _measure_flanks(silhouette: np.ndarray, joints: np.ndarray, found: np.ndarray,
                    widths: dict[str, np.ndarray]) -> np.ndarray:
    """How far the torso's silhouette reaches past the quad's two sides (u < 0 and u > 1), at
    WIDTH_SAMPLES heights: marching outward along the quad's rows until the background or an arm
    (a hanging arm touches the torso), in units of the row's width; a 3-tap median."""
    h, w = silhouette.shape
    quad = joints[list(TORSO)]
    v = np.linspace(0.1, 0.9, WIDTH_SAMPLES)
    right_side = quad_place(np.c_[np.zeros_like(v), v], quad)  # u = 0: the right shoulder / hip side
    left_side = quad_place(np.c_[np.ones_like(v), v], quad)
    row = np.hypot(*(left_side - right_side).T)[:, None]  # (T, 1)
    arms = [n for n in ("right upper arm", "right forearm", "left upper arm", "left forearm") if n in widths]
    out = np.empty((2, WIDTH_SAMPLES))
    for k, (start, away) in enumerate(((right_side, right_side - left_side), (left_side, left_side - right_side))):
        unit = away / np.maximum(row, 1e-6)
        cap = int(np.ceil(FLANK_RANGE[1] * row.max())) + 1
        steps = np.arange(cap + 1)
        pts = start[:, None, :] + steps[None, :, None] * unit[:, None, :]  # (T, S, 2)
        flat = pts.reshape(-1, 2)
        x = np.clip(np.round(flat[:, 0]).astype(int), 0, w - 1)
        y = np.clip(np.round(flat[:, 1]).astype(int), 0, h - 1)
        free = silhouette[y, x] & (flat[:, 0] >= 0) & (flat[:, 0] < w) & (flat[:, 1] >= 0) & (flat[:, 1] < h)
        for name in arms:
            a, b, _ = LIMBS[name]
            free &= _limb_cost(flat, joints[a], joints[b], widths[name], 0.0) > 1.0
        free = free.reshape(pts.shape[:2])
        reach = np.where(free.all(axis=1), cap, np.argmin(free, axis=1)) / row[:, 0]
        padded = np.pad(reach, 1, mode="edge")
        out[k] = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    return np.clip(out, *FLANK_RANGE)


def torso_local(p: np.ndarray, body: Body, other: Body) -> np.ndarray:
    """(u, v) in ``body``'s torso quad, with the flanks (u < 0, u > 1) rescaled to ``other``'s:
    the edge of one torso's silhouette lands on the edge of the other's."""
    uv = quad_local(p, body.joints[list(TORSO)])
    if body.flanks is None or other.flanks is None:
        return uv
    v = np.clip(uv[:, 1], 0.1, 0.9)
    samples = np.linspace(0.1, 0.9, WIDTH_SAMPLES)
    right = np.clip(np.interp(v, samples, other.flanks[0]) / np.interp(v, samples, body.flanks[0]), 2 / 3, 1.5)
    left = np.clip(np.interp(v, samples, other.flanks[1]) / np.interp(v, samples, body.flanks[1]), 2 / 3, 1.5)
    u = uv[:, 0]
    uv[:, 0] = np.where(u < 0, u * right, np.where(u > 1, 1 + (u - 1) * left, u))
    return uv


# --- the charts: local coordinates on one side, placed on the other ------------------------------


def _limb_local(p: np.ndarray, a: np.ndarray, b: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) pixels -> t along a->b and the offset across it in half-widths (signed: left of the bone > 0)."""
    d = b - a
    length2 = max(float(d @ d), 1e-9)
    rel = p - a
    t = rel @ d / length2
    offset = _cross(d, rel) / np.sqrt(length2)
    return t, offset / _width_at(widths, np.clip(t, 0.0, 1.0))


def _limb_place(t: np.ndarray, s: np.ndarray, a: np.ndarray, b: np.ndarray, widths: np.ndarray) -> np.ndarray:
    d = b - a
    length = max(float(np.hypot(*d)), 1e-9)
    n = np.array([-d[1], d[0]]) / length  # the side where _cross(d, rel) > 0
    return a + t[:, None] * d + (s * _width_at(widths, np.clip(t, 0.0, 1.0)))[:, None] * n


def _limb_cost(p: np.ndarray, a: np.ndarray, b: np.ndarray, widths: np.ndarray, reach: float) -> np.ndarray:
    """Distance to the bone (extended by ``reach`` of its length past b), in half-widths."""
    t, s = _limb_local(p, a, b, widths)
    d = b - a
    along = (t - np.clip(t, 0.0, 1.0 + reach)) * np.hypot(*d) / _width_at(widths, np.clip(t, 0.0, 1.0))
    return np.hypot(s, along)


def quad_local(p: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Inverse bilinear map: (N, 2) pixels -> (N, 2) (u, v) with quad = corners at (0,0) (1,0) (1,1) (0,1)."""
    a, b, c, d = quad
    e, f, g = b - a, d - a, a - b + c - d
    h = p - a
    k2 = float(_cross(g, f))
    k1 = _cross(e, f) + _cross(h, g)
    k0 = _cross(h, e)
    if abs(k2) < 1e-6 * max(abs(float(_cross(e, f))), 1e-9):
        roots = [-k0 / np.where(np.abs(k1) < 1e-12, 1e-12, k1)]
    else:
        disc = np.sqrt(np.maximum(k1 * k1 - 4 * k0 * k2, 0.0))
        roots = [(-k1 - disc) / (2 * k2), (-k1 + disc) / (2 * k2)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _pick_root(roots, e, f, g, h)


def _pick_root(roots, e, f, g, h) -> np.ndarray:
    """The (u, v) of the quadratic's root that lies inside the unit square (or nearest to it).
    (Column by column: the same arithmetic as on (N, 2) arrays, with fewer temporaries.)"""
    best_uv, best_err = None, None
    for v in roots:
        den_x, den_y = e[0] + g[0] * v, e[1] + g[1] * v
        use_x = np.abs(den_x) >= np.abs(den_y)
        u = np.where(use_x, (h[:, 0] - f[0] * v) / np.where(use_x, den_x, 1.0),
                     (h[:, 1] - f[1] * v) / np.where(use_x, 1.0, den_y))
        err = np.abs(u - np.clip(u, 0, 1)) + np.abs(v - np.clip(v, 0, 1))  # prefer the root inside (or nearest)
        err = np.where(np.isfinite(err), err, np.inf)
        if best_uv is None:
            best_uv, best_err = np.stack([u, v], axis=1), err
        else:
            better = err < best_err
            best_uv[better, 0], best_uv[better, 1], best_err[better] = u[better], v[better], err[better]
    return best_uv


def quad_place(uv: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Bilinear map (N, 2) (u, v) -> pixels inside the quad (corners (0,0) (1,0) (1,1) (0,1))."""
    a, b, c, d = quad
    u, v = uv[:, :1], uv[:, 1:]
    return a + u * (b - a) + v * (d - a) + u * v * (a - b + c - d)


def _quad_cost(p: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """0 inside the torso quad, else how far outside in quad units (x4: a quarter of its side = 1)."""
    uv = quad_local(p, quad)
    return 4.0 * np.abs(uv - np.clip(uv, 0, 1)).max(axis=1)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection) src -> dst: (2, 3)."""
    if len(src) == 1:
        return np.array([[1.0, 0.0, dst[0, 0] - src[0, 0]], [0.0, 1.0, dst[0, 1] - src[0, 1]]])
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    zs, zd = (src - ms) @ np.array([1, 1j]), (dst - md) @ np.array([1, 1j])  # as complex numbers
    k = np.vdot(zs, zd) / max(float(np.vdot(zs, zs).real), 1e-9)  # dst ~ k * src
    rot = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return np.concatenate([rot, (md - rot @ ms)[:, None]], axis=1)


def piecewise_affine(src: np.ndarray, dst: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Map (N, 2) pixels by the affine map of the Delaunay triangle (of ``src``) they fall in; outside
    the triangles, by the least-squares affine map of all points."""
    out = np.empty_like(p)
    fit, *_ = np.linalg.lstsq(np.c_[src, np.ones(len(src))], dst, rcond=None)
    out[:] = np.c_[p, np.ones(len(p))] @ fit
    try:
        tri = Delaunay(src)
    except Exception:  # degenerate (collinear) points: the global affine only
        return out
    simplex = tri.find_simplex(p)
    inside = simplex >= 0
    if inside.any():
        trans = tri.transform[simplex[inside]]  # (n, 3, 2)
        bary2 = np.einsum("nij,nj->ni", trans[:, :2], p[inside] - trans[:, 2])
        bary = np.c_[bary2, 1 - bary2.sum(axis=1)]
        corners = dst[tri.simplices[simplex[inside]]]  # (n, 3, 2)
        out[inside] = np.einsum("ni,nij->nj", bary, corners)
    return out


# --- part assignment --------------------------------------------------------------------------


def _lacking(body: Body) -> dict[str, list[int]]:
    """Per part, the COCO joints it would need that this body lacks ([] = the part is there).
    A hand lacks its wrist's index when MediaPipe found no hand there."""
    f = body.found
    lacking = {name: [j for j in (a, b) if not f[j]] for name, (a, b, _) in LIMBS.items()}
    lacking["torso"] = [j for j in (2, 5) if not f[j]]
    lacking["head"] = [] if f[list(HEAD_JOINTS)].any() else [0]
    for k, (name, wrist) in enumerate(zip(HANDS, (4, 7))):
        lacking[name] = [] if body.hands is not None and body.hands[k, 0, 2] > 0 else [wrist]
    return lacking


def _hand_cost(p: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """Distance to the hand's points in units of a quarter of the palm length."""
    pts = hand[:, :2]
    palm = max(float(np.hypot(*(pts[9] - pts[0]))), 2.0)
    nearest = np.full(len(p), np.inf)
    for q in pts:
        nearest = np.minimum(nearest, np.hypot(p[:, 0] - q[0], p[:, 1] - q[1]))
    return nearest / (0.3 * palm)


def assign(body: Body, p: np.ndarray, parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Owner part (index into ``parts``, -1 = none) and its normalised distance for (N, 2) pixels.

    Inside a part's outline (distance <= 1) the earliest part in depth order wins; elsewhere the
    nearest part, up to FAR."""
    if not parts or not len(p):
        return np.full(len(p), -1), np.full(len(p), np.inf)
    costs = np.full((len(parts), len(p)), np.inf)
    for k, name in enumerate(parts):
        costs[k] = _part_cost(body, name, p, parts)
    inside = costs <= 1.0
    first_inside = np.where(inside.any(axis=0), np.argmax(inside, axis=0), -1)
    nearest = np.argmin(costs, axis=0)
    owner = np.where(first_inside >= 0, first_inside, nearest)
    cost = costs[owner, np.arange(len(p))]
    return np.where(cost <= FAR, owner, -1), cost


def _part_cost(body: Body, name: str, p: np.ndarray, parts: list[str]) -> np.ndarray:
    """Normalised distance of (N, 2) pixels to a part; a forearm covers its hand when no hand chart does."""
    j = body.joints
    if name in LIMBS:
        a, b, _ = LIMBS[name]
        extremity = b in (10, 13) or (b in (4, 7) and HANDS[(4, 7).index(b)] not in parts)
        return _limb_cost(p, j[a], j[b], body.widths[name], EXTREMITY if extremity else 0.0)
    if name == "torso":
        return _quad_cost(p, j[list(TORSO)])
    if name == "head":
        centre, radius = _head_centre(j, body.found)
        return np.hypot(p[:, 0] - centre[0], p[:, 1] - centre[1]) / radius
    return _hand_cost(p, body.hands[HANDS.index(name)])


def _map_part(name: str, src: Body, ex: Body, p: np.ndarray) -> np.ndarray:
    """(N, 2) source pixels of part ``name`` -> exemplar pixels (x, y)."""
    if name in LIMBS:
        a, b, _ = LIMBS[name]
        t, s = _limb_local(p, src.joints[a], src.joints[b], src.widths[name])
        return _limb_place(t, s, ex.joints[a], ex.joints[b], ex.widths[name])
    if name == "torso":
        return quad_place(torso_local(p, src, ex), ex.joints[list(TORSO)])
    if name == "head":
        m, upright = head_similarity(src, ex)
        q = p @ m[:, :2].T + m[:, 2]
        return _turned_face(src, ex, p, q) if upright else q
    k = HANDS.index(name)
    return piecewise_affine(src.hands[k, :, :2], ex.hands[k, :, :2], p)


HEAD_MISFIT = 0.2  # the head joints' similarity is not trusted when its residual is this much of the head's radius


def head_similarity(src: Body, ex: Body) -> tuple[np.ndarray, bool]:
    """(2, 3) the head's map, input pixels -> exemplar pixels: the similarity fitted on the head joints both
    sides show (nose, eyes, ears, neck). When those disagree in shape (a frontal face against a profile bent
    over a camera: the neck beside the face, not below it) that fit turns the head on its side; the head is
    then kept upright (``upright_head``; the flag says so)."""
    common = [i for i in (*HEAD_JOINTS, 1) if src.found[i] and ex.found[i]]
    if common:
        m = similarity(src.joints[common], ex.joints[common])
        misfit = src.joints[common] @ m[:, :2].T + m[:, 2] - ex.joints[common]
        radius = _head_centre(ex.joints, ex.found)[1]
        if len(common) < 3 or np.sqrt((misfit ** 2).sum(axis=1).mean()) <= HEAD_MISFIT * radius:
            return m, False
        upright = upright_head(src, ex)
        return (m, False) if upright is None else (upright, True)
    (c_src, r_src), (c_ex, r_ex) = _head_centre(src.joints, src.found), _head_centre(ex.joints, ex.found)
    k = r_ex / r_src  # no joint in common (e.g. ears vs eyes): disc to disc
    return np.array([[k, 0.0, c_ex[0] - k * c_src[0]], [0.0, k, c_ex[1] - k * c_src[1]]]), False


def _head_frame(body: Body) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The head's centre (between the ears, seen from the front or in profile; else the face joints' mean),
    its down direction (the eyes towards the nose: the same for a face seen from the front or in profile)
    and its height from the nose to the top of the silhouette above the centre (the crown: hair or hat).
    None without the nose and an eye."""
    f = body.found
    eyes = [i for i in (14, 15) if f[i]]
    if not (f[0] and eyes):
        return None
    nose = body.joints[0]
    down = nose - body.joints[eyes].mean(axis=0)
    length = float(np.hypot(*down))
    if length < 1.0:
        return None
    down /= length
    centre = body.joints[[16, 17]].mean(axis=0) if f[[16, 17]].all() else _head_centre(body.joints, f)[0]
    h, w = body.silhouette.shape
    steps = centre - np.arange(0, 4 * body.scale)[:, None] * down  # from the head's centre upwards
    x, y = np.round(steps[:, 0]).astype(int), np.round(steps[:, 1]).astype(int)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    inside[inside] &= body.silhouette[y[inside], x[inside]]
    crown = int(np.argmin(inside)) if not inside.all() else len(inside)
    return centre, down, float(max(crown + (nose - centre) @ down, 2.0 * length))


PROFILE = 0.15  # a head is seen in profile when its nose lies this far across from its centre (x nose-to-crown) ...
PROFILE_EARS = 1.0  # ... or, with both ears found, further across than this times half their gap (512: frontal
# photos 0.03-0.26, the cameraman's framings 1.8-5.2; nose-to-crown gave 0.01-0.09 against 0.17-0.29)
DEPTH = 0.8  # a head in profile is at most this deep, nose to back (x nose-to-crown)
SPAN_CAP = 0.9  # a head's width is looked for this far either side of its centre (x nose-to-crown)
SPAN_MIN = 0.2  # ... and trusted from this width on (x its nose-to-crown; narrower: the centre is off the silhouette)
SPAN_STRETCH = 3.0  # the width's scale stays within this factor of the height's


def _head_span(body: Body, centre: np.ndarray, down: np.ndarray, height: float) -> tuple[float, float, int]:
    """The head's extent across (perpendicular to ``down``, in pixels from ``centre``: negative, positive)
    and which way it faces (+1, -1 across; 0 seen from the front: the nose between the ears, or near the
    centre without them). Seen from the front: the silhouette's
    width through the centre (hair, hat). In profile: from the back of the head to the tip of the nose; what
    lies in front of the face (a camera held to the eye) is no part of the head."""
    across = np.array([down[1], -down[0]])
    nose = float((body.joints[0] - centre) @ across)
    ears = [float((body.joints[i] - centre) @ across) for i in (16, 17) if body.found[i]]
    if len(ears) == 2 and abs(ears[0] - ears[1]) >= 1.0:  # the nose beyond both ears: turned past 45 degrees
        turned = abs(nose) > PROFILE_EARS * abs(ears[0] - ears[1]) / 2
    else:
        turned = abs(nose) > PROFILE * height
    facing = int(np.sign(nose)) if turned else 0
    h, w = body.silhouette.shape
    ends = []
    for sign in (-1.0, 1.0):
        steps = centre + sign * np.arange(0, max(2.0, SPAN_CAP * height))[:, None] * across
        x, y = np.round(steps[:, 0]).astype(int), np.round(steps[:, 1]).astype(int)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        inside[inside] &= body.silhouette[y[inside], x[inside]]
        ends.append(sign * float(np.argmin(inside) if not inside.all() else len(inside)))
    if facing:  # the face's front: the nose's tip, a little past the joint; its back no deeper than a head
        # (past it, the walk runs on into a raised collar or the back)
        front = nose + facing * 0.05 * height
        ends[(facing + 1) // 2] = front
        ends[(1 - facing) // 2] = -facing * min(abs(ends[(1 - facing) // 2]), DEPTH * height - abs(front))
    lo, hi = ends
    return min(lo, -1.0), max(hi, 1.0), facing


CHIN_RANGE = (0.1, 0.6)  # a chin found on the photo is trusted this far below the nose (x nose-to-crown)


def _chin(body: Body, frame: tuple[np.ndarray, np.ndarray, float]) -> tuple[np.ndarray, np.ndarray] | None:
    """The chin found on the photo (``Body.face_line``) and the face's own down direction (forehead to chin; a
    head in profile bent over: not the eyes-to-nose one, which points along its face), or None (no photo, none
    found, or not ``CHIN_RANGE`` below the nose: not a chin)."""
    line = body.face_line() if body.face_line is not None else None
    if line is None:
        return None
    forehead, chin = line
    _, down, height = frame
    axis = chin - forehead
    length = float(np.hypot(*axis))
    if not (length > 0 and CHIN_RANGE[0] * height <= (chin - body.joints[0]) @ down <= CHIN_RANGE[1] * height):
        return None
    return chin, axis / length


def upright_head(src: Body, ex: Body) -> np.ndarray | None:
    """(2, 3) the head mapped face to face by its own axes alone: the input's down direction onto the
    exemplar's (the head stays upright), nose-to-crown height onto nose-to-crown height, centre onto centre.
    Across, when one head is seen in profile, the input head's width goes onto the exemplar head's (from
    the back of the head to the nose; a frontal head facing a profile gives the half on its back's side), so
    a profile shows the exemplar's head from that side and a frontal face is not pasted on a profile.
    None when a side lacks the nose or both eyes."""
    a, b = _head_frame(src), _head_frame(ex)
    if a is None or b is None:
        return None
    (c_src, d_src, h_src), (c_ex, d_ex, h_ex) = a, b
    k = h_ex / h_src
    (lo_s, hi_s, face_s), (lo_e, hi_e, face_e) = _head_span(src, *a), _head_span(ex, *b)
    along, shift = k, 0.0  # across: the same scale as down (a similarity), unless a profile is involved
    if face_s and not face_e:  # the exemplar's half on the input's back side: its edge to its nose
        nose = float((ex.joints[0] - c_ex) @ np.array([d_ex[1], -d_ex[0]]))
        lo_e, hi_e = (lo_e, nose) if face_s > 0 else (nose, hi_e)
    wide = hi_s - lo_s > SPAN_MIN * h_src and hi_e - lo_e > SPAN_MIN * h_ex
    if (face_s or face_e) and not (face_s and face_e) and wide:
        along = float(np.clip((hi_e - lo_e) / (hi_s - lo_s), k / SPAN_STRETCH, k * SPAN_STRETCH))
        shift = (lo_e + hi_e) / 2 - along * (lo_s + hi_s) / 2
    a_src, a_ex = np.array([d_src[1], -d_src[0]]), np.array([d_ex[1], -d_ex[0]])
    lin = k * np.outer(d_ex, d_src) + along * np.outer(a_ex, a_src)
    return np.concatenate([lin, (c_ex + shift * a_ex - lin @ c_src)[:, None]], axis=1)


def _ear_across(body: Body, centre: np.ndarray, across: np.ndarray, back: int) -> float | None:
    """The across offset (from ``centre``) of the ear furthest on the ``back`` side (-1, +1), or None."""
    ears = [i for i in (16, 17) if body.found[i]]
    if not ears:
        return None
    return float(back * max(back * (body.joints[i] - centre) @ across for i in ears))


def _turned_face(src: Body, ex: Body, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``q`` (N, 2), the upright head map of input pixels ``p``, bent across at the ears when the input's head
    is in profile and the exemplar's seen from the front: the input's ear-to-nose goes onto the exemplar's
    ear-to-nose (its half face keeps its own width: one affine map over back-to-nose stretched it about 2x,
    the eye wide) and the back of the head onto what lies behind the ear (hair, a hat). Continuous and
    monotone across (no fold); the same map elsewhere."""
    a, b = _head_frame(src), _head_frame(ex)
    if a is None or b is None:
        return q
    (c_src, d_src, h_src), (c_ex, d_ex, h_ex) = a, b
    (lo_s, hi_s, face_s), (lo_e, hi_e, face_e) = _head_span(src, *a), _head_span(ex, *b)
    if not face_s or face_e:
        return q
    a_src, a_ex = np.array([d_src[1], -d_src[0]]), np.array([d_ex[1], -d_ex[0]])
    nose_e = float((ex.joints[0] - c_ex) @ a_ex)
    back_s, front_s = (lo_s, hi_s) if face_s > 0 else (hi_s, lo_s)
    back_e, front_e = (lo_e, nose_e) if face_s > 0 else (hi_e, nose_e)
    ear_s, ear_e = _ear_across(src, c_src, a_src, -face_s), _ear_across(ex, c_ex, a_ex, -face_s)
    if ear_s is None or ear_e is None:
        return q
    knots_s = face_s * np.array([back_s, ear_s, front_s])  # increasing from the back when the order is right
    knots_e = face_s * np.array([back_e, ear_e, front_e])
    gaps_s, gaps_e = np.diff(knots_s), np.diff(knots_e)
    if (gaps_s < 0.1 * h_src).any() or (gaps_e < 0.05 * h_ex).any():  # an ear at the back or the front: as it was
        return q
    k = h_ex / h_src
    slopes = np.clip(gaps_e / gaps_s, k / SPAN_STRETCH, k * SPAN_STRETCH)
    x_s = face_s * ((p - c_src) @ a_src)
    # piecewise linear, anchored at the ear, each side at its own slope (extended past the ends)
    x_e = knots_e[1] + np.where(x_s < knots_s[1], slopes[0], slopes[1]) * (x_s - knots_s[1])
    x_lin = face_s * ((q - c_ex) @ a_ex)
    return q + ((x_e - x_lin) * face_s)[:, None] * a_ex


CHIN = 0.4  # an upright head ends this far below the exemplar's nose (x its nose-to-crown height): its chin ...
CHIN_MARGIN = 0.02  # ... or this far below the chin found on its photo (``_chin``)


def _below_the_chin(src: Body, ex: Body, p: np.ndarray, owner: np.ndarray, order: list[str],
                    ex_owner: np.ndarray | None = None, ex_order: list[str] = ()) -> np.ndarray:
    """``owner`` with the input's head pixels that an upright head map (``head_similarity``) sends below the
    exemplar's chin given to the torso. The head's disc reaches past the chin into the neck and collar; where
    the head's joints disagree (a profile bent over a camera) the exemplar there holds its hands and the
    camera before its face, not a neck: the torso's map takes that part (its collar and coat). The chin is the
    one found on the photo (``_chin``: the line through it square to the face's own down), else ``CHIN`` below
    the nose. Also the torso's: what lies below the input's own chin and lands off the exemplar's head (what
    a profile holds under its chin, sent beside a frontal jaw), and, for an exemplar in profile, what lands
    below its ears and off its head (the nape: a collar raised behind the neck)."""
    frame = _head_frame(ex) if head_similarity(src, ex)[1] else None
    if frame is None:
        return owner
    _, down, height = frame
    head = owner == order.index("head")
    q = _map_part("head", src, ex, p[head])
    chin = _chin(ex, frame)
    if chin is None:
        below = (q - ex.joints[0]) @ down > CHIN * height
    else:  # below the line through the chin square to the face's own down (the jaw, back to the neck)
        below = (q - chin[0]) @ chin[1] > CHIN_MARGIN * height
    if ex_owner is not None:
        qx = np.clip(np.round(q[:, 0]).astype(int), 0, ex_owner.shape[1] - 1)
        qy = np.clip(np.round(q[:, 1]).astype(int), 0, ex_owner.shape[0] - 1)
        off_head = ex_owner[qy, qx] != ex_order.index("head")
        own = _head_frame(src)
        own_chin = None if own is None else _chin(src, own)
        if own_chin is not None:  # below the input's own chin (what it holds under its face) and off the
            # exemplar's head: not a part of the head in either picture
            below |= off_head & ((p[head] - own_chin[0]) @ own_chin[1] > CHIN_MARGIN * own[2])
        ears = [i for i in (16, 17) if ex.found[i]]
        if ears and _head_span(ex, *frame)[2]:  # an exemplar in profile: its nape, below its ears and off its
            # head (a collar, raised behind the neck)
            below |= off_head & (q @ down > max(ex.joints[ears] @ down))
    owner = owner.copy()
    owner[np.flatnonzero(head)[below]] = order.index("torso")
    return owner


def _before_the_face(src: Body, ex: Body, p: np.ndarray, owner: np.ndarray, order: list[str]) -> np.ndarray:
    """(N,) bool: the input's head pixels past the tip of its nose when its head is seen in profile and kept
    upright (``head_similarity``): no head is there, so it is something held before the face (the
    cameraman's camera, in both segmentations); the head's map would draw the exemplar's other half face on
    it. They show the exemplar's background (``ChartMap.held``)."""
    before = np.zeros(len(p), bool)
    frame = _head_frame(src)
    if frame is None or not head_similarity(src, ex)[1]:
        return before
    centre, down, height = frame
    lo, hi, facing = _head_span(src, *frame)
    if not facing:
        return before
    head = owner == order.index("head")
    across = np.array([down[1], -down[0]])
    tip = hi if facing > 0 else -lo
    before[head] = facing * ((p[head] - centre) @ across) > tip + 0.02 * height
    return before


# --- the chart builder ------------------------------------------------------------------------


HALO = 0.08  # positions this close (x the exemplar's body size) to its silhouette stay defined (hair, hat)
BLEND = 0.025  # parts' maps are blended across their borders over this fraction of the body scale (sigma)


def _blend_parts(src: Body, ex: Body, p: np.ndarray, owner: np.ndarray, order: list[str], missing: list[str],
                 size: tuple[int, int], torn: frozenset = frozenset()) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) exemplar x, y for the silhouette pixels ``p``: every part's map, weighted by its
    Gaussian-blurred ownership (a partition of unity). Each part's map is smooth, so the sum is
    continuous across the parts' borders: no tear (and no fold) where the head meets the torso.
    A pixel takes no weight from a part whose border with its owner is ``torn`` (pairs of indices
    into ``order``): the map jumps there. Also returns (N,) the index of the strongest other part
    blended into each pixel (-1: none)."""
    import cv2

    sigma = max(1.0, BLEND * src.scale)
    acc = np.zeros((len(p), 2))
    total = np.zeros(len(p))
    second, second_weight = np.full(len(p), -1), np.zeros(len(p))
    xs, ys = p[:, 0].astype(int), p[:, 1].astype(int)
    for k, name in enumerate(order):
        sel = owner == k
        if name in missing or not sel.any():
            continue
        own = np.zeros(size, np.float32)
        own[ys[sel], xs[sel]] = 1.0
        weight = cv2.GaussianBlur(own, (0, 0), sigma)[ys, xs]
        weight[sel] = np.maximum(weight[sel], 1e-6)  # a part's own pixels always have its map
        for j in range(len(order)):
            if frozenset((j, k)) in torn:
                weight[owner == j] = 0.0
        stronger = ~sel & (weight > second_weight)
        second[stronger], second_weight[stronger] = k, weight[stronger]
        band = weight > 1e-4
        acc[band] += weight[band, None] * _map_part(name, src, ex, p[band])
        total[band] += weight[band]
    with np.errstate(invalid="ignore", divide="ignore"):
        return acc / total[:, None], second


TEAR = 0.15  # a border between two parts is torn when their blend folds on this share of its band
HANGING = {"right upper arm": ("right forearm", "right hand"), "left upper arm": ("left forearm", "left hand"),
           "right forearm": ("right hand",), "left forearm": ("left hand",),
           "right thigh": ("right shin",), "left thigh": ("left shin",)}  # the parts a limb segment carries


def _torn_borders(p: np.ndarray, q: np.ndarray, owner: np.ndarray, second: np.ndarray, order: list[str],
                  unmapped: list[str], size: tuple[int, int]) -> tuple[frozenset, set]:
    """Pairs of parts (indices) whose blended map ``q`` (N, 2) turns over on more than ``TEAR`` of the
    band where one is blended into the other: their maps point too far apart to be joined smoothly
    (a frontal arm onto an arm reaching forward beside a torso seen from the side). Also returns
    every pair that shares a border."""
    from core.charts.folds import cells_to_pixels, folded_cells

    h, w = size
    xs, ys = p[:, 0].astype(int), p[:, 1].astype(int)
    grid = np.zeros((h, w, 2), np.float64)
    grid[ys, xs] = np.nan_to_num(q[:, ::-1])
    used = np.zeros((h, w), bool)
    used[ys, xs] = np.isfinite(q).all(axis=1)
    folded = cells_to_pixels(folded_cells(grid, used))[ys, xs]
    near = (second >= 0) & (owner >= 0)  # (-1: a pixel far from every part, owned by none)
    borders = {frozenset((int(a), int(b))) for a, b in zip(owner[near], second[near]) if a != b}
    torn = set()
    for pair in borders:
        k, j = tuple(pair)
        if order[k] in unmapped or order[j] in unmapped:
            continue
        band = (owner == k) & (second == j) | (owner == j) & (second == k)
        if folded[band].mean() > TEAR:
            torn.add(pair)
    # The smaller part of a torn pair, with the parts that hang from it (a forearm hanging beside the
    # torso goes with its torn upper arm), becomes a piece of its own: all its borders are torn.
    counts = np.bincount(owner[owner >= 0], minlength=len(order))
    for pair in list(torn):
        k, j = tuple(pair)  # the part hanging from the other (a forearm from its upper arm), else the smaller
        small = j if order[j] in HANGING.get(order[k], ()) else k if order[k] in HANGING.get(order[j], ()) \
            else min(pair, key=lambda i: counts[i])
        side = {small} | {order.index(n) for n in HANGING.get(order[small], ()) if n in order}
        torn |= {border for border in borders if len(border & side) == 1}
    return frozenset(torn), borders


def _pieces(owner: np.ndarray, n_parts: int, torn: frozenset, borders: set) -> tuple[np.ndarray, frozenset]:
    """(n_parts,) piece per part: parts joined by a border that is not torn are one piece. The pieces
    that a tear cuts off the part with the most pixels are 2, 3, ...; everything else is 1 (the
    piece that meets the engine's surround). Also returns the tears that separate two pieces (a tear
    inside one piece would be a jump of the map where the map is meant to be smooth: blended instead)."""
    piece = np.arange(n_parts)
    for pair in borders - torn:
        k, j = tuple(pair)
        piece[piece == piece[j]] = piece[k]
    counts = np.bincount(owner[owner >= 0], minlength=n_parts)
    main = piece[np.argmax(counts)]
    torn = frozenset(pair for pair in torn if len({int(piece[k]) for k in pair}) == 2)
    cut = sorted({int(piece[k]) for pair in torn for k in pair} - {int(main)})
    return np.array([cut.index(c) + 2 if c in cut else 1 for c in piece]), torn


def _on_silhouette(body: Body, q: np.ndarray) -> np.ndarray:
    """(N,) bool: exemplar points (x, y) inside its frame and on its silhouette (any point, when the
    silhouette is nominal: a skeleton says nothing about where clothes are)."""
    h, w = body.silhouette.shape
    inside = (q[:, 0] > -0.5) & (q[:, 0] < w - 0.5) & (q[:, 1] > -0.5) & (q[:, 1] < h - 0.5)
    if not body.measured:
        return inside
    qx = np.clip(np.round(q[:, 0]).astype(int), 0, w - 1)
    qy = np.clip(np.round(q[:, 1]).astype(int), 0, h - 1)
    return inside & body.silhouette[qy, qx]


def _hang_arm(ex: Body, name: str) -> bool:
    """Give the exemplar a hanging upper arm ``name`` (its elbow not found): from the shoulder straight
    down the torso (across the shoulder line, away from the head), shortened to stay in the frame, when
    it lies on the exemplar's silhouette (the sleeve beside the torso). Changes ``ex``; True when it does."""
    a, b, frac = LIMBS[name]
    if not (ex.found[a] and ex.found[2] and ex.found[5]) or a in ex.misread:  # (not from a shoulder on the face)
        return False
    down = (ex.joints[8] + ex.joints[11] - ex.joints[2] - ex.joints[5]) / 2  # the torso's axis ...
    across = ex.joints[5] - ex.joints[2]
    down = down - across * (down @ across) / max(float(across @ across), 1e-9)  # ... square to the shoulders
    down = down / max(float(np.hypot(*down)), 1e-9)
    h, w = ex.silhouette.shape
    half = frac * ex.scale
    outward = ex.joints[a] - (ex.joints[2] + ex.joints[5]) / 2
    shoulder = ex.joints[a] + HANG_OUT * half * outward / max(float(np.hypot(*outward)), 1e-9)
    length = UPPER_ARM * ex.scale
    with np.errstate(divide="ignore", invalid="ignore"):  # room to the frame's edge along ``down``
        room = min(float(np.nanmin(np.where(down > 0, (np.array([w, h]) - 1 - shoulder) / down, np.inf))),
                   float(np.nanmin(np.where(down < 0, -shoulder / down, np.inf))))
    length = min(length, room - 0.5 * half)
    if length < HANG_MIN * UPPER_ARM * ex.scale:
        return False
    elbow = shoulder + down * length
    t, s = np.meshgrid(np.linspace(0.1, 1.0, 10), np.linspace(-0.8, 0.8, 9))
    probe = _limb_place(t.ravel(), s.ravel(), shoulder, elbow, np.full(WIDTH_SAMPLES, half))
    if _on_silhouette(ex, probe).mean() < HANG_ON_BODY:
        return False
    ex.joints[b], ex.found[b] = elbow, True
    # (measured on its outer side, the torso being on the other; a little inside it: a sleeve, not its edge)
    ex.widths[name] = HANG_WIDTH * _measure_widths(ex.silhouette, shoulder, elbow, half) if ex.measured \
        else np.full(WIDTH_SAMPLES, half)
    return True


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``x`` folded back into [lo, hi] (a triangle wave): a stand-in's texture mirrored at its edges
    rather than its edge pixels stretched into streaks."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _stand_in_place(name: str, donor: str, src: Body, ex: Body, p: np.ndarray, reach: float) -> np.ndarray:
    """(N, 2) source pixels of limb ``name`` -> exemplar pixels (x, y) on limb ``donor``: the same
    coordinates along and across, the part's whole length (with ``reach`` past its end) onto the
    donor's, kept inside the donor's outline."""
    a, b, _ = LIMBS[name]
    t, s = _limb_local(p, src.joints[a], src.joints[b], src.widths[name])
    t = 0.05 + 0.9 * _reflect(t / (1.0 + reach), 0.0, 1.0)
    da, db, _ = LIMBS[donor]
    return _limb_place(t, _reflect(s, -0.85, 0.85), ex.joints[da], ex.joints[db], ex.widths[donor])


TEXTURE_INSET = 0.02  # the exemplar torso's clothing is taken this far inside its edge (x the body size)


def _torso_texture(src: Body, ex: Body, p: np.ndarray, material: np.ndarray) -> np.ndarray:
    """(N, 2) input torso pixels -> exemplar x, y on its torso's clothing ``material`` (H, W bool): one scale
    both ways (the bodies' sizes), the input's torso axis onto the exemplar picture's down (clothes hang
    down), centre onto centre, and the texture mirrored at the clothing's extent rather than stretched: for a
    torso whose quad cannot be trusted (``drop_misread``), its clothing without its shape (``_texture_on``)."""
    down = (src.joints[8] + src.joints[11] - src.joints[2] - src.joints[5]) / 2
    return _texture_on(p, down, np.array([0.0, 1.0]), ex.scale / src.scale, material)


def _texture_on(p: np.ndarray, axis: np.ndarray, onto: np.ndarray, scale: float, material: np.ndarray) -> np.ndarray:
    """(N, 2) input pixels -> exemplar x, y on the texture ``material`` (H, W bool): ``scale`` both ways, the
    input's ``axis`` turned onto the exemplar's ``onto``, centre onto centre, slid off the texture's holes
    (``_least_seams``) and mirrored at its extent rather than stretched. A point that lands on a hole in the
    texture (a shirt front, a badge) takes the first of a few other places in its extent (mirrored across it,
    moved by half of it) that lies on it, else its nearest pixel."""
    a = axis / max(float(np.hypot(*axis)), 1e-9)
    b = onto / max(float(np.hypot(*onto)), 1e-9)
    cos, sin = float(a @ b), float(_cross(a, b))
    turn = np.array([[cos, -sin], [sin, cos]])  # turn @ a = b
    ys, xs = np.nonzero(material)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    q = centre + scale * (p - p.mean(axis=0)) @ turn.T
    axes = np.linalg.eigh(np.cov((pts - centre).T))[1]  # the clothing's own axes: mirrored along them
    lo, hi = np.percentile((pts - centre) @ axes, [5, 95], axis=0)
    hi = np.maximum(hi, lo + 1.0)
    r = (q - centre) @ axes
    h, w = material.shape
    r = _least_seams(r, centre, axes, lo, hi, material)
    out = np.full_like(q, np.nan)
    todo = np.arange(len(r))  # the points not yet placed (each takes the first place that lies on the texture)
    for shift in ((0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)):
        moved = r[todo] + np.array(shift) * (hi - lo)
        for i in range(2):
            moved[:, i] = _reflect(moved[:, i], lo[i], hi[i])
        for flip in ((False, False), (True, False), (False, True), (True, True)):
            cand = np.where(flip, lo + hi - moved, moved)
            xy = centre + cand @ axes.T
            qx, qy = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
            ok = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
            ok[ok] = material[qy[ok], qx[ok]]
            out[todo[ok]] = xy[ok]
            todo, moved = todo[~ok], moved[~ok]
    left = np.isnan(out[:, 0])
    if left.any():
        first = r[left].copy()
        for i in range(2):
            first[:, i] = _reflect(first[:, i], lo[i], hi[i])
        out[left] = nearest_in(material, centre + first @ axes.T)
    return out


def _sleeve_cloth(ex: Body, donor: str, ex_owner: np.ndarray, ex_order: list[str], image: np.ndarray | None
                  ) -> np.ndarray | None:
    """(H, W) bool: the plain cloth of the exemplar's hung sleeve ``donor`` and its torso (one garment, as a
    rule: a guessed sleeve alone is a sliver): inside the sleeve's outline or the torso's part, on the
    silhouette, off the decorations (ribbons, a shirt front), a little inside its edge; None when there is none."""
    if not ex.measured or "torso" not in ex_order:
        return None
    import cv2

    a, b, _ = LIMBS[donor]
    ys, xs = np.nonzero(ex.silhouette)
    p = np.stack([xs, ys], axis=1).astype(np.float64)
    t, s = _limb_local(p, ex.joints[a], ex.joints[b], ex.widths[donor])
    inside = (t >= 0.0) & (t <= 1.0) & (np.abs(s) <= 1.0)
    cloth = ex_owner == ex_order.index("torso")
    cloth[ys[inside], xs[inside]] = True
    if image is not None:
        cloth &= ~decorations(image, cloth)
    inset = max(1, round(TEXTURE_INSET * ex.scale))
    cloth = cv2.erode(cloth.astype(np.uint8), disc(inset)) > 0
    return cloth if cloth.any() else None


def _limb_texture(name: str, donor: str, src: Body, ex: Body, p: np.ndarray, cloth: np.ndarray) -> np.ndarray:
    """(N, 2) input pixels of limb ``name`` (a forearm, its hand included) -> exemplar x, y on the plain cloth
    of a hung sleeve ``donor``: a texture (``_texture_on``) at the bodies' relative size, the limb's bone along
    the sleeve's, rather than the limb's length and width stretched onto the sleeve's (a guessed sleeve is
    short; a forearm with its hands is long and wide)."""
    a, b, _ = LIMBS[name]
    da, db, _ = LIMBS[donor]
    return _texture_on(p, src.joints[b] - src.joints[a], ex.joints[db] - ex.joints[da], ex.scale / src.scale, cloth)


TEXTURE_SLIDE = 0.25  # the torso's texture may move this far (x the clothing's extent) to keep off its holes ...
TEXTURE_STEPS = 5  # ... tried on this many places per axis


def _least_seams(r: np.ndarray, centre: np.ndarray, axes: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 material: np.ndarray) -> np.ndarray:
    """``r`` (N, 2), the torso's points on the clothing's axes, moved as a whole to where the fewest of them land
    off the clothing or past its extent: each such point is a seam in the texture
    (another place, or a mirror image), so a torso placed off a shirt front or badge shows fewer of them."""
    h, w = material.shape
    sample = r[:: max(1, len(r) // 4000)]
    steps = np.linspace(-TEXTURE_SLIDE, TEXTURE_SLIDE, TEXTURE_STEPS)
    shifts = np.stack(np.meshgrid(steps, steps), axis=-1).reshape(-1, 2)  # (S, 2) in extents
    cand = sample[None] + (shifts * (hi - lo))[:, None]  # (S, n, 2)
    xy = np.round(centre + cand @ axes.T).astype(int)
    inside = ((cand >= lo) & (cand <= hi)).all(axis=-1)
    inside &= (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    on = np.zeros(inside.shape, bool)
    on[inside] = material[xy[..., 1][inside], xy[..., 0][inside]]
    cost = 1.0 - on.mean(axis=1) + 1e-3 * np.hypot(*shifts.T)  # the nearest of equals: the least moved
    return r + shifts[int(np.argmin(cost))] * (hi - lo)


DECORATION = 40.0  # a stand-in's exemplar pixel this far (Lab, lightness at half weight) from the part's typical
# colour is a decoration (a medal ribbon, a badge, a shirt front showing past a lapel)


def decorations(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of ``region`` whose colour is far from the region's typical colour (its median;
    Lab, lightness at half weight, more than ``DECORATION``), their soft edges included: badges, ribbons,
    a shirt front on a jacket."""
    import cv2

    if not region.any():
        return np.zeros(region.shape, bool)
    ys, xs = np.nonzero(region)  # worked out on the region's box (and 8 px round it: the blur's and dilation's reach)
    y0, y1 = max(0, ys.min() - 8), min(region.shape[0], ys.max() + 9)
    x0, x1 = max(0, xs.min() - 8), min(region.shape[1], xs.max() + 9)
    box = np.ascontiguousarray(image[y0:y1, x0:x1])
    lab = cv2.cvtColor(cv2.GaussianBlur(box, (0, 0), 1.0), cv2.COLOR_RGB2LAB).astype(np.float32) * [0.5, 1, 1]
    odd = np.linalg.norm(lab - np.median(lab[region[y0:y1, x0:x1]], axis=0), axis=-1) > DECORATION
    out = np.zeros(region.shape, bool)
    out[y0:y1, x0:x1] = cv2.dilate(odd.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return out & region


def _plain(image: np.ndarray | None, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) exemplar x, y where a stand-in takes its texture -> the same, with the points on a decoration
    moved to the nearest plain pixel the stand-in covers (the part's typical colour: its median), and (N,)
    which moved. A stand-in is placed where a sleeve would be; what lies there may be the chest's ribbons."""
    moved = np.zeros(len(q), bool)
    if image is None or not len(q):
        return q, moved
    h, w = image.shape[:2]
    qx = np.clip(np.round(q[:, 0]).astype(int), 0, w - 1)
    qy = np.clip(np.round(q[:, 1]).astype(int), 0, h - 1)
    x0, y0 = qx.min(), qy.min()
    box = image[y0:qy.max() + 1, x0:qx.max() + 1]
    covered = np.zeros(box.shape[:2], bool)
    covered[qy - y0, qx - x0] = True
    odd = decorations(box, covered)
    plain = covered & ~odd
    moved = odd[qy - y0, qx - x0]
    if not moved.any() or not plain.any():
        return q, np.zeros(len(q), bool)
    _, (iy, ix) = ndimage.distance_transform_edt(~plain, return_indices=True)
    out = q.copy()
    out[moved, 0] = ix[qy[moved] - y0, qx[moved] - x0] + x0
    out[moved, 1] = iy[qy[moved] - y0, qx[moved] - x0] + y0
    return out, moved


def _length(body: Body, limb: str) -> float:
    a, b, _ = LIMBS[limb]
    return float(np.hypot(*(body.joints[b] - body.joints[a])))


def _stand_ins(src: Body, ex: Body, needed: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """For the needed parts the exemplar lacks: {part: donor limb}, the parts given a hanging arm
    (``ex`` changed), and the parts with no stand-in."""
    lacks = _lacking(ex)
    hung = [n for n in ("right upper arm", "left upper arm") if n in needed and lacks[n] and _hang_arm(ex, n)]
    lacks = _lacking(ex)
    donors, none = {}, []
    for name in needed:
        if not lacks[name] or name in HANDS:
            continue
        shown = [d for d in DONORS.get(name, ()) if not lacks[d]]
        if shown:
            donors[name] = shown[0]
        else:
            none.append(name)
    return donors, hung, none


_last_exemplar: tuple = ()  # (key, Body, owner, parts, distance off its silhouette, the Body as read, the same
# four for the Body as read or None) of the last exemplar


def _shown(ex: Body, size: tuple[int, int]) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Which part shows each of the exemplar's silhouette pixels, the parts it shows, the distance off it."""
    ex_order = [n for n in PARTS if not _lacking(ex)[n]]  # what the exemplar really shows
    ys, xs = np.nonzero(ex.silhouette)
    owner = np.full(size, -1, np.int16)
    owner[ys, xs] = assign(ex, np.stack([xs, ys], axis=1).astype(np.float64), ex_order)[0]
    off = ndimage.distance_transform_edt(~ex.silhouette) if ex.measured else None
    return owner, ex_order, off


def _exemplar_side(exemplar: Condition, as_read: bool = False
                   ) -> tuple[Body, np.ndarray, list[str], np.ndarray | None]:
    """The exemplar's body (a copy: stand-ins change it; misread limbs dropped unless ``as_read``), which part
    shows each of its silhouette's pixels (-1: none; an index into the parts list) and each pixel's distance off
    its silhouette (None: nominal). Kept for the last exemplar: a video's frames share one."""
    global _last_exemplar
    key = (exemplar, exemplar.keypoints, exemplar.hands, exemplar.subject_mask, exemplar.image)
    last = _last_exemplar
    if not (last and all(a is b for a, b in zip(last[0], key))):  # the same objects (not equal copies)
        read = body_of(exemplar)
        ex = drop_misread(read)
        last = (key, ex, *_shown(ex, exemplar.size), read, None)
        _last_exemplar = last
    ex, owner, ex_order, off = last[1:5]
    if as_read and last[5] is not ex:
        if last[6] is None:
            last = (*last[:6], (last[5], *_shown(last[5], exemplar.size)))
            _last_exemplar = last
        ex, owner, ex_order, off = last[6]
    return replace(ex, joints=ex.joints.copy(), found=ex.found.copy(), widths=dict(ex.widths)), owner, ex_order, off


def body_chart(source: Condition, exemplar: Condition, allow_partial: bool = False) -> ChartMap:
    """Dense map from the output's body pixels to the exemplar's (see the module docstring).

    Parts the exemplar does not show get a stand-in (named in ``notes``). Raises InputError naming
    the body parts with none, unless they own less than ``REFUSE_SHARE`` of the input's body or
    ``allow_partial`` (then they are listed in ``missing`` and left undefined)."""
    src = body_of(source)
    ex, ex_owner, ex_order, ex_off = _exemplar_side(exemplar)
    if _misread_alike(src, ex):  # both skeletons misread alike: paired as read
        ex, ex_owner, ex_order, ex_off = _exemplar_side(exemplar, as_read=True)
    else:
        src = drop_misread(src, off_body=False)
    src_lacks, ex_lacks = _lacking(src), _lacking(ex)
    needed = [name for name in PARTS if not src_lacks[name]]
    hands_unmatched = [n for n in HANDS if n in needed and ex_lacks[n]]
    donors, hung, missing = _stand_ins(src, ex, needed)
    material, before_face = None, None
    if "torso" in needed and not ex_lacks["torso"] and (ex.misread or src.misread):  # a quad's corner on the face
        import cv2

        # the torso and its sleeves (one garment, as a rule; the shoulder's quad alone is a sliver of it)
        material = np.isin(ex_owner, [ex_order.index(n) for n in ex_order if n == "torso" or n in ARM_PARTS])
        if exemplar.image is not None:
            material &= ~decorations(exemplar.image, material)  # the coat, not the shirt front or the chin
        inset = max(1, round(TEXTURE_INSET * ex.scale))
        material = cv2.erode(material.astype(np.uint8), disc(inset)) > 0
        if material.any():  # the torso stands in for itself: left out of the blends, drawn by _torso_texture
            donors["torso"] = "torso"
        else:
            material = None
    h, w = source.size
    eh, ew = exemplar.size
    # Missing parts still own their pixels (left undefined); an unmatched hand goes to its forearm.
    order = [n for n in PARTS if n in needed and n not in hands_unmatched]
    ys, xs = np.nonzero(src.silhouette)
    p = np.stack([xs, ys], axis=1).astype(np.float64)
    owner, cost = assign(src, p, order)
    if "head" in order and "torso" in order and not (ex_lacks["head"] or ex_lacks["torso"]):
        owner = _below_the_chin(src, ex, p, owner, order, ex_owner, ex_order)
        before = _before_the_face(src, ex, p, owner, order)
        if before.any():  # held before a profile's face (a camera): the exemplar's background, no part's
            owner = np.where(before, -1, owner)
            before_face = np.zeros((h, w), bool)
            before_face[ys[before], xs[before]] = True
    if missing and not allow_partial:
        real = [n for n in missing
                if n not in LIMBS or _length(src, n) >= SHORT * LENGTHS[n.split(" ", 1)[1]] * src.scale]
        share = float(np.isin(owner, [order.index(n) for n in real]).mean()) if len(p) else 0.0
        if share >= REFUSE_SHARE:
            lost = sorted({j for n in real for j in ex_lacks[n]})
            raise InputError(
                f"The exemplar does not show parts of the body the input needs, and shows nothing that could "
                f"stand in for them: {', '.join(real)} (not found in the exemplar: "
                f"{', '.join(COCO18[j] for j in lost)}; {share:.0%} of the input's body). Use an exemplar that "
                "shows at least as much of the body as the input (e.g. a full-body photo for a full-body pose), "
                "or allow a partial result.")

    positions = np.full((h, w, 2), np.nan, np.float32)
    confidence = np.zeros((h, w), np.float32)
    region = np.zeros((h, w), np.int16)
    stand_in = np.zeros((h, w), bool)
    notes = []
    unmapped = [*missing, *donors]
    blended, second = _blend_parts(src, ex, p, owner, order, unmapped, (h, w))
    # Two parts whose maps point too far apart to be blended (the blend turns over) meet at a seam
    # instead: each keeps its own map up to the border, and the parts on either side are two pieces.
    torn, borders = _torn_borders(p, blended, owner, second, order, unmapped, (h, w))
    part_piece, torn = _pieces(owner, len(order), torn, borders)
    pieces = None
    if torn:
        blended, _ = _blend_parts(src, ex, p, owner, order, unmapped, (h, w), torn)
        pieces = np.ones((h, w), np.int32)
        pieces[ys, xs] = np.where(owner >= 0, part_piece[owner], 1)
    for k, name in enumerate(order):
        sel = owner == k
        if not sel.any():
            continue
        py, px = ys[sel], xs[sel]
        region[py, px] = PART_ID[name]
        if name in missing:
            continue
        if name == "torso" and material is not None:  # the exemplar's clothing, not its misread quad
            q = _torso_texture(src, ex, p[sel], material)
            positions[py, px] = q[:, ::-1]
            stand_in[py, px] = True
            confidence[py, px] = 0.2
            continue
        cloth = _sleeve_cloth(ex, donors[name], ex_owner, ex_order, exemplar.image) \
            if name in ("right forearm", "left forearm") and donors.get(name) in hung else None
        if cloth is not None:  # a forearm from a guessed sleeve: the sleeve's cloth as a texture, not stretched
            q = _limb_texture(name, donors[name], src, ex, p[sel], cloth)
            positions[py, px] = q[:, ::-1]
            stand_in[py, px] = True
            confidence[py, px] = 0.2
            continue
        if name in donors:  # another limb's texture, where it lies on the exemplar's body
            b = LIMBS[name][1]
            reach = EXTREMITY if b in (10, 13) or (b in (4, 7) and HANDS[(4, 7).index(b)] not in order) else 0.0
            q = _stand_in_place(name, donors[name], src, ex, p[sel], reach)
            q = _plain(exemplar.image, q)[0]
            ok = _on_silhouette(ex, q)
            positions[py[ok], px[ok]] = q[ok, ::-1]
            stand_in[py[ok], px[ok]] = True
            confidence[py[ok], px[ok]] = 0.2
            continue
        q = blended[sel]  # (n, 2) x, y in the exemplar
        qx = np.clip(np.round(q[:, 0]).astype(int), 0, ew - 1)
        qy = np.clip(np.round(q[:, 1]).astype(int), 0, eh - 1)
        # Where the exemplar shows this part (not another part in front of it, not its background).
        # Positions on its background (the input's silhouette is wider there) are kept, unsure: an
        # undefined band inside the person would put a seam (and folds) between chart and surround.
        on_body = ex_owner[qy, qx] >= 0
        shown = on_body if name in hung else ex_owner[qy, qx] == ex_order.index(name)
        # (Only near it, though: far off, e.g. a long coat mapped onto a short jacket's surroundings,
        # the background would show inside the person; those are left to the engine's fill.)
        # (A hanging arm is a guess: none of the exemplar's background inside it.)
        # Positions past the exemplar's frame, where its person reaches the frame's edge (a body cut off at
        # the bottom), are kept: the map goes on smoothly there and the engine fills what it cannot sample.
        # Left undefined, the surround squeezed them against the edge: its last rows stretched into streaks
        # (a button), and the map folded where it turned back.
        near = on_body | (ex_off[qy, qx] <= HALO * ex.scale) if ex_off is not None else np.ones(len(q), bool)
        near &= on_body | (name not in hung) | (not ex.measured)
        keep = near
        conf = (1.0 if src.measured and ex.measured else 0.7) * np.clip(2.0 - cost[sel], 0.2, 1.0)
        conf = np.where(shown, conf, np.where(on_body | (not ex.measured), 0.3, 0.1))
        if name in hung:  # a guess at a sleeve: none of the chest's badges or ribbons on it (a fill, not the map)
            q, moved = _plain(exemplar.image, q)
            stand_in[py[keep & moved], px[keep & moved]] = True
            conf = np.where(moved, 0.2 / 0.5, conf)
        positions[py[keep], px[keep]] = q[keep, ::-1]
        confidence[py[keep], px[keep]] = conf[keep] * (0.5 if name in hung else 1.0)
        hidden = 1.0 - shown.mean()
        if hidden > 0.2 and name not in hung:
            notes.append(f"{name}: {hidden:.0%} of it falls outside the exemplar's {name} (hidden, off its "
                         "frame or off its silhouette); those pixels are left to the fill or marked unsure.")
    if "head" in order and "head" not in unmapped and head_similarity(src, ex)[1]:
        notes.append("head: the two heads' joints (nose, eyes, ears, neck) do not match in shape (a face in profile, "
                     "or bent over); the head is kept upright and sized by its height to the crown.")
    for name in hung:
        notes.append(f"{name}: the exemplar's {COCO18[LIMBS[name][1]]} was not found; the sleeve beside its torso, "
                     "where a hanging arm would be, stands in for it.")
    for name, donor in donors.items():
        if name == "torso":
            notes.append("torso: the two torsos are not seen alike (a shoulder found on a face); drawn with the "
                         "texture of the exemplar's clothing, not mapped by its shape.")
            continue
        lost = ", ".join(COCO18[j] for j in _lacking(ex)[name])
        notes.append(f"{name}: not shown by the exemplar (its {lost} was not found); drawn with the texture of "
                     f"its {donor}.")
    for name in hands_unmatched:
        notes.append(f"{name}: no match (the exemplar's {name} was not found); left to the fill.")
    defined = ~np.isnan(positions[..., 0]) & ~stand_in
    positions[np.isnan(positions[..., 0])] = 0.0
    confidence[~(defined | stand_in)] = 0.0
    for side, misread in (("input", src.doubts), ("exemplar", ex.doubts)):
        if misread:
            notes.append(f"The {side}'s skeleton was misread ({'; '.join(misread)}).")
    if not (src.measured and ex.measured):
        notes.append("body charts use nominal limb widths (no photo behind the skeleton on one side).")
    if src.held is not None:
        notes.append(f"{src.held.sum() / (src.silhouette | src.held).sum():.0%} of the input's person is something "
                     "held (outside the body the pose model sees, and off every body part): it shows the "
                     "exemplar's background.")
    held = src.held
    if before_face is not None:
        notes.append(f"head: {before_face.sum() / src.silhouette.sum():.0%} of the input's person lies before its face "
                     "seen in profile (something held to it): it shows the exemplar's background.")
        held = before_face if held is None else held | before_face
    if "head" in order and "head" not in unmapped and head_similarity(src, ex)[1]:
        # an upright head follows the exemplar's head, not its neighbours: where it falls off the exemplar's
        # person (before a profile's chin) it shows the background, as the exemplar does, rather than a
        # surround map that folds against the head's (and whose unfolding smooths the face)
        off = (region == PART_ID["head"]) & ~defined & ~stand_in
        held = off if held is None else held | off
    return ChartMap(positions=positions, defined=defined, confidence=confidence, region=region,
                    missing=missing, notes=notes, stand_in=stand_in, pieces=pieces, held=held)
