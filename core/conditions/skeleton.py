"""OpenPose COCO-18 skeleton -> the 20-channel pose label of the official DeepFashionHD model.

The official CoCosNet v2 data loader draws the skeleton on a fixed 1024x1024 canvas (joint
discs of radius 20, limb ellipses of half-width 20, each limb blended 0.4 old / 0.6 new),
reads the canvas as BGR and flips it to RGB, and adds one channel per limb: the L1
distance (3x3 mask) to that limb's ellipse, divided by 3 and clipped to 255. The picture
is resized to the model size with NEAREST, the distance maps with bilinear (Pillow), and
all 20 channels are k/255. We do the same arithmetic so the released checkpoint sees
exactly the label it was trained on; tests pin this against the official output.

Sizes other than 512: we draw on a canvas whose longer side is 1024 (or the target's, if
larger, with the widths and the distance unit scaled to match), so the skeleton keeps the
same thickness relative to the picture at every resolution.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from PIL import Image

COCO18 = (
    "nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
    "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
    "right eye", "left eye", "right ear", "left ear",
)  # OpenPose COCO-18 order (the subject's right / left)

# The 17 limbs the label draws, as (joint, joint) in COCO-18 indices. The official list has
# two more entries (shoulder-ear) that its loop never reaches.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# OpenPose's 18 drawing colours. The official loader passes them to OpenCV on a canvas it
# later reads as BGR, so in the final RGB picture each triple appears channel-reversed.
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

REFERENCE_SIDE = 1024  # the official canvas
STICK_WIDTH = 20  # limb half-width and joint radius on the reference canvas
POSE_CHANNELS = 3 + len(LIMBS)  # 20


def _canvas_geometry(size: tuple[int, int]) -> tuple[int, int, float, int, float]:
    """Canvas (h, w), target->canvas scale, stroke width, and the distance unit factor."""
    h, w = int(size[0]), int(size[1])
    long_side = max(REFERENCE_SIDE, h, w)
    scale = long_side / max(h, w)
    ch, cw = round(h * scale), round(w * scale)
    stroke = round(STICK_WIDTH * long_side / REFERENCE_SIDE)
    return ch, cw, scale, stroke, REFERENCE_SIDE / long_side


def render_pose(keypoints: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Draw the official 20-channel label for (18, 3) keypoints (x, y, conf; conf 0 = missing).

    Keypoints are in pixels of ``size`` = (H, W). Returns the label (20, H, W) float32,
    the RGB skeleton picture (H, W, 3) uint8 (= label channels 0-2 x 255) and the
    17 limb-distance maps (17, H, W) uint8 (0 on the limb, 255 = far or limb missing).
    """
    picture = draw_skeleton(keypoints, size)
    dists = limb_distances(keypoints, size)
    return pose_label(picture, dists), picture, dists


def pose_label(picture: np.ndarray, dists: np.ndarray) -> torch.Tensor:
    """The (20, H, W) float32 label: the skeleton picture's 3 channels, then the 17 distance maps, k/255."""
    stacked = np.concatenate([picture.transpose(2, 0, 1), dists], axis=0)
    return torch.from_numpy(np.ascontiguousarray(stacked)).float().div(255)


def _limb_polygons(keypoints: np.ndarray, size: tuple[int, int]):
    """The canvas geometry and, per limb of ``LIMBS``, its ellipse polygon on the canvas (None: a joint missing)."""
    ch, cw, scale, stroke, unit = _canvas_geometry(size)
    kp = np.asarray(keypoints, dtype=np.float64)
    present = kp[:, 2] > 0
    pts = kp[:, :2] * scale
    polys = []
    for a, b in LIMBS:
        if not (present[a] and present[b]):
            polys.append(None)
            continue
        xs, ys = pts[[a, b], 0], pts[[a, b], 1]
        length = math.hypot(xs[0] - xs[1], ys[0] - ys[1])
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        polys.append(cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), stroke),
                                      int(angle), 0, 360, 1))
    return (ch, cw, stroke, unit, present, pts), polys


def draw_skeleton(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (H, W, 3) uint8 RGB skeleton picture of ``render_pose`` (joint discs, limbs blended 0.4 / 0.6)."""
    h, w = int(size[0]), int(size[1])
    (ch, cw, stroke, _, present, pts), polys = _limb_polygons(keypoints, size)
    canvas = np.zeros((ch, cw, 3), np.uint8)
    for i in range(len(COCO18)):
        if present[i]:
            cv2.circle(canvas, (int(pts[i, 0]), int(pts[i, 1])), stroke, COLORS[i], thickness=-1)
    for k, poly in enumerate(polys):
        if poly is None:
            continue
        # Blended within the limb's box only: elsewhere 0.4 x + 0.6 x rounds back to x.
        (x0, y0), (x1, y1) = np.maximum(poly.min(axis=0), 0), np.minimum(poly.max(axis=0) + 1, (cw, ch))
        if x1 <= x0 or y1 <= y0:
            continue
        under = canvas[y0:y1, x0:x1]
        limb = under.copy()
        cv2.fillConvexPoly(limb, poly - np.array([x0, y0], poly.dtype), COLORS[k])
        canvas[y0:y1, x0:x1] = cv2.addWeighted(under, 0.4, limb, 0.6, 0)
    return np.ascontiguousarray(np.asarray(Image.fromarray(np.ascontiguousarray(canvas[..., ::-1])).resize(
        (w, h), resample=Image.NEAREST)))


def limb_distances(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The 17 (H, W) uint8 limb-distance maps of ``render_pose`` (the label's channels 3-19, the parts):
    most of its cost (a distance transform per limb on the 1024 canvas), so conditions compute them
    only when asked (``Condition.label`` / ``parts``)."""
    h, w = int(size[0]), int(size[1])
    (ch, cw, _, unit, _, _), polys = _limb_polygons(keypoints, size)
    dists = np.empty((len(LIMBS), h, w), np.uint8)
    for k, poly in enumerate(polys):
        if poly is None:  # far everywhere: what the transform gives, once clipped
            dists[k] = 255
            continue
        mask = np.zeros((ch, cw), np.uint8)
        cv2.fillConvexPoly(mask, poly, 255)
        far = cv2.distanceTransform(255 - mask, cv2.DIST_L1, 3)
        far = np.clip(far * unit / 3, 0, 255).astype(np.uint8)
        dists[k] = np.asarray(Image.fromarray(far).resize((w, h), resample=Image.BILINEAR))
    return dists
