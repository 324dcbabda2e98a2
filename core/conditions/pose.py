"""Pose conditions: photo (MediaPipe Pose), skeleton picture or keypoints -> the official 20-channel label."""

from __future__ import annotations

import cv2
import numpy as np

from core.conditions import detectors
from core.conditions.condition import Condition
from core.conditions.framing import check_photo, check_size, detection_view
from core.conditions.skeleton import COCO18, COLORS, LIMBS, draw_skeleton, limb_distances, pose_label
from core.errors import InputError, NoSubjectError
from core.imageio import fit_geometry, fit_image, fit_points
from core.utils.deferred import Deferred

VISIBILITY_THRESHOLD = 0.5  # MediaPipe "visibility" below this: the joint is treated as missing
MIN_JOINTS = 4  # fewer confident joints than this is not a usable pose

# COCO-18 joint -> MediaPipe Pose landmark (33-point BlazePose topology); the neck (1) has no
# landmark of its own and is the midpoint of the shoulders (11, 12).
MEDIAPIPE_FOR_COCO = {
    0: 0,  # nose
    2: 12, 3: 14, 4: 16,  # right shoulder, elbow, wrist
    5: 11, 6: 13, 7: 15,  # left shoulder, elbow, wrist
    8: 24, 9: 26, 10: 28,  # right hip, knee, ankle
    11: 23, 12: 25, 13: 27,  # left hip, knee, ankle
    14: 5, 15: 2,  # right eye, left eye
    16: 8, 17: 7,  # right ear, left ear
}
_CORE = (0, 1, 2, 5)  # nose, neck, shoulders: without any of them there is no body to anchor


def mediapipe_to_coco18(landmarks: np.ndarray, width: int, height: int,
                        threshold: float = VISIBILITY_THRESHOLD) -> np.ndarray:
    """(33, 4) MediaPipe landmarks (x, y normalised, z, visibility) -> (18, 3) COCO-18 in pixels."""
    lm = np.asarray(landmarks, dtype=np.float64)
    out = np.zeros((18, 3), np.float64)
    for coco, mp_index in MEDIAPIPE_FOR_COCO.items():
        x, y, _, vis = lm[mp_index]
        out[coco] = (x * width, y * height, vis)
    rs, ls = lm[12], lm[11]
    out[1] = ((rs[0] + ls[0]) / 2 * width, (rs[1] + ls[1]) / 2 * height, min(rs[3], ls[3]))
    inside = (out[:, 0] >= 0) & (out[:, 0] < width) & (out[:, 1] >= 0) & (out[:, 1] < height)
    keep = inside & (out[:, 2] >= threshold)
    out[~keep] = 0.0
    return out


