"""Dense matching outside the face: the input's condition edges against the exemplar's, gated.

Inside the face the chart is exact; outside it the map is the face's similarity plus a membrane
(``core.charts.surround``), which cannot follow how the rest of a scene differs between two shots of
it (another aspect, a tilt, a bend). When the exemplar shows the input's own scene, the rest is
matched densely:

    input edges (face condition channel 0: photo edges outside the face, or a sketch's lines;
                 pose: the Canny edges of the photo behind the skeleton)                 ─┐
    exemplar edges (its condition's), carried over by the map so far                    ├─ soft-edge images
        ─> DIS optical flow both ways (OpenCV) ─> kept where forward-backward consistent, near an edge
        ─> confidence-weighted smoothing (normalised convolution), fading to 0 at the face (pose: joints), unfolded
        ─> a displacement: positions(x + displacement(x))

Only edges are matched, never the input photo's colours: what a condition (or a sketch) carries.
The gate: the edge misfit after matching, over its chance level (the same misfit with the exemplar's
edges moved by 6 % of the side). Two shots of one scene line up far better than chance (0.23-0.39 on
the face pseudo pairs), a different person's scene does not (0.84-0.95 on the cross-identity pairs,
where DIS finds only local, inconsistent matches): then nothing changes. All of it runs at 256 px at
most (about 35 ms CPU for a 512 output).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.charts.folds import jacobian_determinant
from core.conditions.condition import Condition
from core.conditions.face import photo_edges

WORK_SIDE = 256  # matching runs at this longer side at most (the displacement is smooth)
SOFT = 0.008  # soft-edge falloff (times the longer side)
CONSISTENT = 0.006  # forward-backward disagreement allowed (times the longer side)
SMOOTH = 0.04  # the displacement's smoothing (times the longer side)
SUPPORT = 0.02  # confidence mass below which the displacement fades to 0
RAMP = 0.04  # the displacement rises from 0 at the face over this (times the longer side)
SHIFT = 0.06  # the chance level: the misfit with the exemplar's edges moved this much (times the side)
AGREE = 0.6  # the scene agrees when the misfit after matching is below this times its chance level
MIN_EDGES = 0.01  # fewer input edges outside the face than this share of the picture: nothing to match


@dataclass
class SceneMatch:
    """Whether the exemplar shows the input's scene, the misfit-over-chance that decided it, and the
    displacement (H, W, 2) (row, col) in output pixels for the maps (zeros when it does not agree)."""

    agrees: bool
    misfit: float
    displacement: np.ndarray


def condition_edges(cond: Condition) -> np.ndarray:
    """(H, W) bool: the edges a condition carries. A face's: its label's channel 0 (the photo's edges
    outside the face plus the landmark lines, or a sketch's lines). A pose's label is a skeleton: the edges
    of the photo behind it (``image``), none without one."""
    if cond.task == "pose":
        return photo_edges(cond.image) if cond.image is not None else np.zeros(cond.size, bool)
    return cond.label[0].numpy() > 0.5


def soft_edges(edges: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: exp(-distance to the nearest edge / sigma); 0 without edges."""
    if not edges.any():
        return np.zeros(edges.shape, np.float32)
    d = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)
    return np.exp(-d / sigma).astype(np.float32)


