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
PRIOR_RADIUS = 0.05  # the keypoint prior is trusted within about this fraction of the side of a matched point
PRIOR_SMOOTH = 0.3  # thin-plate smoothing of the keypoint prior (detections are noisy by a pixel or two)
GROUP_WEIGHTS = {"parts": 1.0, "edges": 0.6, "silhouette": 0.8, "classes": 1.0, "coords": 0.5}


@dataclass
class DescriptorPair:
    """Descriptors of the source condition and of the exemplar, channel for channel, at one size."""

    source: torch.Tensor  # (1, C, h, w)
    exemplar: torch.Tensor  # (1, C, h, w)
    groups: dict[str, int]  # channel count per group, in order
    anchor: np.ndarray  # (2, h, w) float32: exemplar pixel -> (x, y) in source pixels
    prior: np.ndarray  # (2, h, w) float32: source pixel -> (x, y) in exemplar pixels (the same prior, inverted)
    reliability: np.ndarray  # (h, w) float32 in [0, 1]: how sure the prior is (near matched keypoints)


@dataclass
class _View:
    """What the descriptors read from a condition, resampled to the working size."""

    task: str
    size: tuple[int, int]
    parts: np.ndarray | None  # (P, h, w) float32
    mask: np.ndarray | None  # (h, w) bool
    silhouette: bool  # the mask is a segmentation (not the drawn skeleton)
    edges: np.ndarray | None  # (h, w) float32 (face)
    index: np.ndarray | None  # (h, w) int32 class indices (mask)
    keypoints: np.ndarray | None  # (N, 3) in working pixels


