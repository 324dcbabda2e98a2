"""Mask charts (mask task): each class of the input maps onto the same class of the exemplar.

    things (a car, a person, a bed)  shape chart: a pixel's distance to its region's border (over the
                                     region's largest one) and its position relative to the region's
                                     centroid and spread find the exemplar pixel with the same
                                     coordinates: centre -> centre, border -> border, left -> left
    stuff  (sky, grass, wall...)     texture synthesis: guided image quilting from the exemplar's region
                                     of that class, at the exemplar's own scale (no stretch), laid out
                                     near where the shape chart would have put each tile

Everything is expressed as exemplar positions (the ChartMap contract): a synthesised pixel is a
position inside the exemplar's region of its class, never outside it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from core.charts.base import ChartMap
from core.conditions.ade20k import NAMES, STUFF, UNLABELED
from core.conditions.condition import Condition
from core.conditions.masks import onehot_to_index
from core.errors import InputError

MIN_CLASS_FRACTION = 0.0005  # classes smaller than this share of the output are ignored (stray pixels)
STUFF_MIN_FRACTION = 0.02  # a stuff region is synthesised when at least this share of the output
BORDER_WEIGHT = 2.0  # shape-chart feature weights: distance to the border, relative position, frame position
POSITION_WEIGHT = 1.0
FRAME_WEIGHT = 0.5
TILE_FRACTION = 1 / 10  # quilting tile side as a fraction of the output's shorter side
GUIDE_WEIGHT = 0.15  # pull of the shape chart's layout against the tiles' colour agreement
CANDIDATES = 32  # random tile origins tried per tile (plus the guided one)


def class_index_map(cond: Condition) -> np.ndarray:
    """(H, W) ADE20K class index of a mask condition."""
    if cond.task != "mask":
        raise InputError("Mask charts need mask conditions (ADE20K labels) on both sides.")
    label = cond.label.float()
    weights = torch.stack([torch.arange(label.shape[0], dtype=torch.float32), torch.ones(label.shape[0])])
    index, total = torch.einsum("chw,kc->khw", label, weights)  # a matrix product: 15x faster than argmax
    if bool(((total - 1).abs() < 1e-4).all()):  # one-hot (what every mask condition holds)
        return index.round().long().numpy()
    return onehot_to_index(cond.label).astype(np.int64)


def _shape_features(region: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 2) x, y of a class region and their shape coordinates (N, 4), per connected piece:
    distance to the border / its maximum, position relative to the centroid / 2 std, and the piece's
    centroid in frame units."""
    h, w = size
    labels, count = ndimage.label(region)
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    ys, xs = np.nonzero(region)
    lab = labels[ys, xs] - 1
    n = np.bincount(lab, minlength=count).astype(np.float64)
    cx, cy = np.bincount(lab, xs, count) / n, np.bincount(lab, ys, count) / n
    sx = np.sqrt(np.bincount(lab, (xs - cx[lab]) ** 2, count) / n) * 2 + 1
    sy = np.sqrt(np.bincount(lab, (ys - cy[lab]) ** 2, count) / n) * 2 + 1
    d = dist[ys, xs]
    dmax = np.zeros(count)
    np.maximum.at(dmax, lab, d)
    d = d / dmax[lab]
    feats = np.stack([BORDER_WEIGHT * d, POSITION_WEIGHT * (xs - cx[lab]) / sx[lab],
                      POSITION_WEIGHT * (ys - cy[lab]) / sy[lab], FRAME_WEIGHT * cx[lab] / w,
                      FRAME_WEIGHT * cy[lab] / h], axis=1)
    return np.stack([xs, ys], axis=1).astype(np.float64), feats


