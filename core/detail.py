"""Fine detail where a map enlarges the exemplar: the exemplar's own grain at its native scale.

Where engine v2's map enlarges the exemplar photo e times (a small exemplar face on a close-up
input), the sampled picture holds only the photo's frequencies below 0.5 / e cycles per output
pixel: skin and hair look like an upscale. This adds the photo's finest octave back at the scale
the photo shows it, with no search: the output is cut into small overlapping cells; each copies the
photo's top Laplacian band (luminance) from where the map sends it, at 1 photo pixel per output
pixel, turned with the map's local rotation (a forehead's wrinkles keep their direction) and
shifted a little at random (neighbouring cells would otherwise print the same grain as a lattice);
the cells are blended with variance-preserving weights (squared weights sum to 1), so the grain
keeps its contrast. Only frequencies above the picture's own Nyquist are kept, the amplitude is
softly limited, the weight grows with log2(e) (nothing below 1.25x, all from 2x), and the input's
eyes and lips are left alone (the cells would misplace their structure). docs/engine.md, "Engine
v2: fine detail where a small exemplar face is enlarged", has the measurements.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.charts.face import LEFT_EYE, MESH_POINTS, OUTER_LIPS, RIGHT_EYE

# Measured by eye on enlargements of 2x to 6.8x (docs/engine.md, "Fine detail where a small exemplar face is
# enlarged"): 24- or 16-pixel cells print a 1:1 copy of 3-4x the face area they stand for, so beyond 3x
# wrinkles and edges come in fragments (a crackle); 8-pixel cells give grain. The second octave (from 4x)
# adds dashes at 6.8x, so only the top octave is added.
CELL = 8  # output pixels per cell side (cells overlap by half: 4 cells cover every pixel)
BANDS = 1  # Laplacian octaves that may be added (the top one from 2x; a second would come from 4x)
LIMIT = 8.0  # soft limit of the added detail (uint8 levels of luminance)
MIN_ENLARGEMENT = 1.25  # below this the map keeps the photo's detail: nothing added
JITTER = 2.0  # photo pixels: the largest random shift of a cell's source (see ``add_detail``)
# The high-pass Gaussian's sigma per unit of enlargement: 1 - exp(-2 pi^2 sigma^2 f^2) is 1/2 at f = 0.5 / e.
SIGMA_PER_ENLARGEMENT = 2 * float(np.sqrt(np.log(2) / 2)) / np.pi  # 0.375
SEED = 0  # the shifts are drawn from this seed: the same output for the same input
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def enlargement(positions: np.ndarray) -> np.ndarray:
    """(H, W) how many output pixels one photo pixel covers along a side: 1 / sqrt|det J| of the map
    ``positions`` (H, W, 2) (row, col in photo pixels); inf where the map collapses."""
    return _enlargement(_jacobian(positions))


def _enlargement(jac: tuple[np.ndarray, ...]) -> np.ndarray:
    """``enlargement`` from the map's Jacobian (its four (h, w) entries, ``_jacobian``)."""
    r_y, r_x, c_y, c_x = jac
    det = np.abs(r_y * c_x - r_x * c_y)
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(det)


def _bands(photo: np.ndarray, count: int) -> list[np.ndarray]:
    """The photo's luminance (H, W) float32 split into its ``count`` finest Laplacian octaves."""
    luma = photo[..., :3].astype(np.float32) @ LUMA
    out = []
    for _ in range(count):
        low = cv2.pyrUp(cv2.pyrDown(luma), dstsize=(luma.shape[1], luma.shape[0]))
        out.append(luma - low)
        luma = low
    return out


