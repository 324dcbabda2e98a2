"""Hand-made, domain-invariant descriptors for the training-free engine (no learned parameters).

Both sides of a translation are described from their *conditions* only (skeleton, face parts
and edges, class masks), never from the photos' colours, so a skeleton drawn by a user and a
painting's extracted pose land in the same descriptor space. Per task:

- pose: one field per limb, exp(-distance / sigma), and the body silhouette's signed distance
  (only when both sides have a segmented silhouette, not a drawn skeleton);
- face: one field per facial part, the edge map blurred at two scales, the face region's signed
  distance;
- mask: per shared class a blurred one-hot, a wide blur and the signed distance to its boundary;
- every task: a weak coordinate term. The exemplar's coordinates are mapped into the source's
  frame by a thin-plate spline through matched keypoints (pose, face) or by aligning the
  classes' centroids (mask), so that the term says "same place on the subject", not "same pixel".

Channels are weighted by group, and every pixel's vector is unit length at every pyramid level.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import ThinPlateSplineTransform

from core.conditions.condition import Condition
from core.corr import normalize_features

DIST_RANGE = 255 * 3 / 1024  # the conditions' distance channels saturate at this fraction of the long side
MAX_MASK_CLASSES = 10  # classes described per mask pair (the largest shared ones): 3 channels each
FREQUENCIES = (0.5, 1.5)  # coordinate term: cycles per image side
GROUP_WEIGHTS = {"parts": 1.0, "edges": 0.6, "silhouette": 0.8, "classes": 1.0, "coords": 0.5}


@dataclass
class DescriptorPair:
    """Descriptors of the source condition and of the exemplar, channel for channel."""

    source: torch.Tensor  # (1, C, H, W)
    exemplar: torch.Tensor  # (1, C, H, W)
    groups: dict[str, int]  # channel count per group, in order
    anchor: np.ndarray  # (2, H, W) float32: exemplar pixel -> (x, y) in source pixels
    prior: np.ndarray  # (2, H, W) float32: source pixel -> (x, y) in exemplar pixels (the same prior, inverted)


def describe_pair(source: Condition, exemplar: Condition, weights: dict[str, float] | None = None) -> DescriptorPair:
    """Descriptors (1, C, H, W) of both conditions (same size), channels weighted by group."""
    if source.size != exemplar.size:
        raise ValueError(f"conditions differ in size: {source.size} vs {exemplar.size}")
    if source.task != exemplar.task:
        raise ValueError(f"conditions differ in task: {source.task} vs {exemplar.task}")
    w = {**GROUP_WEIGHTS, **(weights or {})}
    h, wd = source.size
    side = max(h, wd)
    groups: list[tuple[str, np.ndarray, np.ndarray]] = []
    if source.task == "pose":
        groups.append(("parts", _part_fields(source.parts, 0.04), _part_fields(exemplar.parts, 0.04)))
        if _has_silhouette(source) and _has_silhouette(exemplar):
            unit = 0.02 * side
            groups.append(("silhouette", _signed_fields(source.subject_mask, unit),
                           _signed_fields(exemplar.subject_mask, unit)))
    elif source.task == "face":
        sigma = 0.1 * max(_face_width(source), _face_width(exemplar), 0.1)
        groups.append(("parts", _part_fields(source.parts, sigma), _part_fields(exemplar.parts, sigma)))
        groups.append(("edges", _edge_fields(source.label[0].numpy(), side),
                       _edge_fields(exemplar.label[0].numpy(), side)))
        if source.subject_mask is not None and exemplar.subject_mask is not None:
            unit = sigma * side
            groups.append(("silhouette", _signed_fields(source.subject_mask, unit),
                           _signed_fields(exemplar.subject_mask, unit)))
    elif source.task == "mask":
        src_idx, ex_idx = _index(source), _index(exemplar)
        classes = shared_classes(src_idx, ex_idx)
        if classes:
            groups.append(("classes", _class_fields(src_idx, classes, side), _class_fields(ex_idx, classes, side)))
    else:
        raise ValueError(f"unknown task {source.task!r}")
    anchor = map_grid(exemplar, source)
    grid = np.stack(np.meshgrid(np.arange(wd, dtype=np.float32), np.arange(h, dtype=np.float32)))
    groups.append(("coords", _fourier(grid, side), _fourier(anchor, side)))

    src, ex, counts = [], [], {}
    for name, a, b in groups:
        src.append(a * w[name])
        ex.append(b * w[name])
        counts[name] = a.shape[0]
    src_t = torch.from_numpy(np.concatenate(src).astype(np.float32)).unsqueeze(0)
    ex_t = torch.from_numpy(np.concatenate(ex).astype(np.float32)).unsqueeze(0)
    return DescriptorPair(src_t, ex_t, counts, anchor, map_grid(source, exemplar))


def descriptor_pyramid(descriptors: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """(B, C, H, W) -> ``levels`` unit-length maps, coarsest first (level i: H / 2**(levels-1-i))."""
    out = [descriptors]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2))
    return [normalize_features(x, eps=1e-6) for x in reversed(out)]


# -- per-group fields (numpy, (G, H, W) float32) -------------------------------------------------

def _part_fields(parts: np.ndarray | None, sigma: float) -> np.ndarray:
    """Condition parts (1 on the part, falling linearly) -> exp(-distance / sigma), sigma in image sides."""
    if parts is None:
        raise ValueError("this condition has no part maps")
    distance = (1.0 - np.asarray(parts, np.float32)) * DIST_RANGE
    return np.exp(-distance / sigma).astype(np.float32)


def _signed_fields(mask: np.ndarray, unit: float) -> np.ndarray:
    """Signed distance to a region's boundary (positive inside), squashed at ``unit`` and 4 ``unit`` pixels."""
    m = np.asarray(mask, np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5)
    signed = inside - outside
    return np.stack([np.tanh(signed / unit), np.tanh(signed / (4 * unit))]).astype(np.float32)


