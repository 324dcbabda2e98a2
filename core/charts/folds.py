"""Fold-overs: where a map from output pixels to exemplar pixels turns the picture inside out.

A map folds where its Jacobian determinant is not positive (neighbouring output pixels swap
order in the exemplar: the exemplar is shown mirrored or twice there). ``unfold`` smooths the map
locally where it folds, with a growing radius, until none is left; as a last resort those pixels
take the fallback map (a similarity, which cannot fold).
"""

from __future__ import annotations

import cv2
import numpy as np


def jacobian_det(positions: np.ndarray) -> np.ndarray:
    """(H, W) determinant of d(row, col)_exemplar / d(row, col)_output, by central differences."""
    r, c = positions[..., 0], positions[..., 1]
    r_y, r_x = np.gradient(r)
    c_y, c_x = np.gradient(c)
    return r_y * c_x - r_x * c_y


def fold_fraction(positions: np.ndarray, used: np.ndarray | None = None) -> float:
    """Fraction of the ``used`` output pixels (all by default) where the map folds (det <= 0)."""
    det = jacobian_det(positions)
    mask = np.ones(det.shape, bool) if used is None else used
    return float((det[mask] <= 0).mean()) if mask.any() else 0.0


def unfold(positions: np.ndarray, fallback: np.ndarray, used: np.ndarray | None = None,
           keep: np.ndarray | None = None, rounds: int = 5) -> tuple[np.ndarray, float]:
    """Smooth ``positions`` (H, W, 2) where they fold; returns the fixed map and the fraction of
    used pixels that folded before. ``fallback`` (H, W, 2) is taken where smoothing cannot fix it.
    ``keep`` (H, W) bool: pixels never changed (a chart that is exact by construction, e.g. the face
    mesh: smoothing the surround next to it must not move the eyes)."""
    used = np.ones(positions.shape[:2], bool) if used is None else used
    free = np.ones(positions.shape[:2], np.float32) if keep is None else (~keep).astype(np.float32)
    det = jacobian_det(positions)
    bad = (det <= 0) & used
    before = float(bad[used].mean()) if used.any() else 0.0
    if not bad.any():
        return positions, before
    scale = float(np.median(np.abs(det[used]))) if used.any() else 1.0
    out = positions.astype(np.float32, copy=True)
    for k in range(rounds):
        sigma = 1.5 * 2 ** k
        grow = int(2 * sigma + 1)
        rows, cols = np.nonzero(bad)
        # Work on the folds' bounding box (with room for the blur) only.
        pad = grow + int(3 * sigma) + 1
        r0, r1 = max(0, rows.min() - pad), min(out.shape[0], rows.max() + pad + 1)
        c0, c1 = max(0, cols.min() - pad), min(out.shape[1], cols.max() + pad + 1)
        box = out[r0:r1, c0:c1]
        area = cv2.dilate(bad[r0:r1, c0:c1].astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        smooth = cv2.GaussianBlur(box, (0, 0), sigma)
        blend = (cv2.GaussianBlur(area.astype(np.float32), (0, 0), sigma / 2) * free[r0:r1, c0:c1])[..., None]
        out[r0:r1, c0:c1] = box * (1 - blend) + smooth * blend
        bad = (jacobian_det(out) <= 0.01 * scale) & used & (free > 0)
        if not bad.any():
            return out, before
    area = (cv2.dilate(bad.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & (free > 0)
    out[area] = fallback[area]
    return out, before
