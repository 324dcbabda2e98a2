"""Face-edge conditions: landmark lines per facial part + photo edges outside the face, and part distances.

Label (10 channels, values k/255, in the spirit of CoCosNet's CelebA-HQ edge label):
  0      all edges: the 68-point landmark polylines plus Canny edges of the photo outside the
         inner face (hair, ears, clothes, background);
  1..8   one L1 distance map per part (jaw, brows, nose, eyes, outer and inner lips): 0 on
         the part's line, growing by 1/255 per 3 pixels of a 1024-pixel frame, 1 = far or
         the part is unknown (same convention as the pose label's limb channels);
  9      the landmark polylines alone.
A user's own sketch is accepted as channel 0 (normalized to light-on-dark and thinned).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from skimage.morphology import skeletonize

from core.conditions.condition import Condition
from core.conditions.face_detect import find_face
from core.conditions.framing import check_photo, check_size, detection_view
from core.conditions.ibug68 import PART_NAMES, PARTS
from core.errors import InputError, NoSubjectError
from core.imageio import fit_image

FACE_CHANNELS = 2 + len(PARTS)  # 10
CANNY_LOW, CANNY_HIGH = 60, 140  # OpenCV Canny hysteresis thresholds on the blurred grey photo
MIN_FACE_WIDTH = 16  # pixels in the output: below this there is nothing to draw
SMALL_FACE_WIDTH = 64  # pixels in the output: below this, warn


def _polylines(kp: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """All landmark lines (H, W) uint8 0/255 and one mask per part (P, H, W), skipping missing points."""
    h, w = size
    masks = np.zeros((len(PARTS), h, w), np.uint8)
    present = kp[:, 2] > 0
    for p, idx in enumerate(PARTS.values()):
        for a, b in zip(idx[:-1], idx[1:]):
            if present[a] and present[b]:
                pa = tuple(int(round(v)) for v in kp[a, :2])
                pb = tuple(int(round(v)) for v in kp[b, :2])
                cv2.line(masks[p], pa, pb, 255, thickness=1, lineType=cv2.LINE_8)
    return masks.max(axis=0), masks


def _distances(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Per-part L1 distance maps, uint8, in thirds of a pixel of a 1024-pixel frame (255 = far / missing)."""
    unit = 1024.0 / max(size)
    out = np.empty_like(masks)
    for p, m in enumerate(masks):
        if not m.any():  # the part is missing: far everywhere
            out[p] = 255
            continue
        d = cv2.distanceTransform(255 - m, cv2.DIST_L1, 3)
        out[p] = np.clip(d * unit / 3, 0, 255).astype(np.uint8)
    return out


