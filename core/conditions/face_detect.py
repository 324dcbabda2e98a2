"""Find one face and its 68 iBUG landmarks: detect (MediaPipe FaceDetection), crop, then FaceMesh.

FaceMesh alone misses small faces in wide shots, so the full-range face detector (model 1,
then the close-up model 0) finds the faces first; the largest one is cropped with a margin,
enlarged, and given to FaceMesh. Only when that places no landmarks (painted, stylised or CG faces)
a second look runs: the detector on filtered copies of the picture, then FaceMesh's landmark model
alone on the detector's box (FaceMesh's own detector and presence gate refuse painted faces).
The optional face-alignment backend (2DFAN4, the original iBUG-68 predictor) is used only when
``WARPAINT_FACE_BACKEND=face-alignment`` is set, the package imports and its weights are already
on disk: it is never required or downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.conditions import detectors
from core.conditions.ibug68 import facemesh_to_ibug68
from core.errors import NoSubjectError

MESH_CROP_SIDE = 384  # the face crop handed to FaceMesh
# Edge-preserving smoothings tried on the face crop when FaceMesh misses a face the detector
# found: painted, carved or heavily textured faces (brush strokes, wood grain) hide the face
# from FaceMesh's own detector, and removing the fine texture gives it back. The crop has a
# fixed size, so the filter sizes are in face units. Tried in order; each costs ~0.05 s.
SMOOTHINGS = (
    ("bilateral", lambda crop: cv2.bilateralFilter(crop, 9, 60, 9)),
    ("bilateral, strong", lambda crop: cv2.bilateralFilter(crop, 15, 100, 15)),
    ("median", lambda crop: cv2.medianBlur(crop, 7)),
)
TILE_MIN = 256  # smallest tile searched for small faces
# x0, y0, x1, y1, score, then the detector's right eye, left eye, nose tip and mouth (x, y) in pixels
Box = tuple[float, ...]
CROP_MARGIN = 1.9  # crop side = this x the detector box's longer side
LANDMARK_SIDE = 192  # the landmark model's input
MODEL_BOX_SCALE = 1.5  # its crop: this x the face's box (as FaceMesh frames it)
MODEL_PASSES = 2  # detector box, then the box of the first pass's points
MIN_FACE_EXTENT = 4  # pixels: a smaller face (or a collapsed mesh) gets no landmark crop
MODEL_AGREEMENT = 0.25  # its eyes, nose and mouth within this x the detector's eye distance of the detector's
# FaceMesh in a box found only on a filtered copy: the same check, looser (FaceMesh's own detector and presence
# gate passed): groot's stylised copies 0.24-0.49, a false box on a rocket's nose 0.85-0.98
MESH_AGREEMENT = 0.6
RETRY_SIDE = 448  # the downscaled copy's longer side (the full-range detector itself sees 192 px)
IRIS_RADIUS = 0.22  # a synthesised iris's radius over its eye's width (FaceMesh on photos: 0.20-0.25)


@dataclass
class FaceFind:
    """One face: iBUG-68 points and the outline of the whole face, in pixels of the searched picture."""

    ibug: np.ndarray  # (68, 2)
    outline: np.ndarray  # (N, 2+) points whose convex hull is the face (FaceMesh: all 478 as x, y, z)
    width: float  # face width in pixels (jaw end to jaw end)
    messages: list[str] = field(default_factory=list)


def _detect(name: str, image: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> list[Box]:
    h, w = image.shape[:2]
    found = []
    for det in detectors.run(name, image).detections or []:
        box = det.location_data.relative_bounding_box
        x0, y0 = max(0.0, box.xmin) * w, max(0.0, box.ymin) * h
        x1, y1 = min(1.0, box.xmin + box.width) * w, min(1.0, box.ymin + box.height) * h
        kp = det.location_data.relative_keypoints  # right eye, left eye, nose tip, mouth, ears
        if x1 > x0 and y1 > y0:
            found.append((x0 + dx, y0 + dy, x1 + dx, y1 + dy, float(det.score[0]),
                          *(v for p in kp[:4] for v in (p.x * w + dx, p.y * h + dy))))
    return found


def _overlap(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min(_area(a), _area(b))
    return ix * iy / max(smaller, 1e-6)


def _boxes(image: np.ndarray) -> list[Box]:
    """Face boxes in pixels (``Box``: x0, y0, x1, y1, score, then the detector's four keypoints).

    The full-range model, then the close-up one, on the whole picture; if both miss, the
    full-range model on overlapping tiles (it sees the picture at 192 pixels, so a face
    under ~1/20 of the picture needs a closer look).
    """
    for name in ("face_detection_far", "face_detection_near"):
        found = _detect(name, image)
        if found:
            return found
    h, w = image.shape[:2]
    tile = max(TILE_MIN, min(h, w) // 2)
    if tile >= min(h, w):
        return []
    found = []
    for y in sorted({*range(0, h - tile, tile // 2), h - tile}):
        for x in sorted({*range(0, w - tile, tile // 2), w - tile}):
            found += _detect("face_detection_far", image[y:y + tile, x:x + tile], x, y)
    kept: list[Box] = []
    for box in sorted(found, key=lambda b: -b[4]):  # the same face seen by two tiles counts once
        if all(_overlap(box, k) < 0.5 for k in kept):
            kept.append(box)
    return kept


def _mesh(image: np.ndarray) -> np.ndarray | None:
    """FaceMesh on a picture -> (478, 3) x, y, z in pixels (z in the x unit, smaller = nearer), or None."""
    result = detectors.run("face_mesh", image)
    if not result.multi_face_landmarks:
        return None
    h, w = image.shape[:2]
    return np.array([(p.x * w, p.y * h, p.z * w) for p in result.multi_face_landmarks[0].landmark])


def _mesh_in_box(image: np.ndarray, box: Box, messages: list[str] | None = None) -> np.ndarray | None:
    """FaceMesh on an enlarged square crop around a detector box, mapped back to the picture.

    When FaceMesh misses the crop, smoothed copies of it are tried (``SMOOTHINGS``); one that
    works adds a note to ``messages``: its landmarks are less sure than on a photo.
    """
    x0, y0, x1, y1 = box[:4]
    side = CROP_MARGIN * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * (y1 - y0)  # boxes start at the brows: shift up a little
    scale = MESH_CROP_SIDE / side
    # Affine map picture -> crop (zero padding where the crop leaves the picture).
    m = np.array([[scale, 0, MESH_CROP_SIDE / 2 - cx * scale], [0, scale, MESH_CROP_SIDE / 2 - cy * scale]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    crop = cv2.warpAffine(image, m, (MESH_CROP_SIDE, MESH_CROP_SIDE), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT)
    pts = _mesh(crop)
    for name, smooth in SMOOTHINGS:
        if pts is not None:
            break
        pts = _mesh(smooth(crop))
        if pts is not None and messages is not None:
            messages.append(f"The face's landmarks were found on a smoothed copy ({name}): a painted or "
                            "textured face. Check the result's eyes and mouth.")
    if pts is None:
        return None
    pts[:, :2] -= m[:, 2]
    return pts / scale


def _upright_crop(image: np.ndarray, centre: np.ndarray, side: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The square ``side`` around ``centre`` turned by ``angle`` (degrees, counter-clockwise) so the eyes
    are level, at the landmark model's 192 px -> (crop, (2, 3) affine map picture -> crop)."""
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, LANDMARK_SIDE / side)
    m[:, 2] += LANDMARK_SIDE / 2 - centre
    interp = cv2.INTER_AREA if side > LANDMARK_SIDE else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, m, (LANDMARK_SIDE, LANDMARK_SIDE), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return crop, m


