"""The map around the charts: a smooth, fold-free continuation anchored on the chart (the face), the
person's silhouette on both sides and the frame.

    positions = S(x) + d(x)

``S`` is the similarity that best maps the chart's points (the face mesh) onto the exemplar's; ``d``
is a harmonic (membrane) displacement on a coarse grid: equal to the chart's own residual inside
the chart, pulled to the exemplar's silhouette on the input's silhouette contour (each contour
point snaps to the nearest exemplar contour point, smoothed along the contour), and fading to 0
far from both (a weak pull to ``S``). The frame edges are not silhouette (a person cut by the frame
is not snapped to it). One sparse solve at 1/4 of the output size, then bilinear interpolation:
the displacement is smooth by construction, and the chart itself is evaluated at full resolution.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

GRID_STEP = 4  # output pixels per coarse cell
CHART_WEIGHT = 1e3  # the chart's residual is (nearly) a hard constraint
CONTOUR_WEIGHT = 0.5  # silhouette snapping is a soft one
FRAME_WEIGHT = 0.2  # the output's frame is pulled inside the exemplar's where the similarity leaves it
DECAY = 2e-4  # pull to the similarity far from every constraint


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) rotation + uniform scale + translation taking ``src`` (N, 2) x, y closest to ``dst``
    (least squares, no reflection: Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ flip @ vt
    scale = float(np.trace(np.diag(sig) @ flip) / max(a.var(0).sum(), 1e-12))
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - m[:, :2] @ ms
    return m


def apply_affine(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) float32 (row, col) = ``m`` (2, 3, on x, y) applied to every pixel of ``size``."""
    h, w = size
    xs, ys = np.arange(w, dtype=np.float32)[None], np.arange(h, dtype=np.float32)[:, None]
    out = np.empty((h, w, 2), np.float32)
    out[..., 1] = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]  # the same float32 sums as on a full grid
    out[..., 0] = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return out


def contour_cells(mask: np.ndarray, margin: int = 1) -> np.ndarray:
    """(H, W) bool: the mask's boundary pixels, leaving out those on the frame (not a silhouette edge)."""
    m = mask.astype(np.uint8)
    edge = (m > 0) & (cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) == 0)
    edge[:margin + 1] = edge[-margin - 1:] = False
    edge[:, :margin + 1] = edge[:, -margin - 1:] = False
    return edge