def _view(cond: Condition, size: tuple[int, int]) -> _View:
    h, w = size
    sy, sx = h / cond.size[0], w / cond.size[1]

    def area(a: np.ndarray) -> np.ndarray:  # (C, H, W) -> (C, h, w)
        if a.shape[-2:] == (h, w):
            return a.astype(np.float32)
        hwc = np.ascontiguousarray(np.moveaxis(a.astype(np.float32), 0, -1))
        out = cv2.resize(hwc, (w, h), interpolation=cv2.INTER_AREA)
        return np.moveaxis(out.reshape(h, w, -1), -1, 0)

    kp = None
    if cond.keypoints is not None:
        kp = np.asarray(cond.keypoints, np.float64).copy()
        kp[:, 0] *= sx
        kp[:, 1] *= sy
    index = None
    if cond.task == "mask":  # the classes present, nearest-neighbour pick (as cv2.INTER_NEAREST), argmax
        present = torch.nonzero(cond.label.flatten(1).amax(1) > 0).flatten()
        rows = (torch.arange(h) * cond.size[0] // h).clamp_max(cond.size[0] - 1)
        cols = (torch.arange(w) * cond.size[1] // w).clamp_max(cond.size[1] - 1)
        picked = cond.label[present][:, rows][:, :, cols]
        index = present[picked.argmax(0)].numpy().astype(np.int32) if len(present) else np.zeros((h, w), np.int32)
    return _View(
        task=cond.task, size=(h, w),
        parts=area(np.asarray(cond.parts)) if cond.parts is not None and cond.task != "mask" else None,
        mask=area(np.asarray(cond.subject_mask)[None])[0] > 0.5 if cond.subject_mask is not None else None,
        silhouette=_has_silhouette(cond),
        edges=area((cond.label[:1].numpy() > 0.5).astype(np.float32))[0] if cond.task == "face" else None,
        index=index, keypoints=kp)


def describe_pair(source: Condition, exemplar: Condition, size: tuple[int, int] | None = None,
                  weights: dict[str, float] | None = None) -> DescriptorPair:
    """Descriptors (1, C, h, w) of both conditions at ``size`` (default: theirs), weighted by group."""
    if source.size != exemplar.size:
        raise ValueError(f"conditions differ in size: {source.size} vs {exemplar.size}")
    if source.task != exemplar.task:
        raise ValueError(f"conditions differ in task: {source.task} vs {exemplar.task}")
    size = tuple(size) if size is not None else source.size
    a, b = _view(source, size), _view(exemplar, size)
    w = {**GROUP_WEIGHTS, **(weights or {})}
    h, wd = size
    side = max(h, wd)
    groups: list[tuple[str, np.ndarray, np.ndarray]] = []
    if a.task == "pose":
        groups.append(("parts", _part_fields(a.parts, 0.04), _part_fields(b.parts, 0.04)))
        if a.silhouette and b.silhouette:
            unit = 0.02 * side
            groups.append(("silhouette", _signed_fields(a.mask, unit), _signed_fields(b.mask, unit)))
    elif a.task == "face":
        sigma = 0.1 * max(_face_width(a), _face_width(b), 0.1)
        groups.append(("parts", _part_fields(a.parts, sigma), _part_fields(b.parts, sigma)))
        groups.append(("edges", _edge_fields(a.edges, side), _edge_fields(b.edges, side)))
        if a.mask is not None and b.mask is not None:
            unit = sigma * side
            groups.append(("silhouette", _signed_fields(a.mask, unit), _signed_fields(b.mask, unit)))
    elif a.task == "mask":
        classes = shared_classes(a.index, b.index)
        if classes:
            groups.append(("classes", _class_fields(a.index, classes, side), _class_fields(b.index, classes, side)))
    else:
        raise ValueError(f"unknown task {a.task!r}")
    anchor = map_grid(b, a, PRIOR_SMOOTH, step=4)
    grid = np.stack(np.meshgrid(np.arange(wd, dtype=np.float32), np.arange(h, dtype=np.float32)))
    groups.append(("coords", _fourier(grid, side), _fourier(anchor, side)))

    src, ex, counts = [], [], {}
    for name, fa, fb in groups:
        src.append(fa * w[name])
        ex.append(fb * w[name])
        counts[name] = fa.shape[0]
    src_t = torch.from_numpy(np.concatenate(src).astype(np.float32)).unsqueeze(0)
    ex_t = torch.from_numpy(np.concatenate(ex).astype(np.float32)).unsqueeze(0)
    return DescriptorPair(src_t, ex_t, counts, anchor, map_grid(a, b, PRIOR_SMOOTH, step=4), prior_reliability(a, b))


def descriptor_pyramid(descriptors: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """(B, C, H, W) -> ``levels`` unit-length maps, coarsest first (level i: H / 2**(levels-1-i))."""
    out = [descriptors]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2))
    return [normalize_features(x, eps=1e-6) for x in reversed(out)]


def compress(source: torch.Tensor, exemplar: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Project both sides' descriptors (B, C, h, w) on their joint top principal directions (no
    centring, so dot products are kept): matching cost grows with the channel count."""
    if source.shape[1] <= channels:
        return source, exemplar
    x = torch.cat([source, exemplar], -1).transpose(0, 1).flatten(1)  # (C, B * h * 2w)
    _, vectors = torch.linalg.eigh(x @ x.T)  # ascending eigenvalues
    basis = vectors[:, -channels:].flip(1)  # (C, channels)
    return (torch.einsum("bchw,ck->bkhw", source, basis).contiguous(),
            torch.einsum("bchw,ck->bkhw", exemplar, basis).contiguous())


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
    e = np.asarray(edges, np.float32)
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


def _face_width(view: _View) -> float:
    """The jaw's width as a fraction of the longer side (0 without landmarks)."""
    kp = view.keypoints
    if kp is None or not (kp[:17, 2] > 0).any():
        return 0.0
    jaw = kp[:17][kp[:17, 2] > 0]
    return float(np.ptp(jaw[:, 0])) / max(view.size)


def matched_points(a: Condition | _View, b: Condition | _View) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (x, y) present in both conditions: (N, 2) in ``a``, (N, 2) in ``b``."""
    if a.keypoints is None or b.keypoints is None:
        return np.zeros((0, 2)), np.zeros((0, 2))
    ka, kb = np.asarray(a.keypoints), np.asarray(b.keypoints)
    both = (ka[:, 2] > 0) & (kb[:, 2] > 0)
    return ka[both, :2].astype(np.float64), kb[both, :2].astype(np.float64)


class SmoothThinPlateSpline:
    """Thin-plate spline with a smoothing term (Wahba): ``smooth`` > 0 trades exact interpolation of
    noisy keypoints for a less wrinkled map. Coordinates are scaled to unit spread for conditioning."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, smooth: float):
        self.center, self.scale = src.mean(0), max(float(src.std()), 1e-6)
        self.points = (src - self.center) / self.scale
        n = len(src)
        lhs = np.zeros((n + 3, n + 3))
        lhs[:n, :n] = self._kernel(self.points, self.points) + smooth * np.eye(n)
        lhs[:n, n] = lhs[n, :n] = 1
        lhs[:n, n + 1:] = self.points
        lhs[n + 1:, :n] = self.points.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = dst
        self.coef = np.linalg.lstsq(lhs, rhs, rcond=None)[0]

    @staticmethod
    def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        r2 = np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T, 0.0)
        return np.where(r2 > 1e-12, r2 * np.log(np.maximum(r2, 1e-20)) / 2, 0.0)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        p = (np.asarray(pts, np.float64) - self.center) / self.scale
        n = len(self.points)
        out = np.empty((len(p), 2))
        for s in range(0, len(p), 65536):  # bounded memory: (chunk, N) kernel at a time
            q = p[s:s + 65536]
            out[s:s + 65536] = (self._kernel(q, self.points) @ self.coef[:n] + self.coef[n]
                                + q @ self.coef[n + 1:])
        return out