def _with_irises(mesh: np.ndarray) -> np.ndarray:
    """(468, 3) points -> (478, 3): each iris (centre, then right, top, left, bottom as FaceMesh orders
    them) placed looking ahead, in the middle of its eye, its radius ``IRIS_RADIUS`` of the eye's width."""
    irises = []
    for outer, inner in ((33, 133), (362, 263)):  # both run left -> right in the picture
        along = mesh[inner, :2] - mesh[outer, :2]
        width = float(np.linalg.norm(along))
        u = along / max(width, 1e-6)
        v = np.array([-u[1], u[0]])  # down the face
        centre = (mesh[outer, :2] + mesh[inner, :2]) / 2 - 0.05 * width * v
        r = IRIS_RADIUS * width
        ring = [centre, centre + r * u, centre - r * v, centre - r * u, centre + r * v]
        z = (mesh[outer, 2] + mesh[inner, 2]) / 2
        irises += [(x, y, z) for x, y in ring]
    return np.concatenate([mesh, np.array(irises)])


def _model_points(crop: np.ndarray) -> np.ndarray | None:
    """The landmark model on a 192 px face crop and on its mirror image, averaged -> (468, 3) in crop pixels.

    Averaging the two readings halves the scatter on painted faces (astronaut oil 7: NME 0.18 -> 0.13).
    """
    from core.charts.face import mesh_mirror  # charts import conditions: imported here

    readings = []
    for flip in (False, True):
        pts = model_reading(np.ascontiguousarray(crop[:, ::-1]) if flip else crop)
        if pts is None:
            return None
        if flip:
            pts[:, 0] = LANDMARK_SIDE - pts[:, 0]
            pts = pts[mesh_mirror()[:468]]
        readings.append(pts)
    return np.mean(readings, axis=0)