def shape_map(src_region: np.ndarray, ex_region: np.ndarray, grid: int = 160) -> np.ndarray:
    """(H, W, 2) x, y exemplar positions for the pixels of ``src_region`` (NaN elsewhere), one class.

    The nearest exemplar pixel in shape coordinates, found on a grid of about ``grid`` points a
    side and interpolated bilinearly in between (smooth, no pixel steps); a pixel whose position
    leaves the exemplar's region there takes its own nearest match instead."""
    h, w = src_region.shape
    stride = max(1, int(round(max(h, w) / grid)))
    p, fp = _shape_features(src_region, src_region.shape)
    q, fq = _shape_features(ex_region, ex_region.shape)
    thin = max(1, int(np.ceil(len(q) / 30000)))  # a large exemplar region: a subset is enough
    tree = cKDTree(fq[::thin])
    q = q[::thin]
    on_grid = (p[:, 0] % stride == 0) & (p[:, 1] % stride == 0)
    coarse = np.full((-(-h // stride), -(-w // stride), 2), np.nan)
    if on_grid.any():
        _, nearest = tree.query(fp[on_grid])
        gx, gy = (p[on_grid] // stride).astype(int).T
        coarse[gy, gx] = q[nearest]
    known = np.isfinite(coarse[..., 0])
    out = np.full((h, w, 2), np.nan)
    xs, ys = p[:, 0].astype(int), p[:, 1].astype(int)
    if known.any():
        _, (iy, ix) = ndimage.distance_transform_edt(~known, return_indices=True)
        coarse = coarse[iy, ix]  # fill off-region grid points from their neighbours (interpolation only)
        # pixel centres: full-res x = stride * coarse x, so sample the coarse field at x / stride
        fx = (np.arange(w) / stride).astype(np.float32)
        fy = (np.arange(h) / stride).astype(np.float32)
        mx, my = np.meshgrid(fx, fy)
        for k in range(2):
            out[..., k] = cv2.remap(coarse[..., k].astype(np.float32), mx, my, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
    mapped = out[ys, xs]
    rx, ry = np.round(mapped[:, 0]), np.round(mapped[:, 1])
    eh, ew = ex_region.shape
    ok = np.isfinite(rx) & (rx >= 0) & (rx < ew) & (ry >= 0) & (ry < eh)
    ok[ok] = ex_region[ry[ok].astype(int), rx[ok].astype(int)]
    if (~ok).any():
        _, nearest = tree.query(fp[~ok])
        mapped[~ok] = q[nearest]
    result = np.full((h, w, 2), np.nan)
    result[ys, xs] = mapped
    return result


def _seam(error: np.ndarray) -> np.ndarray:
    """Minimal-error vertical cut through an (H, O) overlap error: for each row, the first column
    that takes the new tile."""
    h, o = error.shape
    cost = error.copy()
    for i in range(1, h):
        prev = cost[i - 1]
        best = prev.copy()
        np.minimum(best[1:], prev[:-1], out=best[1:])
        np.minimum(best[:-1], prev[1:], out=best[:-1])
        cost[i] += best
    cut = np.empty(h, int)
    cut[-1] = int(np.argmin(cost[-1]))
    for i in range(h - 2, -1, -1):
        j = cut[i + 1]
        lo, hi = max(0, j - 1), min(o, j + 2)
        cut[i] = lo + int(np.argmin(cost[i, lo:hi]))
    return cut


def synthesize(src_region: np.ndarray, ex_region: np.ndarray, ex_image: np.ndarray | None,
               guide: np.ndarray | None = None, seed: int = 0) -> np.ndarray | None:
    """Image quilting, expressed as positions: (H, W, 2) x, y exemplar positions for the pixels of
    ``src_region`` (NaN elsewhere), every one inside ``ex_region``; None when the exemplar's region
    cannot hold a single tile.

    Tiles keep the exemplar's scale (the whole exemplar fitted to the output's area) and are chosen
    among random origins inside the exemplar's region by their colour agreement with the tiles
    already laid (left and top overlaps, joined along minimal-error seams) plus a pull toward
    ``guide`` (H, W, 2), the shape chart's positions, which keeps the layout (sky above the horizon)."""
    h, w = src_region.shape
    eh, ew = ex_region.shape
    k = float(np.sqrt(eh * ew / (h * w)))  # exemplar pixels per output pixel
    tile = max(8, int(round(min(h, w) * TILE_FRACTION)))
    overlap = max(2, tile // 4)
    extent = int(np.ceil((tile - 1) * k)) + 1
    while True:
        kernel = np.ones((extent, extent), np.uint8)
        fits = cv2.erode(ex_region.astype(np.uint8), kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT,
                         borderValue=0).astype(bool)
        oy, ox = np.nonzero(fits)
        if len(oy) or tile <= 8:
            break
        tile, overlap = tile // 2, max(2, tile // 8)
        extent = int(np.ceil((tile - 1) * k)) + 1
    if not len(oy):
        return None
    rng = np.random.default_rng(seed)
    colours = None if ex_image is None else np.asarray(ex_image, np.float32) / 255.0
    out = np.full((h, w, 2), np.nan)
    canvas = np.zeros((h, w, 3), np.float32)
    written = np.zeros((h, w), bool)
    step = tile - overlap
    grid = np.arange(tile, dtype=np.float64) * k
    scale = float(max(eh, ew))
    laid: dict[tuple[int, int], np.ndarray] = {}
    rows, cols = np.nonzero(src_region)
    first_top = max(0, (rows.min() // step) * step)
    first_left = max(0, (cols.min() // step) * step)
    for top in range(first_top, rows.max() + 1, step):
        for left in range(first_left, cols.max() + 1, step):
            bh, bw = min(tile, h - top), min(tile, w - left)
            want = src_region[top:top + bh, left:left + bw]
            if not want.any():
                continue
            pick = rng.integers(0, len(oy), CANDIDATES)
            cand = np.stack([ox[pick], oy[pick]], axis=1).astype(np.float64)  # (C, 2) x, y origins
            # coherence: the continuations of the left and top neighbours' tiles (one larger copy)
            for (ny, nx), shift in (((top, left - step), (step * k, 0.0)), ((top - step, left), (0.0, step * k))):
                if (ny, nx) in laid:
                    nxt = laid[(ny, nx)] + np.array(shift)
                    ix, iy = int(round(nxt[0])), int(round(nxt[1]))
                    if 0 <= ix < ew and 0 <= iy < eh and fits[iy, ix]:
                        cand = np.vstack([cand, [ix, iy]])
            if guide is not None:
                g = guide[top:top + bh, left:left + bw][want]
                if len(g) and np.isfinite(g).all():
                    target = g.mean(axis=0) - (np.array([bw, bh]) - 1) / 2 * k
                    near = np.argmin((ox - target[0]) ** 2 + (oy - target[1]) ** 2)
                    cand = np.vstack([cand, [ox[near], oy[near]]])
            else:
                target = None
            old = written[top:top + bh, left:left + bw]
            cost = np.zeros(len(cand))
            if colours is not None and old.any():
                oy_, ox_ = np.nonzero(old)  # the overlap with tiles already laid
                cx = np.clip(np.round(cand[:, None, 0] + grid[None, ox_]), 0, ew - 1).astype(int)
                cy = np.clip(np.round(cand[:, None, 1] + grid[None, oy_]), 0, eh - 1).astype(int)
                diff = colours[cy, cx] - canvas[top + oy_, left + ox_][None]  # (C, n, 3)
                cost += np.einsum("cnk,cnk->c", diff, diff) / len(oy_)
            if guide is not None and target is not None:
                cost += GUIDE_WEIGHT * ((cand - target) ** 2).sum(axis=1) / scale**2 * 10
            good = np.flatnonzero(cost <= cost.min() * 1.1 + 1e-6)
            origin = cand[rng.choice(good)]
            laid[(top, left)] = origin
            xs = origin[0] + grid[:bw]
            ys = origin[1] + grid[:bh]
            pos = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), axis=-1)  # (bh, bw, 2)
            take = np.ones((bh, bw), bool)
            if colours is not None and old.any():
                px = np.clip(np.round(pos[..., 0]), 0, ew - 1).astype(int)
                py = np.clip(np.round(pos[..., 1]), 0, eh - 1).astype(int)
                err = ((colours[py, px] - canvas[top:top + bh, left:left + bw]) ** 2).sum(-1)
                err = np.where(old, err, 0.0)
                if left > 0 and old[:, :overlap].any():
                    cut = _seam(err[:, :overlap])
                    take &= np.arange(bw)[None, :] >= cut[:, None]
                if top > 0 and old[:overlap].any():
                    cut = _seam(err[:overlap].T)
                    take &= np.arange(bh)[:, None] >= cut[None, :]
                take |= ~old
                new_colours = colours[py, px]
                block = canvas[top:top + bh, left:left + bw]
                block[take] = new_colours[take]
            elif colours is not None:
                px = np.clip(np.round(pos[..., 0]), 0, ew - 1).astype(int)
                py = np.clip(np.round(pos[..., 1]), 0, eh - 1).astype(int)
                canvas[top:top + bh, left:left + bw] = colours[py, px]
            block_out = out[top:top + bh, left:left + bw]
            block_out[take] = pos[take]
            written[top:top + bh, left:left + bw] |= take
    out[~src_region] = np.nan
    return out


def mask_chart(source: Condition, exemplar: Condition, allow_partial: bool = False, seed: int = 0) -> ChartMap:
    """Dense map from the output's labelled pixels to the exemplar's pixels of the same class.

    Raises InputError naming the classes the input has and the exemplar lacks, unless
    ``allow_partial`` (then they are listed in ``missing`` and left undefined). Unlabeled pixels
    (index 0) are left to the engine's background."""
    src_idx, ex_idx = class_index_map(source), class_index_map(exemplar)
    h, w = src_idx.shape
    src_count = np.bincount(src_idx.ravel(), minlength=len(NAMES))
    ex_count = np.bincount(ex_idx.ravel(), minlength=len(NAMES))
    classes = [c for c in np.flatnonzero(src_count >= max(1, MIN_CLASS_FRACTION * h * w)) if c != UNLABELED]
    missing = [NAMES[c] for c in classes if ex_count[c] == 0]
    if missing and not allow_partial:
        raise InputError(
            f"The exemplar has no {', '.join(missing)}: the input's mask needs "
            f"{'it' if len(missing) == 1 else 'them'}. Use an exemplar whose mask has every class of the input "
            "(or paint those regions with a class the exemplar has), or allow a partial result.")
    positions = np.full((h, w, 2), np.nan, np.float32)
    confidence = np.zeros((h, w), np.float32)
    region = np.zeros((h, w), np.int16)
    notes = []
    ex_image = exemplar.image if exemplar.image is not None and exemplar.image.shape[:2] == ex_idx.shape else None
    for c in classes:
        src_region = src_idx == c
        region[src_region] = c
        if ex_count[c] == 0:
            continue
        ex_region = ex_idx == c
        guide = shape_map(src_region, ex_region)
        synthesised = None
        if NAMES[c] in STUFF and src_count[c] >= STUFF_MIN_FRACTION * h * w:
            synthesised = synthesize(src_region, ex_region, ex_image, guide, seed=seed + int(c))
            if synthesised is None:
                notes.append(f"{NAMES[c]}: the exemplar's region is too thin to copy texture from; stretched.")
        if synthesised is not None:
            positions[src_region] = synthesised[src_region][:, ::-1]
            confidence[src_region] = 0.9
        else:
            positions[src_region] = guide[src_region][:, ::-1]
            confidence[src_region] = 0.8
    defined = np.isfinite(positions).all(axis=2)
    positions[~defined] = 0.0
    confidence[~defined] = 0.0
    if missing:
        notes.append(f"No match in the exemplar for: {', '.join(missing)} (left to the fill).")
    return ChartMap(positions=positions, defined=defined, confidence=confidence, region=region,
                    missing=missing, notes=notes)