def _box_of(where: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of ``where > 0`` with a pixel's margin (the Jacobian's differences need
    it), or None where nothing is asked."""
    rows, cols = np.nonzero(where > 0)
    if not len(rows):
        return None
    return max(0, rows.min() - 1), max(0, cols.min() - 1), rows.max() + 2, cols.max() + 2


def add_detail(image: np.ndarray, photo: np.ndarray, positions: np.ndarray, where: np.ndarray,
               cell: int = CELL) -> tuple[np.ndarray, float]:
    """``image`` (H, W, 3) uint8 with the exemplar ``photo``'s fine detail added where ``where`` (H, W)
    float in [0, 1] (1: fully) and the map ``positions`` (H, W, 2) (row, col, photo pixels) enlarges
    the photo. Returns the picture and the fraction of the output that got detail."""
    found = _box_of(where)
    if found is None:
        return image, 0.0
    top, left, bottom, right = found
    box = positions[top:bottom, left:right].astype(np.float32)
    jac = _jacobian(box)  # d(row, col) / d(y, x), photo pixels per output pixel: 4 x (h, w)
    scale = np.log2(np.clip(_enlargement(jac), 1.0, 2.0 ** BANDS))
    scale[scale < np.log2(MIN_ENLARGEMENT)] = 0
    weights = [np.clip(scale - k, 0, 1) * where[top:bottom, left:right] for k in range(BANDS)]
    if not any(w.any() for w in weights):
        return image, 0.0
    bands = _bands(photo, BANDS)
    h, w = box.shape[:2]
    ys, xs = np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32)
    # Each cell copies at the photo's scale, turned like the map: source = q(c) + R (p - c), written with
    # the map at p itself (q(p) - J (p - c) = q(c) for a locally affine map), so no cell reads the map
    # across the region's edge.
    s_rr, s_rc, s_cr, s_cc = (turn - entry for turn, entry in zip(_rotation(jac), jac))  # R - J: 4 x (h, w)
    box_r, box_c = np.ascontiguousarray(box[..., 0]), np.ascontiguousarray(box[..., 1])
    detail = np.zeros((BANDS, h, w), np.float32)
    norm = np.zeros((h, w), np.float32)
    half = cell / 2
    rng = np.random.default_rng(SEED)
    for oy in (0.0, half):
        for ox in (0.0, half):
            # A grid's cells are rows times columns: each pixel's cell and offset from its centre per axis.
            iy, ix = np.floor((ys - oy) / cell), np.floor((xs - ox) / cell)
            dy, dx = (ys - ((iy + 0.5) * cell + oy))[:, None], (xs - ((ix + 0.5) * cell + ox))[None]
            # A random shift per cell (up to JITTER photo pixels along each axis): neighbouring cells would
            # otherwise copy overlapping windows and print the same grain as a lattice.
            jitter = rng.uniform(-1, 1, (int(iy.max()) + 2, int(ix.max()) + 2, 2)) * JITTER
            jy, jx = jitter[iy.astype(np.int64)[:, None] + 1, ix.astype(np.int64)[None] + 1].transpose(2, 0, 1)
            src_r = (box_r + s_rr * dy + s_rc * dx + jy).astype(np.float32, copy=False)
            src_c = (box_c + s_cr * dy + s_cc * dx + jx).astype(np.float32, copy=False)
            window = np.cos(np.pi * dy / cell) ** 2 * np.cos(np.pi * dx / cell) ** 2  # sums to 1 over the 4 grids
            for k, band in enumerate(bands):
                if weights[k].any():
                    detail[k] += window * cv2.remap(band, src_c, src_r, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            norm += window**2
    added = sum(weights[k] * detail[k] for k in range(BANDS)) / np.sqrt(np.maximum(norm, 1e-6))
    # Only what the sampled picture lacks: frequencies above its Nyquist, 0.5 / e cycles per output pixel
    # (a Gaussian high-pass at half gain there; the band's lower part would double what the picture shows).
    e = float(np.median(2.0 ** scale[weights[0] > 0]))
    added = added - cv2.GaussianBlur(added, (0, 0), SIGMA_PER_ENLARGEMENT * e)
    added = LIMIT * np.tanh(added / LIMIT)
    out = image.copy()
    part = out[top:bottom, left:right].astype(np.float32) + added[..., None]
    out[top:bottom, left:right] = np.clip(part + 0.5, 0, 255).astype(np.uint8)
    return out, float((weights[0] > 0).sum()) / where.size


def _jacobian(box: np.ndarray) -> tuple[np.ndarray, ...]:
    """The map's Jacobian d(row, col) / d(y, x) by central differences (0 where not finite), entry by
    entry: d row / dy, d row / dx, d col / dy, d col / dx, each (h, w)."""
    r_y, r_x = np.gradient(box[..., 0])
    c_y, c_x = np.gradient(box[..., 1])
    return tuple(np.nan_to_num(entry) for entry in (r_y, r_x, c_y, c_x))


def _rotation(jac: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The rotation (or, where the map mirrors, the reflection) nearest each Jacobian (its polar factor,
    in closed form for 2x2), entry by entry as ``_jacobian``: the copied grain follows the face's turn
    at the photo's scale."""
    a, b, c, d = jac
    flip = np.where(a * d - b * c < 0, -1.0, 1.0)  # a reflection: the nearest orthogonal map has det -1
    p, q = a + flip * d, c - flip * b  # R = [[p, -flip q], [q, flip p]] / |(p, q)|
    n = np.maximum(np.hypot(p, q), 1e-9)
    p, q = p / n, q / n
    return tuple(entry.astype(np.float32) for entry in (p, -flip * q, q, flip * p))