def _model_mesh(image: np.ndarray, box: Box) -> np.ndarray | None:
    """The landmark model on the detector's box, uprighted by the detector's eyes; then once more on
    the box its own points give (as FaceMesh tracks a face) -> (478, 3) x, y, z in pixels, or None.

    FaceMesh puts its own face detector and a face-presence gate in front of this model; both
    refuse painted faces whose landmarks the model still places (see docs/engine.md, fifth session).
    """
    x0, y0, x1, y1 = box[:4]
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    mesh = placed_mesh(image, centre, max(x1 - x0, y1 - y0), np.array([box[5:7], box[7:9]]), _model_points)
    # The model places a face in any crop: keep it only where the detector agrees (``_agrees``).
    return None if mesh is None or not _agrees(mesh, box, MODEL_AGREEMENT) else _with_irises(mesh)


def model_reading(crop: np.ndarray) -> np.ndarray | None:
    """The landmark model once on a 192 px face crop -> (468, 3) in crop pixels, or None."""
    result = detectors.run("face_landmark_model", crop)
    if result.points is None or len(result.points) != 468 * 3:
        return None
    return np.asarray(result.points, np.float64).reshape(468, 3)


def placed_mesh(image: np.ndarray, centre: np.ndarray, extent: float, eyes: np.ndarray | None,
                read: Callable[[np.ndarray], np.ndarray | None], first_scale: float = MODEL_BOX_SCALE,
                turn_gap: float = 0.0) -> np.ndarray | None:
    """The landmark model placed as FaceMesh tracks a face, ``MODEL_PASSES`` times: first on the square
    ``first_scale`` x ``extent`` around ``centre``, uprighted by ``eyes`` ((2, 2) x, y: the right eye, then the
    left; None: not turned), then on the box of the previous pass's points, uprighted by its eyes -> (468, 3)
    x, y, z in picture pixels, or None (a reading failed, or a face under ``MIN_FACE_EXTENT`` pixels).
    ``read``: a crop -> (468, 3) crop pixels or None. ``turn_gap``: the eyes upright the crop only when at least
    this x the face's extent apart (a profile's are closer)."""
    side, mesh = first_scale * extent, None
    for _ in range(MODEL_PASSES):
        if extent < MIN_FACE_EXTENT:
            return None
        level = None if eyes is None else eyes[1] - eyes[0]  # right eye -> left eye: left to right in the picture
        turn = 0.0 if level is None or np.hypot(*level) < turn_gap * extent else \
            float(np.degrees(np.arctan2(level[1], level[0])))
        crop, m = _upright_crop(image, centre, side, turn)
        pts = read(crop)
        if pts is None:
            return None
        back = cv2.invertAffineTransform(m)
        mesh = np.column_stack([pts[:, :2] @ back[:, :2].T + back[:, 2], pts[:, 2] * side / LANDMARK_SIDE])
        lo, hi = mesh[:, :2].min(0), mesh[:, :2].max(0)
        centre, extent = (lo + hi) / 2, float((hi - lo).max())
        side, eyes = MODEL_BOX_SCALE * extent, mesh[[33, 263], :2]
    return mesh


def _agrees(mesh: np.ndarray, box: Box, limit: float) -> bool:
    """Whether the mesh's eyes, nose tip and mouth lie within ``limit`` times the detector's eye
    distance of the detector's own four keypoints: a false detection (on an eye, a patch of background,
    a rocket's nose) gets a face placed in it that does not line up with them."""
    detected = np.asarray(box[5:13]).reshape(4, 2)
    placed = np.array([mesh[[33, 133], :2].mean(0), mesh[[362, 263], :2].mean(0), mesh[1, :2],
                       mesh[[13, 14], :2].mean(0)])
    spread = np.linalg.norm(placed - detected, axis=1).max() / max(np.linalg.norm(detected[0] - detected[1]), 1.0)
    return bool(spread <= limit)


_fa_lock = threading.Lock()
_fa_model: list[object] = []


def face_alignment_ready() -> bool:
    """True when the optional face-alignment package imports and its weights are already cached."""
    if importlib.util.find_spec("face_alignment") is None:
        return False
    try:
        import torch.hub

        ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:
        return False
    return any(ckpt.glob("2DFAN4*")) and any(ckpt.glob("s3fd*"))