def carry(picture: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``picture`` (h, w) read at ``positions`` (H, W, 2) (row, col), bilinear, 0 outside its frame."""
    return cv2.remap(picture, np.ascontiguousarray(positions[..., 1], np.float32),
                     np.ascontiguousarray(positions[..., 0], np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def follow(positions: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """``positions`` (H, W, 2) read at x + ``displacement`` (H, W, 2) (row, col), bilinear; past the
    frame's edge the map is extended linearly (an affine map stays that affine map, with no fold)."""
    h, w = positions.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    qy, qx = ys + displacement[..., 0], xs + displacement[..., 1]
    cy, cx = np.clip(qy, 0, h - 1).astype(np.float32), np.clip(qx, 0, w - 1).astype(np.float32)
    d_row, d_col = np.gradient(positions, axis=(0, 1))  # (H, W, 2) each: change per row, per column
    out = cv2.remap(np.concatenate([positions, d_row, d_col], -1), cx, cy, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out[..., :2] + out[..., 2:4] * (qy - cy)[..., None] + out[..., 4:6] * (qx - cx)[..., None]


def misfit(src_soft: np.ndarray, src_edges: np.ndarray, ex_soft: np.ndarray, ex_edges: np.ndarray,
           where: np.ndarray) -> float:
    """Symmetric soft chamfer in [0, 1] over ``where``: each side's edges against the other's soft
    edges (0: every edge lies on one of the other side's; 1: none near)."""
    a, b = src_edges & where, ex_edges & where
    if a.sum() < 16 or b.sum() < 16:
        return 1.0
    return float(0.5 * ((1 - ex_soft[a]).mean() + (1 - src_soft[b]).mean()))


def agreement(src_soft: np.ndarray, src_edges: np.ndarray, ex_soft: np.ndarray, where: np.ndarray) -> float:
    """The misfit of a carried exemplar soft-edge image over its chance level (the misfit with it moved
    by SHIFT of the side in 8 directions): about 1 when the edges lie together by chance only."""
    ex_edges = ex_soft > 0.8  # its edge pixels: near the peak
    score = misfit(src_soft, src_edges, ex_soft, ex_edges, where)
    step = round(SHIFT * max(where.shape))
    chance = np.median([misfit(src_soft, src_edges, _shift(ex_soft, dy, dx), _shift(ex_edges, dy, dx), where)
                        for dy in (-step, 0, step) for dx in (-step, 0, step) if dy or dx])
    return score / max(float(chance), 1e-6)


def match_scene(source: Condition, exemplar: Condition, current: np.ndarray, keep: np.ndarray) -> SceneMatch:
    """Match the input's condition edges (``source``, output size) against the exemplar condition's,
    carried over by ``current`` (H, W, 2) (row, col) exemplar positions for every output pixel (the map
    so far); ``keep`` (H, W) bool: where the map must not move (the face chart)."""
    h, w = source.size
    zero = np.zeros((h, w, 2), np.float32)
    src_edges = condition_edges(source) & ~keep
    if src_edges.mean() < MIN_EDGES:  # a ready condition, or a sketch of the face alone
        return SceneMatch(False, 1.0, zero)
    s = min(1.0, WORK_SIDE / max(h, w))
    wh, ww = max(8, round(h * s)), max(8, round(w * s))
    side = max(wh, ww)
    src_edges = cv2.resize(src_edges.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_AREA) > 0
    face, keep = keep, cv2.resize(keep.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST) > 0  # full, work
    current = cv2.resize(current, (ww, wh), interpolation=cv2.INTER_LINEAR)
    sigma = SOFT * side
    ex_soft_own = soft_edges(condition_edges(exemplar), sigma * _zoom(current))  # in exemplar pixels
    src_soft = soft_edges(src_edges, sigma)
    inside = _inside(current, exemplar.size) & ~keep
    ex_soft = np.where(inside, carry(ex_soft_own, current), 0)

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    a, b = (255 * src_soft).astype(np.uint8), (255 * ex_soft).astype(np.uint8)
    forward = dis.calc(a, b, None)  # (h, w, 2) x, y: a(p) ~ b(p + forward(p))
    backward = dis.calc(b, a, None)
    ys, xs = np.mgrid[0:wh, 0:ww].astype(np.float32)
    to = np.stack([ys + forward[..., 1], xs + forward[..., 0]], -1)  # (row, col) where each pixel matched
    loop = np.hypot(*(forward + carry(backward, to)).transpose(2, 0, 1))  # 0: the way back returns
    near = (src_soft > np.exp(-2)) & (carry(ex_soft, to) > np.exp(-2))  # both ends within 2 sigma of an edge
    confident = (loop < CONSISTENT * side) & near & inside
    if confident.sum() < 32:
        return SceneMatch(False, 1.0, zero)
    # An affine part (another aspect, a tilt: it holds far from the matched edges too), then the rest
    # smoothed where it was matched and fading to 0 away from that.
    flow = forward[..., ::-1]  # (row, col)
    affine = _fit_affine(np.argwhere(confident).astype(np.float64), flow[confident].astype(np.float64))
    grid = np.stack([ys, xs], -1)
    work = (grid @ affine[:, :2].T + affine[:, 2]).astype(np.float32)  # (h, w, 2)
    weight = confident.astype(np.float32)
    rest = (flow - work) * weight[..., None]
    weight[keep] = 1.0  # the face: nothing left over there (the ramp below takes the affine part to 0)
    mass = cv2.GaussianBlur(weight, (0, 0), SMOOTH * side)
    work += cv2.GaussianBlur(rest, (0, 0), SMOOTH * side) / (mass + SUPPORT)[..., None]
    work *= _ramp(keep, RAMP * side)[..., None]  # from 0 at the face: no step at the chart's edge

    refined = follow(current, work)
    score = agreement(src_soft, src_edges, carry(ex_soft_own, refined), _inside(refined, exemplar.size) & ~keep)
    if score > AGREE:
        return SceneMatch(False, score, zero)
    displacement = cv2.resize(work, (w, h), interpolation=cv2.INTER_LINEAR) / s
    displacement *= _ramp(face, RAMP * max(h, w))[..., None]  # exactly 0 on the face at full size too
    return SceneMatch(True, score, _unfolded(displacement, SMOOTH * max(h, w)))


def _inside(positions: np.ndarray, ex_size: tuple[int, int]) -> np.ndarray:
    eh, ew = ex_size
    return ((positions[..., 0] >= 0) & (positions[..., 0] <= eh - 1) & (positions[..., 1] >= 0)
            & (positions[..., 1] <= ew - 1))


def _fit_affine(points: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares affine (row, col) -> displacement (row, col) through the matched ``points``
    (N, 2) and their ``flow`` (N, 2); 0 where it would turn the picture over or scale it more than 2x."""
    design = np.concatenate([points, np.ones((len(points), 1))], 1)
    solution, *_ = np.linalg.lstsq(design, flow, rcond=None)
    affine = solution.T  # (2, 3)
    det = np.linalg.det(np.eye(2) + affine[:, :2])
    return affine if 0.5 < det < 2.0 else np.zeros((2, 3))


def _unfolded(displacement: np.ndarray, sigma: float, rounds: int = 6) -> np.ndarray:
    """The displacement (H, W, 2) faded smoothly towards 0 round folds until x + displacement folds nowhere
    (its Jacobian determinant above a tenth everywhere; then neither does any fold-free map read through it).
    Fading, not replacing: a displacement of 0 is always fold-free, and a smooth fade adds no step."""
    h, w = displacement.shape[:2]
    grid = np.stack(np.mgrid[0:h, 0:w], -1).astype(np.float32)
    out = displacement.astype(np.float32, copy=True)
    for _ in range(rounds):
        bad = np.pad(jacobian_determinant(grid + out) <= 0.1, ((0, 1), (0, 1)))
        if not bad.any():
            return out
        width = max(2 * sigma, 3 * float(np.abs(out).max()))  # the fade's own slope stays under a half
        out *= _ramp(cv2.dilate(bad.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0, width)[..., None]
    return out if not (jacobian_determinant(grid + out) <= 0.1).any() else np.zeros_like(out)


def _ramp(keep: np.ndarray, width: float) -> np.ndarray:
    """(H, W) float32: 0 on ``keep``, rising smoothly (smoothstep) to 1 at ``width`` pixels from it."""
    t = np.clip(cv2.distanceTransform((~keep).astype(np.uint8), cv2.DIST_L2, 3) / width, 0, 1)
    return t * t * (3 - 2 * t)


def _shift(picture: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``picture`` moved by (dy, dx) pixels, zeros where nothing moves in."""
    out = np.zeros_like(picture)
    h, w = picture.shape[:2]
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = picture[max(0, -dy):h + min(0, -dy),
                                                                        max(0, -dx):w + min(0, -dx)]
    return out


def _zoom(positions: np.ndarray) -> float:
    """Median exemplar pixels per pixel of a map (H, W, 2)."""
    d_row, d_col = np.gradient(positions, axis=(0, 1))
    det = np.abs(d_row[..., 0] * d_col[..., 1] - d_row[..., 1] * d_col[..., 0])
    return float(np.sqrt(np.median(det)))