def _edge_fields(edges: np.ndarray, side: float) -> np.ndarray:
    """Edge density at two scales (1% and 3% of the side), each scaled to [0, 1]."""
    e = (np.asarray(edges, np.float32) > 0.5).astype(np.float32)
    out = []
    for s in (0.01, 0.03):
        b = cv2.GaussianBlur(e, (0, 0), s * side)
        out.append(b / max(float(b.max()), 1e-6))
    return np.stack(out)


def _class_fields(index: np.ndarray, classes: list[int], side: float) -> np.ndarray:
    """Per class: one-hot blurred at 1% of the side, at 8%, and the signed boundary distance (scaled 5%)."""
    out = []
    for k in classes:
        m = (index == k).astype(np.float32)
        out.append(cv2.GaussianBlur(m, (0, 0), 0.01 * side))
        out.append(cv2.GaussianBlur(m, (0, 0), 0.08 * side))
        out.append(_signed_fields(m > 0.5, 0.05 * side)[0] * 0.5 + 0.5)
    return np.stack(out) / np.sqrt(3)


def _fourier(xy: np.ndarray, side: float) -> np.ndarray:
    """(2, H, W) pixel coordinates -> sin/cos features, unit norm per pixel."""
    feats = []
    for f in FREQUENCIES:
        phase = 2 * np.pi * f * xy / side
        feats += [np.cos(phase[0]), np.sin(phase[0]), np.cos(phase[1]), np.sin(phase[1])]
    return (np.stack(feats) / np.sqrt(2 * len(FREQUENCIES))).astype(np.float32)


# -- masks --------------------------------------------------------------------------------------

def _index(cond: Condition) -> np.ndarray:
    return cond.label.argmax(0).numpy().astype(np.int32)


def shared_classes(a: np.ndarray, b: np.ndarray, limit: int = MAX_MASK_CLASSES) -> list[int]:
    """Classes present on both index maps, largest (by the smaller of the two areas) first."""
    ca = np.bincount(a.ravel(), minlength=256)
    cb = np.bincount(b.ravel(), minlength=256)
    both = np.minimum(ca / a.size, cb / b.size)
    order = [int(k) for k in np.argsort(-both) if both[k] > 0.001]
    return order[:limit]


# -- the coordinate prior ------------------------------------------------------------------------

