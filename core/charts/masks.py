"""Mask charts (mask task): each class of the input maps onto the same class of the exemplar.

    things (a car, a person, a bed)  a similarity-preserving chart per piece: inside, a similarity
                                     (one scale, centroid to centroid), so a face or a car keeps its
                                     proportions; near the outline it hands over to a polar chart
                                     (border -> border, left -> left)
    a person with a face, both       the face by its FaceMesh (``core.charts.face``: eyes, lips exact),
    masks from photos                the rest of the person left to the engine's surround, snapped to
                                     the two silhouettes (the portrait path of engine v2)
    stuff  (sky, grass, wall...)     texture synthesis: guided image quilting from the exemplar's region
                                     of that class, at the exemplar's own scale (no stretch), laid out
                                     near where the plain map would have put each tile

Everything is expressed as exemplar positions (the ChartMap contract): a synthesised pixel is a
position inside the exemplar's region of its class, never outside it. ``ChartMap.pieces`` says where
the map jumps by design (between classes, between quilted tiles): seams, not folds
(``core.charts.folds``).

Two layouts (``layered``): masks segmented from photos label the person and leave the rest
unlabeled; then the labelled regions are the subject, composited over the exemplar's own
background like a portrait. A painted mask that labels the whole scene is one layer.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch
from scipy import ndimage

from core.charts.base import ChartMap, nearest_in
from core.charts.face import MESH_POINTS, face_chart
from core.charts.folds import cells_to_pixels, folded_cells
from core.charts.turned import before_the_face, face_onto_outline, turned_apart
from core.conditions.ade20k import NAMES, NUM_INDICES, PERSON, STUFF, UNLABELED
from core.conditions.condition import Condition
from core.conditions.masks import onehot_to_index
from core.errors import InputError, WarpaintError
from core.imageio import disc

MIN_CLASS_FRACTION = 0.0005  # classes smaller than this share of the output are ignored (stray pixels)
UNKNOWN_MIN_FRACTION = 0.05  # an exemplar's unlabeled part at least this large stands in for absent classes
BORROW_MIN = 0.2  # ... from the rows at the class's heights when they hold this share of it (``_same_rows``)
STUFF_MIN_FRACTION = 0.02  # a stuff region is synthesised when at least this share of the output ...
MAX_STRETCH = 1.25  # ... and mapping it as it is would stretch its texture more than this
MAX_OFF = 0.02  # ... or land this share of it on other classes of the exemplar (smears once snapped)
TILE_FRACTION = 1 / 6  # quilting tile side as a fraction of the output's shorter side
GUIDE_WEIGHT = 0.15  # pull of the shape chart's layout against the tiles' colour agreement
CANDIDATES = 32  # random tile origins tried per tile (plus the guided one)
FACE_REGION = NUM_INDICES  # ChartMap.region id of a face mapped by its mesh (after the 151 class ids)
LAYERED_MIN_FRACTION = 0.01  # an input whose unlabeled part is at least this share is composited in layers
FLIP_MARGIN = 1  # pixels round a face mesh's flipped triangles left to the surround with them
OUTLINE_BAND = 0.2  # things: the polar chart's band along the outline, in units of the piece's radius
HEAD_TOP_SLACK = 0.15  # a head circle may stop this share of its radius short of the silhouette's top (hair)
HEAD_MIN = 0.25  # a head's radius is at least this share of the torso's (a smaller circle on top: a raised hand)
# A subject's crumbs and strands (a segmented tripod's legs, a camera strap, specks): parts thinner than twice
# STRAND (times the frame's longer side), pieces under CRUMB of the largest one. The exemplar's person has
# nothing to show there but specks of its clothing: they are shown as background (``solid``).
STRAND = 0.01
CRUMB = 0.02
SOLID_MIN = 0.5  # ``solid`` keeping less of a subject than this share (a thin or small one) keeps it whole
PINHOLE = 0.002  # gaps inside a subject under this share of the frame (a gap by the eye) are the subject's


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


ANGLE_BINS = 180  # directions of the polar shape chart
ANGLE_SMOOTH = 2.0  # Gaussian smoothing of the outline radius over directions, in bins
MIN_PIECE_FRACTION = 0.1  # exemplar pieces under this share of the class's largest are not paired


def _pieces(region: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Connected pieces of a region: (pixels (N, 2) x, y, centroid (2,), spread (2,), outline radius
    (ANGLE_BINS,)). Coordinates are normalised by the piece's spread (2 std per axis); the outline
    radius is, per direction from the centroid, the farthest normalised radius of the piece."""
    labels, count = ndimage.label(region)
    out = []
    for k, sl in enumerate(ndimage.find_objects(labels)):
        ys, xs = np.nonzero(labels[sl] == k + 1)
        xs, ys = xs + sl[1].start, ys + sl[0].start
        p = np.stack([xs, ys], axis=1).astype(np.float64)
        centre = p.mean(axis=0)
        spread = 2 * p.std(axis=0) + 1.0
        q = (p - centre) / spread
        radius = np.zeros(ANGLE_BINS)
        np.maximum.at(radius, _angle_bin(q), np.hypot(q[:, 0], q[:, 1]) + 0.7 / spread.min())
        empty = radius == 0  # directions with no pixel (thin pieces): from the neighbouring directions
        if empty.any() and not empty.all():
            idx = np.arange(ANGLE_BINS)
            radius[empty] = np.interp(idx[empty], idx[~empty], radius[~empty], period=ANGLE_BINS)
        radius = ndimage.gaussian_filter1d(np.log(np.maximum(radius, 1e-3)), ANGLE_SMOOTH, mode="wrap")
        out.append((p, centre, spread, np.exp(radius)))
    return out


