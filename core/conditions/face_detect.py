"""Find one face and its 68 iBUG landmarks: detect (MediaPipe FaceDetection), crop, then FaceMesh.

FaceMesh alone misses small faces in wide shots, so the full-range face detector (model 1,
then the close-up model 0) finds the faces first; the largest one is cropped with a margin,
enlarged, and given to FaceMesh. The optional face-alignment backend (2DFAN4, the original
iBUG-68 predictor) is used only when ``WARPAINT_FACE_BACKEND=face-alignment`` is set, the
package imports and its weights are already on disk: it is never required or downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import threading
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
Box = tuple[float, float, float, float, float]
CROP_MARGIN = 1.9  # crop side = this x the detector box's longer side


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
        if x1 > x0 and y1 > y0:
            found.append((x0 + dx, y0 + dy, x1 + dx, y1 + dy, float(det.score[0])))
    return found


def _overlap(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / max(smaller, 1e-6)


def _boxes(image: np.ndarray) -> list[Box]:
    """Face boxes (x0, y0, x1, y1, score) in pixels.

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
    x0, y0, x1, y1, _ = box
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
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
        box = boxes[int(np.argmax(areas))]
        if len(boxes) > 1:
            messages.append(f"{len(boxes)} faces found; used the largest. Crop the photo to choose another.")
        mesh = _mesh_in_box(image, box, messages)
    if mesh is None:
        mesh = _mesh(image)
    if mesh is None:
        if boxes:
            raise NoSubjectError("A face was detected but its landmarks could not be placed. Use a sharper, "
                                 "more frontal photo where the face is unobstructed.")
        raise NoSubjectError("No face found in the picture. Use a photo with a clearly visible face "
                             "(frontal or three-quarter view), or give 68 face keypoints as OpenPose JSON.")
    ibug = facemesh_to_ibug68(mesh)
    return FaceFind(ibug, mesh, float(np.ptp(ibug[:17, 0])), messages)
