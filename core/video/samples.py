"""Short clips made from photos shipped inside installed packages (tests, benchmarks, examples).

    frames = moving_photo(skimage.data.astronaut(), 16)       # the photo moved, rotated and zoomed
    poses = waving_poses(keypoints, 16)                       # a skeleton whose arms wave
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# COCO-18 joints: right arm = shoulder 2, elbow 3, wrist 4; left arm = 5, 6, 7
RIGHT_ARM, LEFT_ARM = (2, 3, 4), (5, 6, 7)


def moving_photo(photo: np.ndarray, frames: int, side: int = 512, shift: float = 0.04, angle: float = 6.0,
                 zoom: float = 0.05) -> list[np.ndarray]:
    """``frames`` square pictures of ``photo``: a smooth sway (shift and zoom as fractions of the
    side, angle in degrees), as a hand-held camera would film a still person."""
    base = cv2.resize(_square(photo), (side, side), interpolation=cv2.INTER_AREA)
    out = []
    for t in range(frames):
        phase = 2 * math.pi * t / max(frames, 1)
        m = cv2.getRotationMatrix2D((side / 2, side / 2), angle * math.sin(phase), 1 + zoom * math.sin(2 * phase))
        m[0, 2] += shift * side * math.sin(phase)
        m[1, 2] += 0.5 * shift * side * (1 - math.cos(phase))
        out.append(cv2.warpAffine(base, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def waving_poses(keypoints: np.ndarray, frames: int, degrees: float = 35.0) -> list[np.ndarray]:
    """(18, 3) keypoints -> ``frames`` poses whose arms swing about the shoulders (opposite phases)."""
    out = []
    for t in range(frames):
        kp = np.array(keypoints, np.float64)
        swing = math.radians(degrees) * math.sin(2 * math.pi * t / max(frames, 1))
        for arm, sign in ((RIGHT_ARM, 1.0), (LEFT_ARM, -1.0)):
            if kp[arm[0], 2] <= 0:
                continue
            pivot = kp[arm[0], :2]
            c, s = math.cos(sign * swing), math.sin(sign * swing)
            for j in arm[1:]:
                if kp[j, 2] > 0:
                    x, y = kp[j, :2] - pivot
                    kp[j, :2] = pivot + (c * x - s * y, s * x + c * y)
        out.append(kp)
    return out


def _square(photo: np.ndarray) -> np.ndarray:
    h, w = photo.shape[:2]
    s = min(h, w)
    return np.ascontiguousarray(photo[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s, :3])
