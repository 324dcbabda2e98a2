"""Fold-overs: where a map from output pixels to exemplar pixels turns the picture inside out.

The one definition, used by engine v2's repair (``unfold`` and its report) and by ``eval-warp``'s
figure (``core.metrics.fold_fraction`` is this function):

- The map is read between pixel centres as the bilinear interpolation of its positions. On a grid
  cell (four neighbouring pixels) that interpolation keeps its orientation everywhere exactly when
  its Jacobian determinant is positive at the cell's four corners (the determinant of a bilinear
  map is affine in the cell's coordinates), each corner's determinant being the cross product of
  the cell's two edges there. A cell **folds** when the smallest of the four is <= 0: the exemplar
  is shown mirrored or twice there. (One forward difference per cell, or central differences per
  pixel, miss folds one pixel wide.)
- Only cells that are one piece of one smooth map are counted: all four corners ``used`` (the
  output samples the map there, not a fill) and, when the map has ``pieces``, in one piece. A
  quilted texture is a piecewise translation: the seam between two copied tiles (or between two
  classes of a mask) is a jump of the map by design, not an orientation reversal, so a cell across
  it is a seam, not a fold; inside a tile the map is a translation and cannot fold.

``unfold`` smooths the map locally where it folds, with a growing radius, until none is left; as a
last resort those pixels take the fallback map (a similarity, which cannot fold).
"""

from __future__ import annotations

import cv2
import numpy as np


def _corners(positions: np.ndarray) -> list[np.ndarray]:
    """The four corner determinants of every cell (top-left, top-right, bottom-left, bottom-right)."""
    p = np.asarray(positions)
    p = p if p.dtype in (np.float32, np.float64) else p.astype(np.float64)
    # One difference per pair of neighbours, on each coordinate's own contiguous plane: the top edge of
    # a cell is the bottom edge of the one above, the left edge of a cell the right edge of the one before.
    row, col = np.ascontiguousarray(p[..., 0]), np.ascontiguousarray(p[..., 1])
    across_r, across_c = row[:, 1:] - row[:, :-1], col[:, 1:] - col[:, :-1]  # (H, W-1): d/d(output col)
    down_r, down_c = row[1:] - row[:-1], col[1:] - col[:-1]  # (H-1, W): d/d(output row)

    def det(down: slice, across: slice) -> np.ndarray:  # down: the cell's left or right edge; across: top or bottom
        return down_r[:, down] * across_c[across] - across_r[across] * down_c[:, down]

    left, right, top, bottom = slice(None, -1), slice(1, None), slice(None, -1), slice(1, None)
    return [det(left, top), det(right, top), det(left, bottom), det(right, bottom)]


def corner_determinants(positions: np.ndarray) -> np.ndarray:
    """(H-1, W-1, 4) Jacobian determinants of the map's bilinear interpolation at each grid cell's
    four corners (top-left, top-right, bottom-left, bottom-right). ``positions`` (H, W, 2) is (row, col)
    in the exemplar for each output pixel: the identity gives 1, a mirror -1."""
    return np.stack(_corners(positions), axis=-1)


def jacobian_determinant(positions: np.ndarray) -> np.ndarray:
    """(H-1, W-1): each cell's smallest corner determinant (<= 0: the cell folds)."""
    a, b, c, d = _corners(positions)
    return np.minimum(np.minimum(a, b, out=a), np.minimum(c, d, out=c), out=a)


def counted_cells(shape: tuple[int, int], used: np.ndarray | None = None,
                  pieces: np.ndarray | None = None) -> np.ndarray:
    """(H-1, W-1) bool: the cells a fold can be measured on: four corners ``used`` (H, W) bool (None:
    all) and in one of the map's ``pieces`` (H, W) int labels (None: one piece)."""
    h, w = shape
    cells = np.ones((h - 1, w - 1), bool)
    for grid in (used, pieces):
        if grid is None:
            continue
        g = np.asarray(grid)
        corners = (g[:-1, :-1], g[:-1, 1:], g[1:, :-1], g[1:, 1:])
        if g.dtype == bool:
            cells &= corners[0] & corners[1] & corners[2] & corners[3]
        else:
            cells &= (corners[0] == corners[1]) & (corners[0] == corners[2]) & (corners[0] == corners[3])
    return cells