def _check_keypoints(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Accept (18, 2|3) COCO-18 (or (25, 3) OpenPose BODY_25) in pixels; NaN / conf 0 = missing."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise InputError(f"Pose keypoints must be (18, 3) x, y, confidence; got shape {kp.shape}.")
    if kp.shape[1] == 2:
        kp = np.concatenate([kp, np.ones((len(kp), 1))], axis=1)
    if len(kp) == 25:
        from core.conditions.openpose_io import body25_to_coco18

        kp = body25_to_coco18(kp)
    if len(kp) != 18:
        raise InputError(f"Pose keypoints must list the 18 OpenPose COCO joints; got {len(kp)} points.")
    kp = kp.copy()
    bad = ~np.isfinite(kp).all(axis=1) | (kp[:, 2] <= 0)
    h, w = size
    far = (np.abs(kp[:, 0]) > 4 * w) | (np.abs(kp[:, 1]) > 4 * h)  # nonsense coordinates
    kp[bad | far] = 0.0
    return kp


# Joints named together when all of them are missing (a waist-up photo lacks all six leg joints),
# so the note stays short; the first group that is wholly missing takes its joints.
_MISSING_GROUPS = (
    ("the hips and legs", (8, 9, 10, 11, 12, 13)),
    ("the knees and ankles", (9, 10, 12, 13)),
    ("both forearms", (3, 4, 6, 7)),
)


def _missing_names(kp: np.ndarray) -> list[str]:
    """The missing joints' names, whole groups (``_MISSING_GROUPS``) named once."""
    missing = {i for i in range(18) if kp[i, 2] <= 0}
    names = []
    for name, joints in _MISSING_GROUPS:
        if missing.issuperset(joints):
            names.append(name)
            missing -= set(joints)
    return names + [COCO18[i] for i in sorted(missing)]


def _missing_message(kp: np.ndarray) -> list[str]:
    names = _missing_names(kp)
    if not names:
        return []
    return [f"Only part of the body was found; missing: {', '.join(names)}. "
            "The result follows the visible joints only (use a full-body photo for a full-body pose)."]


def _require_body(kp: np.ndarray, source: str) -> None:
    found = int((kp[:, 2] > 0).sum())
    if found < MIN_JOINTS or not (kp[list(_CORE), 2] > 0).any():
        names = ", ".join(COCO18[i] for i in range(18) if kp[i, 2] > 0) or "none"
        raise NoSubjectError(
            f"{source} has too few body joints to draw a pose ({found} found: {names}). "
            "Use a photo where the person's head and shoulders at least are clearly visible.")


def from_keypoints(keypoints: np.ndarray, size: tuple[int, int], image: np.ndarray | None = None,
                   messages: list[str] | None = None) -> Condition:
    """Condition from (18, 3) COCO-18 keypoints given in pixels of ``size`` = (H, W)."""
    size = check_size(size)
    kp = _check_keypoints(keypoints, size)
    if not (kp[:, 2] > 0).any():
        raise NoSubjectError("The keypoints contain no joint at all (every confidence is 0).")
    label, picture, parts = skeleton_fields(kp, size)
    photo = fit_image(check_photo(image, "person"), size) if image is not None else None
    return Condition(
        task="pose", label=label, preview=picture, image=photo, keypoints=kp.astype(np.float32),
        subject_mask=picture.any(axis=2), parts=parts, messages=list(messages or []) + _missing_message(kp))


def skeleton_fields(keypoints: np.ndarray, size: tuple[int, int]) -> tuple[Deferred, np.ndarray, Deferred]:
    """A pose condition's label (20, H, W) and parts (17, H, W), both ``Deferred`` (the limb distances
    they share are computed once, when either is first read), and its skeleton picture (H, W, 3)."""
    h, w = int(size[0]), int(size[1])
    keypoints = np.array(keypoints, copy=True)  # the deferred channels draw these, whatever happens to the caller's
    picture = draw_skeleton(keypoints, size)
    dists = Deferred(lambda: limb_distances(keypoints, size), (len(LIMBS), h, w))
    label = Deferred(lambda: pose_label(picture, dists()), (3 + len(LIMBS), h, w))
    parts = Deferred(lambda: 1.0 - dists().astype(np.float32) / 255.0, (len(LIMBS), h, w))
    return label, picture, parts


def detect_keypoints(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MediaPipe Pose on the photo -> (18, 3) COCO-18 keypoints in pixels of its ``fit_image`` to ``size``."""
    return detect_body(image, size)[0]


def detect_body(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """MediaPipe Pose on the photo -> (18, 3) COCO-18 keypoints and the model's (H, W) bool body
    segmentation (None if it gave none), both in pixels of the photo's ``fit_image`` to ``size``."""
    view, sx, sy = detection_view(image, size, long_side=1024)
    result = detectors.run("pose", view)
    if result.pose_landmarks is None:
        raise NoSubjectError("No person found in the picture. Use a photo where one person is clearly "
                             "visible (head and shoulders at least)$or_keypoints_json.")
    lm = np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark])
    kp = mediapipe_to_coco18(lm, view.shape[1], view.shape[0])
    kp[:, 0] *= sx
    kp[:, 1] *= sy
    seg = result.segmentation_mask
    body = None if seg is None else cv2.resize(np.asarray(seg, np.float32), (size[1], size[0])) > 0.5
    return kp, body


HAND_POINTS = 21  # MediaPipe hand landmarks (0 = wrist)
_WRISTS = (4, 7)  # COCO-18 right / left wrist: the order of ``Condition.hands``