def detail_region(mapped: np.ndarray, mesh: np.ndarray | None, feather: float = 2.0) -> np.ndarray:
    """(H, W) float32 in [0, 1]: where detail may be added: the output pixels that one smooth map
    samples (``mapped``, bool), less the input's eyes and lips (``mesh``: (478, 2+) FaceMesh x, y in
    output pixels, or None), faded in over ``feather`` pixels from their edges. The cells would misplace
    the structure of the eyes (with their lids) and the lips."""
    keep = mapped.astype(bool)
    if mesh is not None and len(mesh) == MESH_POINTS:
        features = np.zeros(mapped.shape, np.uint8)
        for contour in (RIGHT_EYE, LEFT_EYE, OUTER_LIPS):
            cv2.fillPoly(features, [np.round(mesh[list(contour), :2]).astype(np.int32)], 1)
        eye = float(np.linalg.norm(mesh[33, :2] - mesh[133, :2]))  # an eye's width: the margin round them
        margin = 2 * max(1, round(0.25 * eye)) + 1
        keep &= cv2.dilate(features, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (margin, margin))) == 0
    soft = cv2.GaussianBlur(keep.astype(np.float32), (0, 0), feather)
    return soft * keep


# -- edges: the photo upscaled from its own smaller scales ---------------------------------------------------

# Measured on the face cross pairs and looked at in 2x crops (docs/engine.md, "Edges where a small exemplar face is
# enlarged past 2x"). Up to 2x the ratio's bank holds the exemplar's own enlargement, and steeper edges there raised
# every enlarged pair's coherence (+0.002-0.006); past 2x a bicubic edge is wider than anything the photo shows.
# Upscaling past 2x from its own examples drew contours (a painted look at 6.7x), so the rest is bicubic.
EDGE_STEP = 2 ** (1 / 3)  # the self-example upscale's factor per step (Freedman & Fattal use 5:4)
EDGE_MAX = 2.0  # the most the photo is upscaled from its own examples (the map samples the rest bicubically)
EDGE_PATCH = 5  # side of the patches compared (pixels of the finer scale)
EDGE_SEARCH = 1  # the example is looked for within this many pixels (of the finer scale) of where it maps
EDGE_BUDGET = 2.0  # the upscaled crop is at most this many times the output's pixels (a looser crop: a lower factor)
EDGE_FROM, EDGE_FULL = 2.0, 3.0  # the steeper edges fade in from this enlargement, fully from that
EDGE_GAIN = 2.0  # how much of the steeper edges (above the photo's Nyquist only) is added
EDGE_MIN_AREA = 0.005  # less of the output than this enlarged past EDGE_FROM (a few stretched pixels): left alone


def _self_example_step(luma: np.ndarray, step: float) -> np.ndarray:
    """``luma`` (h, w) float32 upscaled by ``step`` from its own examples (after Freedman & Fattal 2011,
    "Image and video upscaling from local self-examples"): each patch of its bicubic enlargement takes the
    finest band of the patch nearby in the picture itself that looks most like it once that band is removed.
    An edge looks alike at neighbouring scales, so it gets its own, steeper, profile instead of a stretched one."""
    h, w = luma.shape
    big = round(h * step), round(w * step)
    up = cv2.resize(luma, big[::-1], interpolation=cv2.INTER_CUBIC)  # (H, W): the smooth enlargement
    small = cv2.resize(luma, (max(1, round(w / step)), max(1, round(h / step))), interpolation=cv2.INTER_AREA)
    low = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)  # the picture less its finest band
    r = EDGE_SEARCH
    # Both read at the finer scale's grid, so a candidate nearby is an integer shift of whole arrays.
    low_up, band_up = (cv2.copyMakeBorder(cv2.resize(x, big[::-1], interpolation=cv2.INTER_LINEAR), r, r, r, r,
                                          cv2.BORDER_REFLECT) for x in (low, luma - low))
    best, out = None, None
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            window = np.s_[r + dy:r + dy + big[0], r + dx:r + dx + big[1]]
            cost = cv2.boxFilter(cv2.pow(cv2.subtract(low_up[window], up), 2), -1, (EDGE_PATCH, EDGE_PATCH))
            if best is None:
                best, out = cost, band_up[window].copy()
            else:
                better = cost < best
                np.copyto(best, cost, where=better)
                np.copyto(out, band_up[window], where=better)
    # Within the range the enlargement shows nearby: steeper edges, no ringing (a copied band slightly off
    # its edge would overshoot it).
    square = np.ones((3, 3), np.uint8)
    low_end, high_end = (cv2.resize(f(luma, square), big[::-1], interpolation=cv2.INTER_LINEAR)
                         for f in (cv2.erode, cv2.dilate))
    return np.clip(up + out, low_end, high_end)