def folded_cells(positions: np.ndarray, used: np.ndarray | None = None, pieces: np.ndarray | None = None,
                 threshold: float = 0.0) -> np.ndarray:
    """(H-1, W-1) bool: counted cells (see ``counted_cells``) whose smallest corner determinant is
    <= ``threshold``."""
    return (jacobian_determinant(positions) <= threshold) & counted_cells(positions.shape[:2], used, pieces)


def fold_fraction(positions: np.ndarray, used: np.ndarray | None = None, pieces: np.ndarray | None = None,
                  det: np.ndarray | None = None) -> float:
    """The fold-over fraction: folded cells over counted cells (0 when none is counted). ``det``: the
    map's ``jacobian_determinant`` when the caller has it already (measured over several masks)."""
    cells = counted_cells(positions.shape[:2], used, pieces)
    if not cells.any():
        return 0.0
    det = jacobian_determinant(positions) if det is None else det
    return float((det[cells] <= 0).sum() / cells.sum())


def cells_to_pixels(cells: np.ndarray) -> np.ndarray:
    """(H-1, W-1) bool cells -> (H, W) bool: the pixels at their corners."""
    h, w = cells.shape[0] + 1, cells.shape[1] + 1
    out = np.zeros((h, w), bool)
    out[:-1, :-1] |= cells
    out[:-1, 1:] |= cells
    out[1:, :-1] |= cells
    out[1:, 1:] |= cells
    return out


def _smooth_within(box: np.ndarray, pieces: np.ndarray, which: np.ndarray, sigma: float) -> np.ndarray:
    """``box`` (h, w, 2) blurred inside each of the pieces ``which`` on its own (a normalised Gaussian:
    no position is averaged with another piece's, which would land between two places); elsewhere as it is."""
    out = box.copy()
    for piece in which:
        inside = (pieces == piece).astype(np.float32)
        weight = cv2.GaussianBlur(inside, (0, 0), sigma)
        blurred = cv2.GaussianBlur(box * inside[..., None], (0, 0), sigma) / np.maximum(weight, 1e-6)[..., None]
        out[inside > 0] = blurred[inside > 0]
    return out


def unfold(positions: np.ndarray, fallback: np.ndarray, used: np.ndarray | None = None,
           keep: np.ndarray | None = None, rounds: int = 5, pieces: np.ndarray | None = None
           ) -> tuple[np.ndarray, float]:
    """Smooth ``positions`` (H, W, 2) where they fold; returns the fixed map and the fold-over fraction
    before (``fold_fraction`` over ``used`` and ``pieces``). ``fallback`` (H, W, 2) is taken where
    smoothing cannot fix it. ``keep`` (H, W) bool: pixels never changed (a chart that is exact by
    construction, e.g. the face mesh or a quilted texture: smoothing next to it must not move it)."""
    used = np.ones(positions.shape[:2], bool) if used is None else used
    free = np.ones(positions.shape[:2], np.float32) if keep is None else (~keep).astype(np.float32)
    det = jacobian_determinant(positions)
    before = fold_fraction(positions, used, pieces, det)
    if before == 0.0:
        return positions, before
    counted = counted_cells(positions.shape[:2], used, pieces)
    scale = float(np.median(np.abs(det[counted])))
    bad = cells_to_pixels((det <= 0) & counted) & (free > 0)
    if not bad.any():  # every fold is between kept pixels: nothing may move
        return positions, before
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
        smooth = cv2.GaussianBlur(box, (0, 0), sigma) if pieces is None else \
            _smooth_within(box, pieces[r0:r1, c0:c1], np.unique(pieces[rows, cols]), sigma)
        blend = (cv2.GaussianBlur(area.astype(np.float32), (0, 0), sigma / 2) * free[r0:r1, c0:c1])[..., None]
        out[r0:r1, c0:c1] = box * (1 - blend) + smooth * blend
        bad = cells_to_pixels(folded_cells(out, used, pieces, 0.01 * scale)) & (free > 0)
        if not bad.any():
            return out, before
    area = (cv2.dilate(bad.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & (free > 0)
    out[area] = fallback[area]
    return out, before