def detect_hands(image: np.ndarray, size: tuple[int, int], keypoints: np.ndarray) -> np.ndarray | None:
    """MediaPipe Holistic's hands -> (2, 21, 3) (right, left; x, y in pixels of ``size``, confidence).

    Each hand found goes to the nearer found COCO wrist (robust to the solution's own left/right
    naming). None when no wrist is visible (Holistic is not run) or no hand is found.
    """
    wrists = [w for w in _WRISTS if keypoints[w, 2] > 0]
    if not wrists:
        return None
    view, sx, sy = detection_view(image, size, long_side=1024)
    result = detectors.run("holistic", view)
    hands = np.zeros((2, HAND_POINTS, 3), np.float32)
    for found in (result.right_hand_landmarks, result.left_hand_landmarks):
        if found is None:
            continue
        pts = np.array([(p.x * view.shape[1] * sx, p.y * view.shape[0] * sy) for p in found.landmark])
        side = min(wrists, key=lambda w: float(np.hypot(*(pts[0] - keypoints[w, :2]))))
        slot = _WRISTS.index(side)
        if hands[slot, 0, 2] == 0:
            hands[slot, :, :2] = pts
            hands[slot, :, 2] = 1.0
    return hands if hands[:, 0, 2].any() else None


FACE_LINE = (10, 152)  # FaceMesh's points at the top of the forehead and the bottom of the chin
CHIN_CROP = 2.4  # the landmark model's first crop: this x the face joints' extent (nose, eyes, ears)
MIN_EYE_GAP_TO_TURN = 0.4  # eyes closer than this (x that extent: a profile's) leave the crop unturned