def self_example_upscale(luma: np.ndarray, factor: float) -> np.ndarray:
    """``luma`` (h, w) float32 upscaled from its own examples in as many whole ``EDGE_STEP`` steps as stay within
    ``factor`` (at least one; each rounds the sides to whole pixels): edges steeper than a bicubic enlargement's,
    no ringing (nothing is sharpened: each band is copied from the picture)."""
    out = luma.astype(np.float32)
    for _ in range(max(1, int(np.floor(np.log(factor) / np.log(EDGE_STEP) + 1e-6)))):
        out = _self_example_step(out, EDGE_STEP)
    return out


def add_edges(image: np.ndarray, photo: np.ndarray, positions: np.ndarray, where: np.ndarray,
              gain: float = EDGE_GAIN) -> tuple[np.ndarray, float]:
    """``image`` (H, W, 3) uint8 with steeper edges where ``where`` (H, W) float in [0, 1] and the map
    ``positions`` (H, W, 2) (row, col, photo pixels) enlarges the ``photo``: the difference between its
    self-example upscale and its bicubic one, only above the photo's own Nyquist (what the enlargement
    lacks; the photo's own frequencies stay as sampled), in luminance, ``gain`` times; from ``EDGE_FROM``
    times enlarged, fully from ``EDGE_FULL``. Returns the picture and the fraction of the output that got it."""
    found = _box_of(where)
    if found is None:
        return image, 0.0
    top, left, bottom, right = found
    box = positions[top:bottom, left:right].astype(np.float32)
    e = np.nan_to_num(_enlargement(_jacobian(box)), nan=0.0, posinf=0.0)  # a collapsed map: nothing to enlarge
    weight = np.clip(np.log2(np.maximum(e, 1e-6) / EDGE_FROM) / np.log2(EDGE_FULL / EDGE_FROM), 0, 1)
    weight *= where[top:bottom, left:right]
    used = weight > 0
    if used.sum() < EDGE_MIN_AREA * where.size:  # (its crop would cost as much as a face's)
        return image, 0.0
    src = box[used]
    margin = 2 * EDGE_PATCH
    p_top, p_left = (max(0, int(np.floor(src[:, k].min())) - margin) for k in (0, 1))
    p_bottom = min(photo.shape[0], int(np.ceil(src[:, 0].max())) + margin + 1)
    p_right = min(photo.shape[1], int(np.ceil(src[:, 1].max())) + margin + 1)
    if p_bottom - p_top < 2 * margin or p_right - p_left < 2 * margin:  # the map leaves the photo, or a sliver
        return image, 0.0
    crop = photo[p_top:p_bottom, p_left:p_right, :3].astype(np.float32) @ LUMA
    # A true bound: the steps' rounding of the sides to whole pixels enlarges less than 2 more crop pixels a side would.
    rounded = (crop.shape[0] + 2) * (crop.shape[1] + 2)
    factor = min(EDGE_MAX, float(np.percentile(e[used], 90)),
                 float(np.sqrt(EDGE_BUDGET * image.shape[0] * image.shape[1] / rounded)))
    if factor < EDGE_STEP:  # not one step's worth (a crop far larger than what the output shows of it)
        return image, 0.0
    up = self_example_upscale(crop, factor)
    smooth = cv2.resize(crop, up.shape[::-1], interpolation=cv2.INTER_CUBIC)
    steeper = up - smooth
    # Only above the photo's Nyquist: less what the photo's own grid holds of it (down and up again), then a
    # Gaussian high-pass at half gain at the photo's Nyquist (the projection alone leaks below it).
    steeper -= cv2.resize(cv2.resize(steeper, crop.shape[::-1], interpolation=cv2.INTER_AREA), up.shape[::-1],
                          interpolation=cv2.INTER_CUBIC)
    scale_y, scale_x = up.shape[0] / crop.shape[0], up.shape[1] / crop.shape[1]
    steeper -= cv2.GaussianBlur(steeper, (0, 0), SIGMA_PER_ENLARGEMENT * np.sqrt(scale_y * scale_x))
    ys = ((box[..., 0] - p_top + 0.5) * scale_y - 0.5).astype(np.float32)
    xs = ((box[..., 1] - p_left + 0.5) * scale_x - 0.5).astype(np.float32)
    added = gain * weight * cv2.remap(steeper, xs, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    out = image.copy()
    part = out[top:bottom, left:right].astype(np.float32) + added[..., None]
    out[top:bottom, left:right] = np.clip(part + 0.5, 0, 255).astype(np.uint8)
    return out, float(used.sum()) / where.size

