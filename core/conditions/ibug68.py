"""MediaPipe FaceMesh (468 points) -> the iBUG 300-W 68-point layout, and the 68 points' facial parts.

iBUG order (Sagonas et al., 300 Faces in-the-Wild, 2013; also dlib's and OpenPose's face
layout): jaw 0-16 running from the subject's RIGHT ear past the chin (8) to the LEFT ear,
right brow 17-21 (outer -> inner), left brow 22-26 (inner -> outer), nose bridge 27-30
(top -> tip), nostrils 31-35 (right -> left), right eye 36-41 (outer corner, upper lid,
inner corner, lower lid), left eye 42-47 (inner corner first), outer lips 48-59 (right
corner, clockwise in the image), inner lips 60-67. "Right" is the subject's right, which
is the image's left in an ordinary (non-mirrored) photo.

Source of the FaceMesh indices: the contour lists in mediapipe's own
``mediapipe/python/solutions/face_mesh_connections.py`` (FACEMESH_FACE_OVAL, _LIPS,
_RIGHT_EYE/_LEFT_EYE, _RIGHT_EYEBROW/_LEFT_EYEBROW, _NOSE; "right" there is also the
subject's right), with points picked at the iBUG positions along each contour;
cross-checked against the public table of PeizhiYan/Mediapipe_2_Dlib_Landmarks (MIT).
The jaw is resampled at equal arc length along the face oval from 127 (right temple)
through 152 (chin) to 356 (left temple), because iBUG spaces its jaw points evenly.
Tests check the orientation on real photos (jaw 0 and eye 36 on the image's left).
"""

from __future__ import annotations

import numpy as np

# Face oval from the right temple down to the chin and up to the left temple (FACEMESH_FACE_OVAL).
JAW_RIGHT_HALF = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152)
JAW_LEFT_HALF = (152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)

# iBUG index -> FaceMesh index, for points 17..67.
FACEMESH_FOR_IBUG = {
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107,  # right brow, outer -> inner (upper edge)
    22: 336, 23: 296, 24: 334, 25: 293, 26: 300,  # left brow, inner -> outer
    27: 168, 28: 197, 29: 5, 30: 1,  # nose bridge: between the eyes -> tip (pronasale)
    31: 98, 32: 97, 33: 2, 34: 326, 35: 327,  # nostrils, right -> left; 33 = subnasale
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,  # right eye
    42: 362, 43: 385, 44: 387, 45: 263, 46: 373, 47: 380,  # left eye
    48: 61, 49: 40, 50: 37, 51: 0, 52: 267, 53: 270,  # outer lips: right corner, upper lip
    54: 291, 55: 321, 56: 314, 57: 17, 58: 84, 59: 91,  # left corner, lower lip
    60: 78, 61: 81, 62: 13, 63: 311, 64: 308, 65: 402, 66: 14, 67: 178,  # inner lips
}

# Facial parts as polylines over iBUG indices (closed ones repeat their first point).
PARTS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose": (27, 28, 29, 30, 33) + (31, 32, 33, 34, 35),  # bridge to the tip, down to the nostrils
    "right_eye": (36, 37, 38, 39, 40, 41, 36),
    "left_eye": (42, 43, 44, 45, 46, 47, 42),
    "outer_lips": tuple(range(48, 60)) + (48,),
    "inner_lips": tuple(range(60, 68)) + (60,),
}
PART_NAMES = tuple(PARTS)


def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points at equal arc length along a polyline (end points kept)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return np.repeat(points[:1], n, axis=0)
    targets = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(targets, arc, points[:, k]) for k in range(points.shape[1])], axis=1)


def facemesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(468+, 2) FaceMesh points (any units) -> (68, 2) iBUG points in the same units."""
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    out = np.zeros((68, 2), np.float64)
    out[0:9] = _resample(mesh[list(JAW_RIGHT_HALF)], 9)
    out[8:17] = _resample(mesh[list(JAW_LEFT_HALF)], 9)
    for ibug, fm in FACEMESH_FOR_IBUG.items():
        out[ibug] = mesh[fm]
    return out