def _angle_bin(q: np.ndarray) -> np.ndarray:
    theta = np.arctan2(q[:, 1], q[:, 0])
    return np.clip(((theta + np.pi) / (2 * np.pi) * ANGLE_BINS).astype(int), 0, ANGLE_BINS - 1)


def _outline_at(radius: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The outline radius in the directions of (N, 2) normalised points (linear between bins)."""
    theta = np.arctan2(q[:, 1], q[:, 0])
    pos = (theta + np.pi) / (2 * np.pi) * ANGLE_BINS - 0.5
    return np.interp(pos, np.arange(ANGLE_BINS), radius, period=ANGLE_BINS)


def shape_map(src_region: np.ndarray, ex_region: np.ndarray, snap: bool = True) -> np.ndarray:
    """(H, W, 2) x, y exemplar positions for the pixels of ``src_region`` (NaN elsewhere), one class.

    Per connected piece, paired with the exemplar's piece nearest in the frame: inside, a similarity
    (the two pieces' centroids matched, one scale: the square root of their areas' ratio), so what
    the piece shows keeps its proportions (a face is not squeezed); along the outline (a band of
    ``OUTLINE_BAND`` x the piece's radius), blended into a polar chart: normalised by each piece's
    centroid and spread, a pixel keeps its direction and its radius as a fraction of the piece's
    outline radius in that direction, so outline goes to outline and left to left. With ``snap``, a
    position off the exemplar's region (a concave piece, a wider input) moves to its nearest pixel."""
    h, w = src_region.shape
    eh, ew = ex_region.shape
    out = np.full((h, w, 2), np.nan)
    ex_pieces = _pieces(ex_region)
    if not ex_pieces:
        return out
    sizes = np.array([len(piece[0]) for piece in ex_pieces])
    usable = [piece for piece, n in zip(ex_pieces, sizes) if n >= MIN_PIECE_FRACTION * sizes.max()]
    ex_centres = np.array([piece[1] / (ew, eh) for piece in usable])
    inside = ndimage.distance_transform_edt(np.pad(src_region, 1, mode="edge"))[1:-1, 1:-1]  # frame: not a border
    for p, centre, spread, radius in _pieces(src_region):
        k = int(np.argmin(np.hypot(*(ex_centres - centre / (w, h)).T)))
        ex_p, ex_centre, ex_spread, ex_radius = usable[k]
        q = (p - centre) / spread
        polar = ex_centre + q * (_outline_at(ex_radius, q) / _outline_at(radius, q))[:, None] * ex_spread
        similar = ex_centre + (p - centre) * np.sqrt(len(ex_p) / len(p))
        band = OUTLINE_BAND * np.sqrt(len(p) / np.pi)
        t = np.clip((inside[p[:, 1].astype(int), p[:, 0].astype(int)] - 1) / max(band, 1.0), 0, 1)  # 0 on the outline
        t = (t * t * (3 - 2 * t))[:, None]  # smoothstep: the similarity inside, the polar chart at the outline
        out[p[:, 1].astype(int), p[:, 0].astype(int)] = t * similar + (1 - t) * polar
    return _snap(out, src_region, ex_region) if snap else out


def moment_map(src_region: np.ndarray, ex_region: np.ndarray, raw: bool = False) -> np.ndarray:
    """(H, W, 2) x, y exemplar positions for the pixels of ``src_region``: the axis-aligned affine map
    taking the class's centroid and spread (all its pieces together) onto the exemplar's. For stuff
    (a sky, a lawn: wide, holed by the things in front of it) where a polar chart would shear."""
    out = np.full((*src_region.shape, 2), np.nan)
    ys, xs = np.nonzero(src_region)
    eys, exs = np.nonzero(ex_region)
    if not len(eys):
        return out
    p = np.stack([xs, ys], axis=1).astype(np.float64)
    q = np.stack([exs, eys], axis=1).astype(np.float64)
    out[ys, xs] = q.mean(axis=0) + (p - p.mean(axis=0)) * (q.std(axis=0) + 1.0) / (p.std(axis=0) + 1.0)
    return out if raw else _snap(out, src_region, ex_region)


def off_region(positions: np.ndarray, src_region: np.ndarray, ex_region: np.ndarray) -> float:
    """Share of the region's positions that fall off the exemplar's region (before snapping)."""
    eh, ew = ex_region.shape
    q = positions[src_region]
    qx = np.clip(np.round(q[:, 0]), 0, ew - 1).astype(int)
    qy = np.clip(np.round(q[:, 1]), 0, eh - 1).astype(int)
    return float((~ex_region[qy, qx]).mean()) if len(q) else 0.0


def _snap(out: np.ndarray, src_region: np.ndarray, ex_region: np.ndarray) -> np.ndarray:
    """Positions kept inside the exemplar's frame, and those off its region moved to its nearest pixel."""
    eh, ew = ex_region.shape
    rows, cols = np.nonzero(src_region)
    out[..., 0] = np.clip(out[..., 0], 0, ew - 1)  # (NaN stays NaN)
    out[..., 1] = np.clip(out[..., 1], 0, eh - 1)
    out[rows, cols] = nearest_in(ex_region, out[rows, cols])
    return out


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


def stretch(src_region: np.ndarray, ex_region: np.ndarray) -> float:
    """How much the shape chart would stretch (>= 1) or squeeze the exemplar's texture along either
    axis, relative to the exemplar's own scale (its frame fitted to the output's area)."""
    (h, w), (eh, ew) = src_region.shape, ex_region.shape
    k = np.sqrt(eh * ew / (h * w))
    ratios = []
    for axis in (0, 1):
        src_spread = np.nonzero(src_region)[axis].std() + 1.0
        ex_spread = np.nonzero(ex_region)[axis].std() + 1.0
        ratios.append(ex_spread / (k * src_spread))
    return float(max(max(r, 1 / r) for r in ratios))


def mask_chart(source: Condition, exemplar: Condition, allow_partial: bool = False, seed: int = 0) -> ChartMap:
    """Dense map from the output's labelled pixels to the exemplar's pixels of the same class.

    A class the exemplar lacks is taken from the exemplar's unlabeled part when it has one (a mask
    segmented from a photo labels only the person); otherwise the classes are named in an
    InputError, unless ``allow_partial`` (then they are listed in ``missing`` and left undefined).
    The input's unlabeled pixels are left to the engine's background."""
    src_idx, ex_idx = class_index_map(source), class_index_map(exemplar)
    h, w = src_idx.shape
    src_count = np.bincount(src_idx.ravel(), minlength=len(NAMES))
    ex_count = np.bincount(ex_idx.ravel(), minlength=len(NAMES))
    classes = [c for c in np.flatnonzero(src_count >= max(1, MIN_CLASS_FRACTION * h * w)) if c != UNLABELED]
    eh, ew = ex_idx.shape
    # An exemplar mask from a photo labels only the person (offline segmentation): its unlabeled part
    # is "unknown", not "absent", so a class it lacks is taken from there (with a note).
    unknown = ex_idx == UNLABELED if ex_count[UNLABELED] >= UNKNOWN_MIN_FRACTION * eh * ew else None
    absent = [c for c in classes if ex_count[c] == 0]
    borrowed = [NAMES[c] for c in absent if unknown is not None]
    missing = [NAMES[c] for c in absent if unknown is None]
    if missing and not allow_partial:
        raise InputError(
            f"The exemplar has no {', '.join(missing)}: the input's mask needs "
            f"{'it' if len(missing) == 1 else 'them'}. Use an exemplar whose mask has every class of the input "
            "(or paint those regions with a class the exemplar has), or allow a partial result.")
    positions = np.full((h, w, 2), np.nan, np.float32)
    confidence = np.zeros((h, w), np.float32)
    region = np.zeros((h, w), np.int16)
    pieces = np.zeros((h, w), np.int32)  # 0: continuous with the surround; each class, each quilted tile: its own id
    notes = []
    ex_image = exemplar.image if exemplar.image is not None and exemplar.image.shape[:2] == ex_idx.shape else None
    in_layers = layered(source, exemplar)
    for c in classes:
        src_region = src_idx == c
        region[src_region] = c
        pieces[src_region] = pieces.max() + 1
        if ex_count[c] == 0 and unknown is None:
            continue
        ex_region = ex_idx == c if ex_count[c] else _same_rows(unknown, src_region)
        if c == PERSON and ex_count[c] and (in_layers or source.image is None):  # (a painted scene's person too)
            face = _face(source, exemplar, src_region, ex_region)
            if face is not None:  # the face by its mesh; the rest of the person: the engine's surround
                positions[face.defined] = face.positions[face.defined]
                confidence[face.defined] = 1.0
                region[face.defined] = FACE_REGION
                pieces[face.defined] = 0  # one smooth map with the engine's surround around it
                notes += face.notes
                continue
        is_stuff = NAMES[c] in STUFF
        if is_stuff:  # mapped as it is when that neither stretches it nor lands on other classes
            raw = moment_map(src_region, ex_region, raw=True)
            plain = stretch(src_region, ex_region) <= MAX_STRETCH and off_region(raw, src_region, ex_region) <= MAX_OFF
        else:
            raw, plain = shape_map(src_region, ex_region, snap=False), True
        guide = _snap(raw.copy(), src_region, ex_region)
        synthesised = None
        if is_stuff and src_count[c] >= STUFF_MIN_FRACTION * h * w and not plain:
            synthesised = synthesize(src_region, ex_region, ex_image, guide, seed=seed + int(c))
            if synthesised is None:
                notes.append(f"{NAMES[c]}: the exemplar's region is too thin to copy texture from; mapped as it is.")
        if synthesised is not None:
            positions[src_region] = synthesised[src_region][:, ::-1]
            confidence[src_region] = 0.9
            pieces[src_region] = pieces.max() + 1 + _tiles(synthesised, src_region, (h, w), (eh, ew))[src_region]
        else:
            positions[src_region] = guide[src_region][:, ::-1]
            confidence[src_region] = 0.8
            off = src_region & ~_on_region(raw, ex_region)  # what the exemplar's region does not cover
            if in_layers:  # the engine completes it from the subject
                positions[off] = np.nan
            elif off.sum() >= STUFF_MIN_FRACTION * h * w / 4:  # texture from the region, not a smear of its edge
                filled = synthesize(off, ex_region, ex_image, guide, seed=seed + int(c))
                if filled is not None:
                    positions[off] = filled[off][:, ::-1]
                    confidence[off] = 0.9
                    pieces[off] = pieces.max() + 1 + _tiles(filled, off, (h, w), (eh, ew))[off]
    if borrowed:
        notes.append(f"Not labelled in the exemplar: {', '.join(borrowed)}; taken from its unlabeled part "
                     "(paint the exemplar's mask too for an exact match).")
        for c in absent:
            confidence[src_idx == c] *= 0.5
    defined = np.isfinite(positions).all(axis=2)
    positions[~defined] = 0.0
    confidence[~defined] = 0.0
    if missing:
        notes.append(f"No match in the exemplar for: {', '.join(missing)} (left to the fill).")
    return ChartMap(positions=positions, defined=defined, confidence=confidence, region=region,
                    missing=missing, notes=notes, pieces=pieces)


def _same_rows(unknown: np.ndarray, src_region: np.ndarray) -> np.ndarray:
    """The exemplar's unlabeled part a class it lacks is taken from: its rows at the heights (as shares of
    the frame) the input's class spans, so a painted sky takes what lies high in the photo and a lawn what
    lies low (a photo's unlabeled part is its whole surroundings); all of it when those rows hold under
    ``BORROW_MIN`` of it."""
    rows = np.nonzero(src_region.any(axis=1))[0]
    h, eh = src_region.shape[0], unknown.shape[0]
    top, bottom = int(np.floor(rows.min() / h * eh)), int(np.ceil((rows.max() + 1) / h * eh))
    band = np.zeros_like(unknown)
    band[top:bottom] = unknown[top:bottom]
    return band if band.sum() >= BORROW_MIN * unknown.sum() else unknown


def layered(source: Condition, exemplar: Condition) -> bool:
    """Whether a mask pair is composited in layers: the input leaves part of its frame unlabeled and
    the exemplar has an unlabeled part to take a background from (masks segmented from photos:
    person / background). Otherwise the input's mask is the whole scene, one layer."""
    return (1 - labelled(source).mean() >= LAYERED_MIN_FRACTION
            and 1 - labelled(exemplar).mean() >= UNKNOWN_MIN_FRACTION)


def solid(subject: np.ndarray) -> np.ndarray:
    """(H, W) bool: a subject silhouette without its strands and crumbs (see ``STRAND``), pinholes filled.
    Mapped, such parts land beside the exemplar's person and are filled from its clothing: dark spikes and
    specks round the head (the painted cameraman's camera and tripod); as background they are not seen.
    A subject that would keep under ``SOLID_MIN`` of itself (a person a few pixels wide) is returned whole."""
    h, w = subject.shape
    r = max(1, round(STRAND * max(h, w)))
    core = cv2.morphologyEx(subject.astype(np.uint8), cv2.MORPH_OPEN,
                            disc(r)) > 0
    labels, count = ndimage.label(core)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        core = np.isin(labels, 1 + np.flatnonzero(sizes >= CRUMB * sizes.max()))
    if core.sum() < SOLID_MIN * subject.sum():  # a thin or small subject is all strand: kept as it is
        return subject.astype(bool)
    gaps, count = ndimage.label(~core)  # gaps inside the subject, off the frame, under PINHOLE of it: filled
    if count > 1:
        sizes = np.bincount(gaps.ravel())
        on_frame = np.unique(np.concatenate([gaps[0], gaps[-1], gaps[:, 0], gaps[:, -1]]))
        small = np.setdiff1d(np.flatnonzero(sizes < PINHOLE * h * w), np.append(on_frame, 0))
        core |= np.isin(gaps, small)
    return core


def labelled(cond: Condition) -> np.ndarray:
    """(H, W) bool: a mask condition's labelled pixels (its subject in a layered pair)."""
    return cond.subject_mask if cond.subject_mask is not None else class_index_map(cond) != UNLABELED


def face_mesh(cond: Condition) -> np.ndarray | None:
    """(478, 3) FaceMesh points of a mask condition's photo (found once, kept on ``cond.mesh``), or None
    without a photo or a face."""
    if cond.mesh is not None or cond.image is None:
        return cond.mesh
    from core.conditions.face import detect_keypoints

    photo = cond.photo if cond.photo is not None else cond.image
    try:
        _, outline, _ = detect_keypoints(photo, cond.size)
    except WarpaintError:
        return None
    if outline.shape == (MESH_POINTS, 3):
        cond.mesh = outline.astype(np.float32)
    return cond.mesh


def _face(source: Condition, exemplar: Condition, src_region: np.ndarray, ex_region: np.ndarray
          ) -> ChartMap | None:
    """The face chart inside the input's person region when both photos show a face, else None. A
    painted person (no photo behind the mask) takes the exemplar's face on its head (``head_circle``)."""
    if face_mesh(exemplar) is None:
        return None
    if face_mesh(source) is None:
        if source.image is not None:  # a photo with no face found: a back, a far-away person
            return None
        placed = _placed_mesh(src_region, ex_region, exemplar.mesh)
        if placed is None:
            return None
        source = dataclasses.replace(source, mesh=placed, keypoints=None)
    if whole_face(source, exemplar):
        return _whole_face_chart(source, exemplar, src_region)
    face = face_chart(source, exemplar)
    face.defined &= src_region
    if not face.defined.sum() >= 0.5 * (face.region > 0).sum() > 0:
        return None
    # A face turned away (a profile input onto a frontal face; the other way round is mapped whole, above) shows
    # its far cheek edge-on: the mesh's triangles there flip. That part is left to the engine's surround (a
    # harmonic map from the face's edge, which does not fold) instead of a mirrored strip of the face.
    flipped = cells_to_pixels(folded_cells(face.positions, face.defined))
    if flipped.any():
        face.defined &= ~(cv2.dilate(flipped.astype(np.uint8), np.ones((2 * FLIP_MARGIN + 1,) * 2, np.uint8)) > 0)
    return face


def whole_face(source: Condition, exemplar: Condition) -> bool:
    """Whether the exemplar's face is mapped whole rather than mesh to mesh: both photos show a face (their
    FaceMesh found) and the two are turned too far apart (``core.charts.turned.turned_apart``)."""
    return (source.image is not None and source.mesh is not None and exemplar.mesh is not None
            and len(source.mesh) == len(exemplar.mesh) == MESH_POINTS and turned_apart(source.mesh, exemplar.mesh))


def person_shown(source: Condition, exemplar: Condition) -> np.ndarray:
    """(H, W) bool: the exemplar's person that the input's person is drawn from: its labelled pixels, less what
    lies before its face when that face is mapped whole (``whole_face``: what a profile is turned to, such as a
    camera held to the eye, is in its segmentation but is no part of a head)."""
    person = labelled(exemplar).copy()
    if whole_face(source, exemplar):
        person &= ~before_the_face(exemplar.mesh, exemplar.size)
    return person


def _whole_face_chart(source: Condition, exemplar: Condition, src_region: np.ndarray) -> ChartMap:
    """The exemplar's face mapped whole onto the input's (``core.charts.turned``: its mesh's box onto the input's),
    inside the input's face oval and person: the two faces are turned too far apart to map mesh to mesh."""
    xy, inside = face_onto_outline(source.mesh, exemplar.mesh, src_region)
    positions = xy[..., ::-1].copy()  # (row, col)
    ex_face = ~before_the_face(exemplar.mesh, exemplar.size)  # what the squeeze leaves before its profile
    defined = inside & _on_region(xy, ex_face)
    positions[~defined] = 0.0
    note = ("The two faces are turned too differently to match feature by feature (one is seen from the side): "
            "the exemplar's face is drawn whole, scaled into the input's.")
    return ChartMap(positions=positions, defined=defined, confidence=defined.astype(np.float32),
                    region=np.where(defined, FACE_REGION, 0).astype(np.int16), notes=[note])


def head_circle(region: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(x, y) centre and radius of a silhouette's head: the largest inscribed circle that reaches the top
    of its largest piece (people stand upright; a neck or shoulders stop the circle growing), or None.
    A circle under ``HEAD_MIN`` of the piece's largest (the torso's) is a hand raised above the head: the
    search runs again with the parts as thin as that circle (the arm) opened away."""
    labels, count = ndimage.label(region)
    if count == 0:
        return None
    piece = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    centre, radius, largest = _top_circle(piece)
    if radius < HEAD_MIN * largest:  # open away what is as thin as that circle (the arm), not the head
        r = max(1, round(1.3 * radius + 1))
        trunk = cv2.morphologyEx(piece.astype(np.uint8), cv2.MORPH_OPEN,
                                 disc(r)) > 0
        labels, count = ndimage.label(trunk)
        if count:
            centre, radius, _ = _top_circle(labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return centre, radius


def _top_circle(piece: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The largest inscribed circle of ``piece`` that reaches its top: centre (x, y), radius; and the
    radius of its largest inscribed circle anywhere."""
    inside = ndimage.distance_transform_edt(np.pad(piece, 1))[1:-1, 1:-1]
    ys, xs = np.nonzero(piece)
    radius = inside[ys, xs]
    reaches_top = ys - radius <= ys.min() + HEAD_TOP_SLACK * radius + 1
    k = int(np.argmax(np.where(reaches_top, radius, -1)))
    return np.array([xs[k], ys[k]], np.float64), float(radius[k]), float(radius.max())


def _placed_mesh(src_region: np.ndarray, ex_region: np.ndarray, ex_mesh: np.ndarray) -> np.ndarray | None:
    """(478, 3) the exemplar's face mesh carried onto a painted person: the similarity taking the
    exemplar silhouette's head circle onto the input's (centre to centre, radius to radius)."""
    src, ex = head_circle(solid(src_region)), head_circle(ex_region)  # not the tip of a held stick
    if src is None or ex is None or ex[1] < 1:
        return None
    scale = src[1] / ex[1]
    placed = ex_mesh.astype(np.float64) * scale
    placed[:, :2] += src[0] - ex[0] * scale
    return placed.astype(np.float32)


def _on_region(positions: np.ndarray, ex_region: np.ndarray) -> np.ndarray:
    """(H, W) bool: positions (x, y) that land on the exemplar's region (False where NaN)."""
    eh, ew = ex_region.shape
    ok = np.isfinite(positions).all(axis=2)
    qx = np.clip(np.round(np.nan_to_num(positions[..., 0])), 0, ew - 1).astype(int)
    qy = np.clip(np.round(np.nan_to_num(positions[..., 1])), 0, eh - 1).astype(int)
    inside = (positions[..., 0] > -0.5) & (positions[..., 0] < ew - 0.5) & (positions[..., 1] > -0.5) \
        & (positions[..., 1] < eh - 0.5)
    return ok & inside & ex_region[qy, qx]


def _tiles(synthesised: np.ndarray, src_region: np.ndarray, size: tuple[int, int], ex_size: tuple[int, int]
           ) -> np.ndarray:
    """(H, W) int tile ids (from 0) of a quilted region: pixels of one tile share the offset between
    their exemplar position and their own position at the exemplar's scale."""
    (h, w), (eh, ew) = size, ex_size
    k = float(np.sqrt(eh * ew / (h * w)))
    ys, xs = np.nonzero(src_region)
    offset = np.round(1000 * (synthesised[ys, xs] - k * np.stack([xs, ys], axis=1))).astype(np.int64)
    _, ids = np.unique(offset[:, 0] * (1 << 31) + offset[:, 1], return_inverse=True)  # one key: a 1-D sort
    out = np.zeros((h, w), np.int32)
    out[ys, xs] = ids.ravel()
    return out