def _hull_mask(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    if len(points) >= 3:
        hull = cv2.convexHull(np.round(points[:, :2]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    return mask > 0


def photo_edges(photo: np.ndarray, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> np.ndarray:
    """Canny edges (H, W) bool of an RGB photo, lightly blurred first (scaled with the size)."""
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    sigma = max(0.8, max(grey.shape) / 512)
    grey = cv2.GaussianBlur(grey, (0, 0), sigma)
    return cv2.Canny(grey, int(low), int(high)) > 0


def render_face(keypoints: np.ndarray, size: tuple[int, int], photo: np.ndarray | None = None,
                outline: np.ndarray | None = None, canny: tuple[int, int] = (CANNY_LOW, CANNY_HIGH),
                sketch: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """Draw the 10-channel face label for (68, 3) iBUG keypoints in pixels of ``size`` = (H, W).

    ``photo`` (fitted to ``size``) adds its edges outside the inner face; ``outline`` points
    (e.g. all 468 FaceMesh points) define the face region; ``sketch`` (H, W) bool replaces
    channel 0. Returns label, preview, part distances (P, H, W) uint8, subject mask.
    """
    lines, masks = _polylines(keypoints, size)
    region_pts = outline if outline is not None else keypoints[keypoints[:, 2] > 0]
    face_region = _hull_mask(np.asarray(region_pts), size)
    if sketch is not None:
        all_edges = sketch.astype(np.uint8) * 255
    else:
        all_edges = lines.copy()
        if photo is not None:
            inner = cv2.dilate(face_region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            all_edges[photo_edges(photo, *canny) & ~inner] = 255
    dists = _distances(masks, size)
    stacked = np.concatenate([all_edges[None], dists, lines[None]], axis=0)
    label = torch.from_numpy(stacked).float().div(255)
    preview = np.repeat(all_edges[..., None], 3, axis=2)
    return label, preview, dists, face_region


def _check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3) or len(kp) not in (68, 70):
        raise InputError(f"Face keypoints must be (68, 3) iBUG points (x, y, confidence); got {kp.shape}.")
    if kp.shape[1] == 2:
        kp = np.concatenate([kp, np.ones((len(kp), 1))], axis=1)
    kp = kp[:68].copy()
    kp[~np.isfinite(kp).all(axis=1) | (kp[:, 2] <= 0)] = 0.0
    if int((kp[:, 2] > 0).sum()) < 10:
        raise NoSubjectError("Too few face keypoints are present (need at least 10 of the 68).")
    return kp


def _parts(dists: np.ndarray) -> np.ndarray:
    return 1.0 - dists.astype(np.float32) / 255.0


def from_keypoints(keypoints: np.ndarray, size: tuple[int, int], image: np.ndarray | None = None,
                   canny: tuple[int, int] = (CANNY_LOW, CANNY_HIGH), outline: np.ndarray | None = None,
                   messages: list[str] | None = None) -> Condition:
    """Condition from (68, 3) iBUG keypoints in pixels of ``size``; ``image`` adds its outer edges."""
    size = check_size(size)
    kp = _check_keypoints(keypoints)
    photo = fit_image(check_photo(image, "face"), size) if image is not None else None
    label, preview, dists, region = render_face(kp, size, photo, outline, canny)
    return Condition(task="face", label=label, preview=preview, image=photo, keypoints=kp.astype(np.float32),
                     subject_mask=region, parts=_parts(dists), messages=list(messages or []))


def detect_keypoints(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The largest face's (68, 3) iBUG points and its outline (FaceMesh: (478, 3) x, y, z), in pixels of
    the photo fitted to ``size``."""
    view, sx, sy = detection_view(image, size, long_side=2048)
    found = find_face(view)
    scale = np.array([sx, sy])
    kp = np.concatenate([found.ibug * scale, np.ones((68, 1))], axis=1)
    outline = np.array(found.outline, np.float64)
    outline[:, :2] *= scale
    if outline.shape[1] > 2:
        outline[:, 2] *= sx  # depth in the x unit, as FaceMesh gives it
    return kp, outline, found.messages


def extract(image: np.ndarray, size: tuple[int, int], canny: tuple[int, int] = (CANNY_LOW, CANNY_HIGH)
            ) -> Condition:
    """Photo -> face-edge condition at ``size`` = (H, W)."""
    size = check_size(size)
    image = check_photo(image, "face")
    kp, outline, messages = detect_keypoints(image, size)
    width = float(np.ptp(kp[:17, 0]))
    if width < MIN_FACE_WIDTH:
        raise NoSubjectError(f"The face is only {width:.0f} pixels wide at {size[1]}x{size[0]}: too small "
                             "to draw. Crop the photo closer to the face.")
    if width < SMALL_FACE_WIDTH:
        messages.append(f"The face is small ({width:.0f} pixels wide at {size[1]}x{size[0]}); crop the photo "
                        "closer to the face for finer edges.")
    outside = (kp[:, 0] < 0) | (kp[:, 0] >= size[1]) | (kp[:, 1] < 0) | (kp[:, 1] >= size[0])
    if outside.any():
        messages.append(f"{int(outside.sum())} of the 68 face points fall outside the picture (face cut off).")
    cond = from_keypoints(kp, size, image, canny, outline=outline, messages=messages)
    if outline.shape == (478, 3):
        cond.mesh = outline.astype(np.float32)
    return cond


def normalize_sketch(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A user's sketch / edge picture -> (H, W) bool one-pixel lines (light or dark lines both accepted)."""
    arr = np.asarray(picture)
    if arr.ndim == 3:
        arr = cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise InputError("A sketch must be an 8-bit picture (lines on a plain background).")
    grey = fit_image(np.repeat(arr[..., None], 3, axis=2), size)[..., 0]
    ink = 255 - grey if np.median(grey) > 127 else grey  # dark lines on paper -> light lines
    if int(ink.max()) - int(np.median(ink)) < 32:
        raise InputError("The sketch looks empty (no lines stand out from the background). Draw lines that "
                         "contrast with the background, or give a photo instead.")
    threshold, _ = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lines = skeletonize(ink > max(threshold, int(np.median(ink)) + 16))
    if lines.sum() < 0.0005 * lines.size:
        raise InputError("Too few lines found in the sketch: draw the face's outline and features.")
    return lines


def from_sketch(picture: np.ndarray, size: tuple[int, int]) -> Condition:
    """A user's sketch or edge map -> face condition (landmarks are looked for in it, to fill the parts)."""
    size = check_size(size)
    lines = normalize_sketch(picture, size)
    messages: list[str] = []
    kp = np.zeros((68, 3))
    try:
        drawing = np.repeat((255 - lines.astype(np.uint8) * 255)[..., None], 3, axis=2)  # dark on white
        drawing = cv2.erode(drawing, np.ones((2, 2), np.uint8))
        kp, _, _ = detect_keypoints(drawing, size)
        messages.append("Face landmarks were found in the sketch; the part channels follow them.")
    except NoSubjectError:
        messages.append("No face landmarks found in the sketch: the part channels are empty, so results "
                        "depend on the lines alone.")
    label, preview, dists, _ = render_face(kp, size, sketch=lines)
    region = kp if (kp[:, 2] > 0).any() else np.argwhere(lines)[:, ::-1].astype(np.float64)
    return Condition(task="face", label=label, preview=preview, image=None,
                     keypoints=kp.astype(np.float32) if (kp[:, 2] > 0).any() else None,
                     subject_mask=_hull_mask(region, size), parts=_parts(dists), messages=messages)


__all__ = ["FACE_CHANNELS", "PART_NAMES", "extract", "from_keypoints", "from_sketch", "render_face"]