def surround_map(size: tuple[int, int], similarity: np.ndarray, chart_positions: np.ndarray,
                 chart_defined: np.ndarray, source_person: np.ndarray | None, exemplar_person: np.ndarray | None,
                 reach: float, frame_weight: float = FRAME_WEIGHT) -> np.ndarray:
    """(H, W, 2) float32 (row, col) in exemplar pixels for every output pixel (see the module doc).

    ``similarity`` (2, 3) maps output x, y to exemplar x, y; ``chart_*`` at the output size;
    ``source_person`` (H, W) and ``exemplar_person`` (h, w) bool silhouettes (None: no snapping);
    ``reach``: the farthest (exemplar pixels) a contour point may snap; ``frame_weight``: the pull of the
    output's frame into the exemplar's (0: none).
    """
    h, w = size
    gh, gw = max(8, round(h / GRID_STEP)), max(8, round(w / GRID_STEP))
    base = apply_affine(similarity, size)
    # Chart residual on the grid: the mean over the chart's pixels of every cell it mostly covers, so
    # the surround meets the chart right at its edge (the jaw line stays where the chart put it).
    cover = cv2.resize(chart_defined.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    inside = cover > 0.4
    residual = cv2.resize(np.where(chart_defined[..., None], chart_positions - base, 0).astype(np.float32),
                          (gw, gh), interpolation=cv2.INTER_AREA) / np.maximum(cover, 1e-6)[..., None]
    target = np.zeros((gh, gw, 2), np.float32)
    weight = np.zeros((gh, gw), np.float32)
    target[inside], weight[inside] = residual[inside], CHART_WEIGHT
    if exemplar_person is not None and frame_weight > 0:
        frame, pull = _frame_pull(similarity, (gh, gw), size, exemplar_person.shape)
        target[frame], weight[frame] = pull[frame], frame_weight
    if source_person is not None and exemplar_person is not None and exemplar_person.any():
        snapped, ok = _snap_contour(similarity, source_person, exemplar_person, (gh, gw), size, reach)
        ok &= ~inside
        target[ok], weight[ok] = snapped[ok], CONTOUR_WEIGHT
    d = _membrane(target, weight)
    d_full = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
    return base + d_full


def _frame_pull(similarity: np.ndarray, grid: tuple[int, int], size: tuple[int, int],
                ex_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Grid cells on the output's frame that the similarity sends outside the exemplar's frame, and the
    displacement (row, col) bringing them back to its nearest point inside: where the output shows more
    than the exemplar, the surroundings stretch to the exemplar's frame instead of leaving it."""
    gh, gw = grid
    h, w = size
    rows, cols = np.mgrid[0:gh, 0:gw]
    border = (rows == 0) | (rows == gh - 1) | (cols == 0) | (cols == gw - 1)
    ys = (rows + 0.5) * h / gh - 0.5
    xs = (cols + 0.5) * w / gw - 0.5
    px = similarity[0, 0] * xs + similarity[0, 1] * ys + similarity[0, 2]
    py = similarity[1, 0] * xs + similarity[1, 1] * ys + similarity[1, 2]
    eh, ew = ex_size
    pull = np.stack([np.clip(py, 0, eh - 1) - py, np.clip(px, 0, ew - 1) - px], axis=-1).astype(np.float32)
    return border & (np.abs(pull).sum(-1) > 0.5), pull


def _snap_contour(similarity: np.ndarray, source_person: np.ndarray, exemplar_person: np.ndarray,
                  grid: tuple[int, int], size: tuple[int, int], reach: float) -> tuple[np.ndarray, np.ndarray]:
    """For the input's silhouette contour cells on the grid: the displacement (row, col) that takes
    S(cell) to the nearest exemplar contour point, smoothed along the contour; and which cells have one."""
    gh, gw = grid
    h, w = size
    coarse = cv2.resize(source_person.astype(np.uint8), (gw, gh), interpolation=cv2.INTER_NEAREST) > 0
    cells = contour_cells(coarse)
    ex_edge = contour_cells(exemplar_person)
    if not cells.any() or not ex_edge.any():
        return np.zeros((gh, gw, 2), np.float32), np.zeros((gh, gw), bool)
    # Nearest exemplar contour pixel for every exemplar pixel.
    dist, labels = cv2.distanceTransformWithLabels((~ex_edge).astype(np.uint8), cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    edge_rc = np.argwhere(ex_edge)  # label k (1-based) -> the k-th zero pixel in row-major order
    lut = np.zeros((len(edge_rc) + 1, 2), np.float32)
    lut[1:] = edge_rc
    rows, cols = np.nonzero(cells)
    ys = (rows + 0.5) * h / gh - 0.5
    xs = (cols + 0.5) * w / gw - 0.5
    px = similarity[0, 0] * xs + similarity[0, 1] * ys + similarity[0, 2]
    py = similarity[1, 0] * xs + similarity[1, 1] * ys + similarity[1, 2]
    eh, ew = exemplar_person.shape
    inframe = (px >= 0) & (px <= ew - 1) & (py >= 0) & (py <= eh - 1)
    ri, ci = np.clip(np.round(py).astype(int), 0, eh - 1), np.clip(np.round(px).astype(int), 0, ew - 1)
    near = lut[labels[ri, ci]]
    disp = np.stack([near[:, 0] - py, near[:, 1] - px], axis=1)
    good = inframe & (np.hypot(disp[:, 0], disp[:, 1]) <= reach)
    out = np.zeros((gh, gw, 2), np.float32)
    ok = np.zeros((gh, gw), bool)
    out[rows[good], cols[good]] = disp[good]
    ok[rows[good], cols[good]] = True
    # Smooth along the contour: a normalised Gaussian over the contour cells alone.
    wts = cv2.GaussianBlur(ok.astype(np.float32), (0, 0), 2.0)
    out = cv2.GaussianBlur(out * ok[..., None], (0, 0), 2.0) / np.maximum(wts, 1e-6)[..., None]
    return out, ok


def _membrane(target: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """argmin_d sum |grad d|^2 + sum weight |d - target|^2 + DECAY |d|^2 on the grid: (gh, gw, 2)."""
    gh, gw = weight.shape
    n = gh * gw
    idx = np.arange(n).reshape(gh, gw)
    pairs = [(idx[:, :-1].ravel(), idx[:, 1:].ravel()), (idx[:-1].ravel(), idx[1:].ravel())]
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    ones = np.ones(len(a))
    adj = sp.coo_matrix((ones, (a, b)), shape=(n, n))
    adj = adj + adj.T
    lap = sp.diags(np.asarray(adj.sum(1)).ravel()) - adj
    system = (lap + sp.diags(weight.ravel().astype(np.float64) + DECAY)).tocsc()
    rhs = (weight[..., None] * target).reshape(n, 2).astype(np.float64)
    sol = spsolve(system, rhs)
    return sol.reshape(gh, gw, 2).astype(np.float32)
