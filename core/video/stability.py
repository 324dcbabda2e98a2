"""How stable and how faithful a retargeted clip is.

- **flicker** (per frame t >= 1): mean absolute difference (0-255) between output frame t and output
  frame t-1 warped by the *input's own* motion from t-1 to t, over the person region of frame t.
  A perfectly stable result moves exactly as the input does and scores ~0 (up to resampling);
  matches that jump from frame to frame score high. The motion is the dense optical flow of the
  input frames (OpenCV's DIS) when there are photos, else the joints' thin-plate map.
- **PCK** (per frame): ``core.metrics.pose_pck``, the fraction of the input's joints that MediaPipe
  finds again in the output within 0.2 of the person's head-to-hip size (structure fidelity: does
  the output show the pose it was asked for?).
"""

from __future__ import annotations

import cv2
import numpy as np

from core.imageio import disc
from core.metrics import pose_pck
from core.video.seeding import pose_flow


def input_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(H, W, 2) backward flow: pixel (x, y) of ``current`` came from (x, y) + flow in ``previous``."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    a = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY)
    return dis.calc(a, b, None)


def keypoint_flow(previous: np.ndarray, current: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """(H, W, 2) backward flow from the joints of two poses (no photos), or None with < 2 shared joints."""
    mapped = pose_flow(current, previous, size, size)
    if mapped is None:
        return None
    h, w = size
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    return np.ascontiguousarray((mapped - grid).transpose(1, 2, 0))


def warp_back(previous: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``previous`` sampled at each pixel's origin: (warped picture, mask of origins inside the frame)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    warped = cv2.remap(previous, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return warped, inside


def flicker(previous_output: np.ndarray, output: np.ndarray, flow: np.ndarray, region: np.ndarray) -> float:
    """Mean |output - warp(previous_output)| (0-255) over ``region`` (H, W) bool, where the flow stays inside."""
    warped, inside = warp_back(previous_output, flow)
    use = region & inside
    if not use.any():
        return float("nan")
    return float(np.abs(output.astype(np.float32) - warped.astype(np.float32))[use].mean())


def person_region(mask: np.ndarray, grow: float = 0.03) -> np.ndarray:
    """The subject mask, or the drawn skeleton's, grown by ``grow`` of the longer side (bool (H, W))."""
    m = np.asarray(mask, np.uint8)
    r = max(1, round(grow * max(m.shape)))
    return cv2.dilate(m, disc(r)) > 0


def pck(found: np.ndarray | None, reference: np.ndarray) -> float:
    """``core.metrics.pose_pck`` of the joints re-detected in an output frame (None: nobody found, 0)
    against the frame's input joints; NaN when the input gives no body size."""
    try:
        return pose_pck(found if found is not None else np.zeros((18, 3)), reference)
    except ValueError:
        return float("nan")