def find_face_line(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray | None:
    """(2, 2) x, y of the top of the forehead and the bottom of the chin on the photo ``image`` (its pixels), or
    None without a nose and two other face joints. MediaPipe Pose finds no chin; FaceMesh's bundled landmark
    model does, placed by the pose's own face joints (its crop as FaceMesh frames a face, then again on the first
    reading's points), so a face in profile, which the face detectors miss, gets one too. ~6-7 ms."""
    from core.conditions.face_detect import model_reading, placed_mesh

    kp = np.asarray(keypoints, np.float64)
    face = [i for i in (0, 14, 15, 16, 17) if kp[i, 2] > 0]
    if kp[0, 2] <= 0 or len(face) < 3:
        return None
    pts = kp[face, :2]
    eyes = kp[[14, 15], :2] if (kp[[14, 15], 2] > 0).all() else None
    # One reading a pass: a chin needs no mirror average.
    mesh = placed_mesh(image, pts.mean(axis=0), float(np.ptp(pts, axis=0).max()), eyes, model_reading,
                       first_scale=CHIN_CROP, turn_gap=MIN_EYE_GAP_TO_TURN)
    return None if mesh is None else mesh[list(FACE_LINE), :2]


def extract(image: np.ndarray, size: tuple[int, int]) -> Condition:
    """Photo -> pose condition (detects the person, draws the official label at ``size`` = (H, W))."""
    size = check_size(size)
    image = check_photo(image, "person")
    kp, body = detect_body(image, size)
    _require_body(kp, "The photo")
    cond = from_keypoints(kp, size, image)
    cond.body_mask = body
    seg = detectors.run("selfie", cond.image).segmentation_mask
    if seg is not None:
        cond.subject_mask = np.asarray(seg) > 0.5
    cond.hands = detect_hands(image, size, kp)
    return cond


def _disc_centre(xs: np.ndarray, ys: np.ndarray, dark: np.ndarray, radius: float) -> tuple[float, float]:
    """Centre of a joint disc partly hidden by limbs: a circle fit to its edge on the background.

    Falls back to the smallest enclosing circle (exact when less than half is hidden).
    """
    pts = np.stack([xs, ys], axis=1).astype(np.float32)
    (cx, cy), r_enclosing = cv2.minEnclosingCircle(pts)
    edge = dark[ys, xs]
    if edge.sum() >= 6 and radius > 0:
        ex, ey = xs[edge].astype(np.float64), ys[edge].astype(np.float64)
        a = np.stack([ex, ey, np.ones_like(ex)], axis=1)
        sol, *_ = np.linalg.lstsq(a, -(ex**2 + ey**2), rcond=None)
        fx, fy = -sol[0] / 2, -sol[1] / 2
        r2 = fx**2 + fy**2 - sol[2]
        if r2 > 0 and 0.75 * radius <= np.sqrt(r2) <= 1.25 * radius and np.hypot(fx - cx, fy - cy) <= radius:
            return float(fx), float(fy)
    return float(cx), float(cy)


def _limb_drawn(kp: np.ndarray, a: int, b: int, dark: np.ndarray) -> bool:
    """Both joints found and the pixel midway between them is drawn (not background)."""
    if kp[a, 2] <= 0 or kp[b, 2] <= 0:
        return False
    x = min(max(int((kp[a, 0] + kp[b, 0]) / 2), 0), dark.shape[1] - 1)
    y = min(max(int((kp[a, 1] + kp[b, 1]) / 2), 0), dark.shape[0] - 1)
    return not dark[y, x]


def read_skeleton_picture(picture: np.ndarray, tolerance: int = 12) -> tuple[np.ndarray, str]:
    """Find the 18 OpenPose-coloured joint discs in a skeleton picture -> (18, 3) keypoints in its pixels.

    A joint is the largest blob of its exact colour (limb blends are at least 17 levels
    away from any joint colour, hence the tight tolerance). Its centre comes from a circle
    fit to the part of the disc's rim that borders the background. Both channel orders
    are tried: the official label's (BGR-reversed) and plain RGB.
    """
    rgb = np.asarray(picture)[..., :3].astype(np.int16)
    dark = cv2.dilate((rgb.max(axis=2) < 40).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    ys, xs = np.nonzero(rgb.max(axis=2) >= 255 - tolerance)  # every joint colour has a 255 channel
    pixels = rgb[ys, xs]
    best: tuple[np.ndarray, str, tuple[int, int]] | None = None
    for order, name in ((slice(None, None, -1), "official (BGR) colours"), (slice(None), "RGB colours")):
        blobs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, colour in enumerate(COLORS):
            hit = np.abs(pixels - np.array(colour, np.int16)[order]).max(axis=1) <= tolerance
            if hit.sum() < 4:
                continue
            hx, hy = xs[hit], ys[hit]
            x0, y0 = hx.min(), hy.min()
            mask = np.zeros((hy.max() - y0 + 1, hx.max() - x0 + 1), np.uint8)
            mask[hy - y0, hx - x0] = 1
            _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            if stats[biggest, cv2.CC_STAT_AREA] >= 4:
                by, bx = np.nonzero(labels == biggest)
                blobs[i] = (bx + x0, by + y0)
        if not blobs:
            continue
        # The disc radius: the largest enclosing circle (leaf joints show at least half a disc).
        radius = max(cv2.minEnclosingCircle(np.stack(b, axis=1).astype(np.float32))[1] for b in blobs.values())
        kp = np.zeros((18, 3), np.float64)
        for i, (bx, by) in blobs.items():
            kp[i] = (*_disc_centre(bx, by, dark, radius), 1.0)
        # Many colours are their own channel reversal, so both orders can find discs; the right
        # one also finds the limbs: a drawn (non-dark) pixel midway between connected joints.
        score = (sum(_limb_drawn(kp, a, b, dark) for a, b in LIMBS), len(blobs))
        if best is None or score > best[2]:
            best = (kp, name, score)
    return (best[0], best[1]) if best is not None else (np.zeros((18, 3)), "no colours")


def from_picture(picture: np.ndarray, size: tuple[int, int]) -> Condition:
    """A user's OpenPose-style skeleton picture -> pose condition (joints read back, label redrawn)."""
    size = check_size(size)
    arr = np.asarray(picture)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise InputError("A skeleton picture must be an RGB image of an OpenPose-coloured stick figure.")
    top, left, ch, cw, _, _ = fit_geometry(arr.shape[:2], size)
    kp, order = read_skeleton_picture(arr)
    found = int((kp[:, 2] > 0).sum())
    if found < 2:
        raise InputError("No OpenPose skeleton found in this picture: draw joints with the 18 standard "
                         "OpenPose colours on a dark background$or_keypoints_json.")
    inside = (kp[:, 0] >= left) & (kp[:, 0] < left + cw) & (kp[:, 1] >= top) & (kp[:, 1] < top + ch)
    kp[~inside] = 0.0
    kp[:, :2] = fit_points(kp[:, :2], arr.shape[:2], size)
    kp[kp[:, 2] <= 0] = 0.0
    return from_keypoints(kp, size, messages=[f"Skeleton picture read with {order}: {found} joints."])
