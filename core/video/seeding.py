"""Temporal seeding (engine v1): frame t's matching starts from frame t-1's matches, moved by the pose change.

A point p of frame t is the body point ``pose_flow(t -> t-1)(p)`` of frame t-1 (a smooth
thin-plate map through the joints both frames have), which frame t-1 matched to some exemplar
points; those become p's starting candidates. The exemplar does not move, so nothing else
changes. When the pose barely moved, fewer PatchMatch iterations are needed (none when still).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from core.descriptors import PRIOR_SMOOTH, fit_mapping

STILL = 0.004  # largest joint move (fraction of the frame's longer side) under which the matches are kept
SMALL = 0.03  # ... under which one PatchMatch iteration refines them


def pose_motion(previous: np.ndarray, current: np.ndarray, size: tuple[int, int]) -> float:
    """Largest move of a joint present in both (18, 3) poses, as a fraction of the longer side
    (infinite when fewer than two joints are shared: nothing to carry the matches by)."""
    both = (previous[:, 2] > 0) & (current[:, 2] > 0)
    if both.sum() < 2:
        return math.inf
    return float(np.linalg.norm(current[both, :2] - previous[both, :2], axis=1).max()) / max(size)


def iterations_for(motion: float, full: int) -> int:
    """PatchMatch iterations for a seeded frame: none when still, one for small moves, else ``full``."""
    if motion <= STILL:
        return 0
    return min(1, full) if motion <= SMALL else full


def pose_flow(origin: np.ndarray, target: np.ndarray, size: tuple[int, int], grid: tuple[int, int],
              step: int = 4) -> np.ndarray | None:
    """(2, h, w) float32: each pixel centre of an (h, w) grid over a frame of ``size`` = (H, W), as (x, y)
    in the same grid for the pose ``target``, through the joints ``origin`` and ``target`` share.
    None when fewer than two joints are shared."""
    both = (origin[:, 2] > 0) & (target[:, 2] > 0)
    if both.sum() < 2:
        return None
    mapping = fit_mapping(origin[both, :2].astype(np.float64), target[both, :2].astype(np.float64), PRIOR_SMOOTH)
    h, w = grid
    sy, sx = size[0] / h, size[1] / w
    xs = (np.arange(0, w + step - 1, step) + 0.5) * sx - 0.5  # lattice every ``step`` grid pixels, in frame pixels
    ys = (np.arange(0, h + step - 1, step) + 0.5) * sy - 0.5
    points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    mapped = np.asarray(mapping(points), np.float64).reshape(len(ys), len(xs), 2)
    mapped = ((mapped + 0.5) / [sx, sy] - 0.5).astype(np.float32)  # back to grid pixels
    affine = np.array([[1 / step, 0, 0], [0, 1 / step, 0]], np.float32)
    dense = cv2.warpAffine(mapped, affine, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(dense.transpose(2, 0, 1))


def carry_matches(positions: torch.Tensor, previous_pose: np.ndarray, pose: np.ndarray,
                  size: tuple[int, int]) -> torch.Tensor | None:
    """Frame t-1's candidates (1, K, 2, h, w) (exemplar row, col at the finest matched level) moved to
    frame t's pixels: p takes the candidates of its body point in frame t-1 (nearest pixel, so that
    each pixel keeps a coherent candidate list). None when the poses share too few joints."""
    h, w = positions.shape[-2:]
    flow = pose_flow(pose, previous_pose, size, (h, w))
    if flow is None:
        return None
    cols = torch.from_numpy(flow[0]).round().clamp(0, w - 1).long()
    rows = torch.from_numpy(flow[1]).round().clamp(0, h - 1).long()
    flat = (rows * w + cols).view(1, 1, 1, -1).to(positions.device)
    k = positions.shape[1]
    return positions.flatten(3).gather(3, flat.expand(1, k, 2, -1)).view(1, k, 2, h, w)