def _has_silhouette(cond: Condition) -> bool:
    """True when the subject mask is a segmentation, not just the drawn skeleton."""
    m = cond.subject_mask
    return m is not None and cond.image is not None and not np.array_equal(m, cond.preview.any(axis=2))


def _face_width(cond: Condition) -> float:
    kp = cond.keypoints
    if kp is None or not (kp[:17, 2] > 0).any():
        return 0.0
    jaw = kp[:17][kp[:17, 2] > 0]
    return float(np.ptp(jaw[:, 0])) / max(cond.size)


def matched_points(a: Condition, b: Condition) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (x, y) present in both conditions: (N, 2) in ``a``, (N, 2) in ``b``."""
    if a.keypoints is None or b.keypoints is None:
        return np.zeros((0, 2)), np.zeros((0, 2))
    ka, kb = np.asarray(a.keypoints), np.asarray(b.keypoints)
    both = (ka[:, 2] > 0) & (kb[:, 2] > 0)
    return ka[both, :2].astype(np.float64), kb[both, :2].astype(np.float64)


def fit_mapping(src_pts: np.ndarray, dst_pts: np.ndarray):
    """A callable (N, 2) -> (N, 2) through matched points: thin-plate spline with 4+ spread points,
    else a similarity/translation; None with no points."""
    n = len(src_pts)
    if n == 0:
        return None
    if n >= 4 and np.linalg.matrix_rank(src_pts - src_pts.mean(0), tol=1.0) == 2:
        tps = ThinPlateSplineTransform.from_estimate(src_pts, dst_pts)
        if tps:
            return tps
    if n >= 2:
        s_c, d_c = src_pts.mean(0), dst_pts.mean(0)
        scale = np.sqrt(((dst_pts - d_c) ** 2).sum() / max(((src_pts - s_c) ** 2).sum(), 1e-6))
        return lambda p: (p - s_c) * scale + d_c
    return lambda p: p - src_pts[0] + dst_pts[0]


def _mask_points(cond: Condition) -> dict[int, np.ndarray]:
    """Per class: centroid (x, y) and the class's spread along x and y (for a moment alignment)."""
    idx = _index(cond)
    out = {}
    for k in np.unique(idx):
        ys, xs = np.nonzero(idx == k)
        if len(xs) > 0.001 * idx.size:
            out[int(k)] = np.array([xs.mean(), ys.mean(), xs.std() + 1, ys.std() + 1])
    return out


def point_mapping(origin: Condition, target: Condition):
    """A callable (N, 2) -> (N, 2) taking (x, y) pixels of ``origin`` to ``target``: a thin-plate spline
    through matched keypoints (pose, face), an affine through shared classes' centroids (masks,
    3+ classes) or a moment alignment of the largest shared class. None when nothing matches."""
    if origin.task != "mask":
        return fit_mapping(*matched_points(origin, target))
    a, b = _mask_points(origin), _mask_points(target)
    shared = [k for k in a if k in b and k != 0] or [k for k in a if k in b]
    if len(shared) >= 3:
        affine = cv2.estimateAffine2D(np.array([a[k][:2] for k in shared]), np.array([b[k][:2] for k in shared]))[0]
        if affine is not None:
            return lambda p: p @ affine[:, :2].T + affine[:, 2]
    if shared:
        k = max(shared, key=lambda c: min(a[c][2] * a[c][3], b[c][2] * b[c][3]))
        sa, sb = a[k], b[k]
        return lambda p: (p - sa[:2]) * (sb[2:] / sa[2:]) + sb[:2]
    return None


def map_grid(origin: Condition, target: Condition) -> np.ndarray:
    """(2, H, W): every pixel of ``origin`` as (x, y) in ``target`` (identity when nothing matches)."""
    h, w = origin.size
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1).reshape(-1, 2)
    mapping = point_mapping(origin, target)
    if mapping is None:
        return grid.T.reshape(2, h, w).astype(np.float32)
    mapped = np.asarray(mapping(grid), np.float64)
    mapped = np.nan_to_num(mapped, nan=0.0).clip(-2 * max(h, w), 3 * max(h, w))
    return mapped.T.reshape(2, h, w).astype(np.float32)