def _face_alignment_points(image: np.ndarray) -> np.ndarray | None:
    """The largest face's 68 points from face-alignment (None if it fails in any way)."""
    try:
        with _fa_lock:
            if not _fa_model:
                import face_alignment

                kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
                try:
                    _fa_model.append(face_alignment.FaceAlignment(kind, device="cpu", compile=False))
                except TypeError:  # older versions have no ``compile`` argument
                    _fa_model.append(face_alignment.FaceAlignment(kind, device="cpu"))
            faces = _fa_model[0].get_landmarks_from_image(image)  # type: ignore[attr-defined]
    except Exception:
        return None
    if not faces:
        return None
    return np.asarray(max(faces, key=lambda f: np.ptp(f[:, 0]) * np.ptp(f[:, 1]))[:, :2], np.float64)


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _largest(boxes: list[Box]) -> Box:
    return max(boxes, key=_area)


def _retry_boxes(image: np.ndarray, tried: list[Box]) -> list[Box]:
    """Face boxes on filtered copies of the picture (``DETECTION_RETRIES``), largest first, leaving out
    faces already tried: stylised and CG faces the detector misses on the picture itself."""
    found: list[Box] = []
    for _, retry in DETECTION_RETRIES:
        for box in retry(image):
            if all(_overlap(box, k) < 0.5 for k in tried + found):
                found.append(box)
    return sorted(found, key=_area, reverse=True)


def _second_look(image: np.ndarray, boxes: list[Box], messages: list[str]) -> np.ndarray | None:
    """Landmarks for a face the first look missed: FaceMesh in the boxes found on filtered copies of
    the picture, then the landmark model alone in every box (the first look's largest first); each kept
    only where it agrees with its box's keypoints (filtered copies give false boxes too)."""
    more = _retry_boxes(image, boxes)
    for box in more:
        notes: list[str] = []  # a smoothing's note only with the mesh kept
        mesh = _mesh_in_box(image, box, notes)
        if mesh is not None and _agrees(mesh, box, MESH_AGREEMENT):
            messages += notes
            messages.append("The face was found on a filtered copy of the picture (a stylised or unusual face): "
                            "check the result's eyes and mouth.")
            return mesh
    for box in ([_largest(boxes)] if boxes else []) + more:
        mesh = _model_mesh(image, box)
        if mesh is not None:
            messages.append("The face's landmarks were placed on the detected face by the landmark model alone "
                            "(a painted or stylised face): check the result's eyes and mouth.")
            return mesh
    return None


def _boxes_downscaled(image: np.ndarray) -> list[Box]:
    """Face boxes on a copy area-averaged to ``RETRY_SIDE`` (fine texture and aliasing gone), in pixels
    of the picture."""
    scale = RETRY_SIDE / max(image.shape[:2])
    if scale >= 1:
        return []
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return [tuple(v / scale if i != 4 else v for i, v in enumerate(b)) for b in _boxes(small)]


# Filtered copies the detector looks at when the first look placed no landmarks; each ~0.02-0.05 s.
DETECTION_RETRIES = (
    ("downscaled", _boxes_downscaled),
    ("bilateral", lambda image: _boxes(cv2.bilateralFilter(image, 9, 60, 9))),
)


def find_face(image: np.ndarray) -> FaceFind:
    """The largest face in an RGB picture; raises ``NoSubjectError`` when there is none."""
    messages: list[str] = []
    if os.environ.get("WARPAINT_FACE_BACKEND", "").lower() == "face-alignment":
        if face_alignment_ready():
            pts = _face_alignment_points(image)
            if pts is not None:
                return FaceFind(pts, pts, float(np.ptp(pts[:17, 0])), ["Landmarks by face-alignment (2DFAN4)."])
            messages.append("face-alignment found no face; fell back to MediaPipe.")
        else:
            messages.append("face-alignment is not installed or its weights are not cached; used MediaPipe.")
    boxes = _boxes(image)
    mesh = None
    if boxes:
        box = _largest(boxes)
        if len(boxes) > 1:
            messages.append(f"{len(boxes)} faces found; used the largest. Crop the photo to choose another.")
        mesh = _mesh_in_box(image, box, messages)
    if mesh is None:
        mesh = _mesh(image)
    if mesh is None:  # a painted, stylised or CG face: look again (only when the first look failed)
        mesh = _second_look(image, boxes, messages)
    if mesh is None:
        if boxes:
            raise NoSubjectError("A face was detected but its landmarks could not be placed. Use a sharper, "
                                 "more frontal photo where the face is unobstructed.")
        raise NoSubjectError("No face found in the picture. Use a photo with a clearly visible face "
                             "(frontal or three-quarter view)$or_keypoints_json.")
    ibug = facemesh_to_ibug68(mesh)
    return FaceFind(ibug, mesh, float(np.ptp(ibug[:17, 0])), messages)