def fit_mapping(src_pts: np.ndarray, dst_pts: np.ndarray, smooth: float = 0.0):
    """A callable (N, 2) -> (N, 2) through matched points: thin-plate spline with 4+ spread points
    (exact, scikit-image's, when ``smooth`` is 0), else a similarity/translation; None with no points."""
    n = len(src_pts)
    if n == 0:
        return None
    if n >= 4 and np.linalg.matrix_rank(src_pts - src_pts.mean(0), tol=1.0) == 2:
        if smooth > 0:
            return SmoothThinPlateSpline(src_pts, dst_pts, smooth)
        tps = ThinPlateSplineTransform.from_estimate(src_pts, dst_pts)
        if tps:
            return tps
    if n >= 2:
        s_c, d_c = src_pts.mean(0), dst_pts.mean(0)
        scale = np.sqrt(((dst_pts - d_c) ** 2).sum() / max(((src_pts - s_c) ** 2).sum(), 1e-6))
        return lambda p: (p - s_c) * scale + d_c
    return lambda p: p - src_pts[0] + dst_pts[0]


def _mask_points(view: _View) -> dict[int, np.ndarray]:
    """Per class: centroid (x, y) and the class's spread along x and y (for a moment alignment)."""
    idx = view.index
    out = {}
    for k in np.unique(idx):
        ys, xs = np.nonzero(idx == k)
        if len(xs) > 0.001 * idx.size:
            out[int(k)] = np.array([xs.mean(), ys.mean(), xs.std() + 1, ys.std() + 1])
    return out


def point_mapping(origin: Condition | _View, target: Condition | _View, smooth: float = 0.0):
    """A callable (N, 2) -> (N, 2) taking (x, y) pixels of ``origin`` to ``target``: a thin-plate spline
    through matched keypoints (pose, face), an affine through shared classes' centroids (masks,
    3+ classes) or a moment alignment of the largest shared class. None when nothing matches."""
    if origin.task != "mask":
        return fit_mapping(*matched_points(origin, target), smooth=smooth)
    if isinstance(origin, Condition):
        origin, target = _view(origin, origin.size), _view(target, target.size)
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


def prior_reliability(source: Condition | _View, exemplar: Condition | _View) -> np.ndarray:
    """(h, w) in [0, 1]: exp(-(d / r)^2), d the distance to the nearest keypoint matched on both sides,
    r = ``PRIOR_RADIUS`` of the side. Dense landmarks (faces) make the prior sure everywhere between them."""
    h, w = source.size
    points = matched_points(source, exemplar)[0]
    if not len(points):
        return np.zeros((h, w), np.float32)
    marks = np.full((h, w), 255, np.uint8)
    xy = np.round(points).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    marks[xy[inside, 1], xy[inside, 0]] = 0
    if not inside.any():
        return np.zeros((h, w), np.float32)
    d = cv2.distanceTransform(marks, cv2.DIST_L2, 5) / (PRIOR_RADIUS * max(h, w))
    return np.exp(-(d**2)).astype(np.float32)


def map_grid(origin: Condition | _View, target: Condition | _View, smooth: float = 0.0, step: int = 1) -> np.ndarray:
    """(2, H, W): every pixel of ``origin`` as (x, y) in ``target`` (identity when nothing matches).
    With ``step`` > 1 the mapping is evaluated every ``step`` pixels and interpolated (it is smooth)."""
    h, w = origin.size
    xs, ys = np.arange(0, w + step - 1, step, dtype=np.float64), np.arange(0, h + step - 1, step, dtype=np.float64)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    mapping = point_mapping(origin, target, smooth)
    mapped = grid if mapping is None else np.asarray(mapping(grid), np.float64)
    mapped = np.nan_to_num(mapped, nan=0.0).clip(-2 * max(h, w), 3 * max(h, w))
    mapped = mapped.reshape(len(ys), len(xs), 2).astype(np.float32)
    if step > 1:  # lattice point i sits at pixel i * step: scale so that pixel p maps to lattice p / step
        affine = np.array([[1 / step, 0, 0], [0, 1 / step, 0]], np.float32)
        mapped = cv2.warpAffine(mapped, affine, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(mapped.transpose(2, 0, 1))
