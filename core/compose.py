"""Compositing for the training-free engine v2: exemplar-based completion, full-resolution sampling of
the original photo, and multi-band blending of the mapped person over the completed background.

``complete`` fills a hole with patches from the rest of a picture (Wexler-style, coarse to fine) using
the project's own ``PatchMatch`` (core/patchmatch.py, no GRU) on patch descriptors that also carry
where a patch is (so the hole continues the texture beside it), with random-search seeds; the coarsest
level is matched densely. It returns a *shift map* (where each pixel copies from), not colours, so the
fill is finally sampled from the full-resolution picture: sharp, never a blurred inpaint.
``front_layer`` decides which of the input's person pixels the person layer keeps (docs/engine.md,
"Engine v2 compositing").
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from core.corr import pixel_grid
from core.patchmatch import LevelMatch, PatchMatch, seed_offsets

PATCH_RADIUS = 2  # 5x5 patches
COARSEST = 24  # the dense level's longer side
RANDOM = 3  # candidates replaced by random-search draws before each PatchMatch call
COARSE_EXTRA = 1  # extra EM rounds on the coarsest level (cheap there; it sets the structure)
LOCALITY = 2.0  # weight of where a patch is beside what it shows (see ``_features``)
CHANNELS = 16  # principal directions kept of the 75-dimensional patches
FINE_ROUNDS = 1  # EM rounds on the finest level (the coarser levels have set the structure)
FINE_ITERATIONS = 1  # PatchMatch iterations per round there
MAX_PIECES = 8  # pieces of a hole completed apart (more: one box for all)
SCENE_ROWS = 3.0  # ``rows`` for a scene behind a person: a source's distance in rows costs this times its
# distance in columns, so a horizon or a table's edge runs on sideways behind the person
SOURCES = 3  # the completion's box holds at least this times the hole's area of sources


class _Describer:
    """(1, 3, h, w) pictures in [0, 1] -> (1, CHANNELS + 3, h, w) unit patch descriptors: 5x5 colour
    patches projected on their principal directions (found once, on the first picture: one level's
    rounds describe the same picture, refilled), two channels for where the patch is (``LOCALITY``
    times the mean descriptor norm per ``extent`` pixels: distant sources cost more, so the hole
    continues the texture beside it), lifted onto a sphere so that cosine similarity ranks by L2."""

    def __init__(self, first: torch.Tensor, extent: float, rows: float = 1.0):
        self.mean = first.mean((2, 3), keepdim=True)
        patches = self._patches(first)
        sample = patches[:: max(1, len(patches) // 4096)]
        centred = (sample - sample.mean(0)).double()
        _, vecs = torch.linalg.eigh(centred.t() @ centred)  # ascending eigenvalues (torch's LAPACK: numpy's
        # OpenBLAS threads would fight torch's for the cores)
        self.basis = vecs.flip(1)[:, :CHANNELS].float()  # (75, CHANNELS)
        h, w = first.shape[-2:]
        self.where = pixel_grid(h, w, "cpu").reshape(2, -1).t() / max(extent, 1.0)  # (N, 2)
        self.where *= torch.tensor([rows, 1.0])

    def _patches(self, image: torch.Tensor) -> torch.Tensor:
        padded = F.pad(image - self.mean, (PATCH_RADIUS,) * 4, mode="replicate")
        return F.unfold(padded, 2 * PATCH_RADIUS + 1)[0].t()  # (N, 75)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        proj = self._patches(image) @ self.basis  # (N, CHANNELS)
        proj = torch.cat([proj, self.where * (LOCALITY * proj.norm(dim=1).mean())], 1)
        radius = proj.norm(dim=1).max().clamp_min(1e-6) * 1.01
        lift = (radius**2 - proj.square().sum(1, keepdim=True)).clamp_min(0).sqrt()
        return (torch.cat([proj, lift], 1) / radius).t().reshape(1, -1, h, w)


VOTES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # a work cell and its four neighbours


@dataclass
class _Part:
    """One box of the picture and the offsets of its work grid (a piece of a ``Completion``)."""

    offsets: np.ndarray  # (wh, ww, 2) (row, col) offsets in work pixels; 0 outside the hole
    hole_work: np.ndarray  # (wh, ww) bool
    box: tuple[int, int, int, int]  # (top, left, height, width) of the picture the work grid covers

    def cells(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(N, 2) points -> their work cell (row, col), the cell's size in full-resolution pixels
        (2,) and each point's position from its cell's centre, in cells (N, 2)."""
        top, left, bh, bw = self.box
        wh, ww = self.hole_work.shape
        y = np.clip((points[:, 0] - top + 0.5) * wh / bh, 0, wh - 1e-3)
        x = np.clip((points[:, 1] - left + 0.5) * ww / bw, 0, ww - 1e-3)
        cr, cc = y.astype(np.int64), x.astype(np.int64)
        return cr, cc, np.array([bh / wh, bw / ww], np.float32), np.stack([y % 1 - 0.5, x % 1 - 0.5], 1)

    def offsets_at(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) points -> (V, N, 2) full-resolution offsets of their own work cell and its neighbours
        (a neighbour outside the hole gives the own cell's)."""
        cr, cc, scale, _ = self.cells(points)
        wh, ww = self.hole_work.shape
        own = self.offsets[cr, cc]
        out = np.empty((len(VOTES), len(points), 2), np.float32)
        for v, (dr, dc) in enumerate(VOTES):
            nr, nc = np.clip(cr + dr, 0, wh - 1), np.clip(cc + dc, 0, ww - 1)
            out[v] = np.where(self.hole_work[nr, nc][:, None], self.offsets[nr, nc], own) * scale
        return out


@dataclass
class Completion:
    """Where the pixels of a hole copy from: per piece of the hole, offsets on a work grid over a box
    of the picture, evaluated at any point.

    ``sources(points)`` gives V source positions per point (its own work cell's offset and each
    neighbouring cell's, at full resolution) and ``weights(points)`` how much each counts: the own
    cell's fully at its centre, a neighbour's rising to half at the border they share. So the seams
    between cells that copy from different places blend, and the rest stays as sharp as the source
    (no five-way average). Identity outside the hole."""

    hole: np.ndarray  # (H, W) bool, full resolution
    parts: list[_Part]
    owner: np.ndarray  # (H, W) int: the part each hole pixel belongs to, -1 elsewhere

    def _owners(self, points: np.ndarray) -> np.ndarray:
        h, w = self.hole.shape
        r = np.clip(np.round(points[:, 0]).astype(np.int64), 0, h - 1)
        c = np.clip(np.round(points[:, 1]).astype(np.int64), 0, w - 1)
        return self.owner[r, c]

    def sources(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) (row, col) full-resolution points -> (V, N, 2) where to copy each from."""
        h, w = self.hole.shape
        owner = self._owners(points)
        out = np.broadcast_to(points, (len(VOTES), *points.shape)).astype(np.float32)
        for i, part in enumerate(self.parts):
            mine = owner == i
            if mine.any():
                out[:, mine] += part.offsets_at(points[mine])
        out[..., 0] = out[..., 0].clip(0, h - 1)
        out[..., 1] = out[..., 1].clip(0, w - 1)
        return out

    def weights(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) (row, col) full-resolution points -> (V, N) weights of ``sources``' votes (sum 1)."""
        owner = self._owners(points)
        dy, dx = np.zeros((2, len(points)), np.float32)  # from the cell's centre, in cells
        for i, part in enumerate(self.parts):
            mine = owner == i
            if mine.any():
                dy[mine], dx[mine] = part.cells(points[mine])[3].T
        out = np.empty((len(VOTES), len(points)), np.float32)
        for v, (vr, vc) in enumerate(VOTES):
            out[v] = 1 - np.abs(dy) - np.abs(dx) if (vr, vc) == (0, 0) else np.maximum(0, vr * dy + vc * dx)
        return out


class _BestMatch(PatchMatch):
    """The project's PatchMatch (propagation and selection; no GRU) without its final soft warp: the
    completion needs each pixel's best candidate only, which selection already keeps first."""

    def warp(self, left, right, exemplar, cand, temperature: float) -> LevelMatch:
        b, h, w, _, k = cand.shape
        positions = pixel_grid(h, w, cand.device).view(1, 1, 2, h, w) + cand.permute(0, 4, 3, 1, 2)
        weights = torch.zeros(b, k, h, w)
        weights[:, 0] = 1
        return LevelMatch(exemplar, positions, weights, weights[:, :1])


def complete(image: np.ndarray, hole: np.ndarray, allowed: np.ndarray | None = None, side: int = 128,
             iterations: int = 2, rows: float = 1.0) -> Completion:
    """Where to copy each pixel of ``hole`` (H, W) bool of ``image`` (H, W, 3) uint8 from, so that it
    is filled with the texture of ``allowed`` (default: everything outside the hole). ``side``: the
    working size of the whole picture; ``rows``: how much more a source's distance in rows costs than in
    columns (``SCENE_ROWS`` for a scene). Each piece of the hole (its connected parts, those nearer
    than a few work pixels together) is worked on in its own box (``source_box``): the cost follows
    the hole, and each piece copies from its own neighbourhood."""
    h, w = hole.shape
    owner = np.full((h, w), -1, np.int32)
    allowed = ~hole if allowed is None else allowed & ~hole
    if not hole.any() or allowed.sum() < 16:
        return Completion(hole & False, [], owner)
    s = min(1.0, side / max(h, w))
    margin = 2 * (PATCH_RADIUS + 1) / s  # full-resolution pixels
    reach = max(1, round(margin))
    joined = cv2.dilate(hole.astype(np.uint8), np.ones((reach, reach), np.uint8))
    count, labels = cv2.connectedComponents(joined, connectivity=8)
    pieces = [labels == i for i in range(1, count)] if count - 1 <= MAX_PIECES else [joined > 0]
    parts = []
    for piece in pieces:
        mine = hole & piece
        part = _complete_box(image, mine, allowed, s, source_box(mine, allowed, margin), iterations, rows)
        if part is not None:
            owner[mine] = len(parts)
            parts.append(part)
    return Completion(hole & (owner >= 0), parts, owner)


def _complete_box(image: np.ndarray, hole: np.ndarray, allowed: np.ndarray, s: float,
                  box: tuple[int, int, int, int], iterations: int, rows: float) -> _Part | None:
    """``complete`` in one box (top, left, height, width) at scale ``s``: Wexler-style EM, coarse to fine,
    the coarsest level matched densely; None when the box holds too few sources."""
    h, w = hole.shape
    top, left, bh, bw = box
    wh, ww = max(8, round(bh * s)), max(8, round(bw * s))
    levels = 1
    while max(wh, ww) / 2 ** levels >= COARSEST and min(wh, ww) / 2 ** levels >= 8:
        levels += 1
    # Sides divisible by 2**(levels-1) so each level is exactly twice the coarser one.
    unit = 2 ** (levels - 1)
    wh, ww = max(unit, round(wh / unit) * unit), max(unit, round(ww / unit) * unit)
    crop = (slice(top, top + bh), slice(left, left + bw))
    img = torch.from_numpy(cv2.resize(image[crop], (ww, wh), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    img = img.float() / 255
    # A work cell is in the hole if any of its pixels is, a source if all of them are allowed.
    hole_t = torch.from_numpy(cv2.resize(hole[crop].astype(np.float32), (ww, wh), interpolation=cv2.INTER_AREA) > 0)
    ok_t = torch.from_numpy(cv2.resize(allowed[crop].astype(np.float32), (ww, wh), interpolation=cv2.INTER_AREA) > 0.99)
    ok_t &= ~hole_t
    if int(ok_t.sum()) < 4 or not hole_t.any():
        return None
    extent = max(h, w) * s  # the locality prior's unit: the whole picture's working side (not the box's)
    pm = _BestMatch(0, 9, use_gru=False)
    generator = torch.Generator().manual_seed(0)  # the same fill every run
    offsets = None
    for level in reversed(range(levels)):
        f = 2 ** level
        lh, lw = wh // f, ww // f
        im = F.avg_pool2d(img, f) if f > 1 else img.clone()
        hl = F.max_pool2d(hole_t[None, None].float(), f)[0, 0] > 0 if f > 1 else hole_t
        ok = (F.avg_pool2d(ok_t[None, None].float(), f)[0, 0] > 0.99 if f > 1 else ok_t) & ~hl
        if int(ok.sum()) < 4:
            continue
        src_ok = F.max_pool2d((~ok)[None, None].float(), 2 * PATCH_RADIUS + 1, 1, PATCH_RADIUS)[0, 0] == 0
        src_ok = src_ok if int(src_ok.sum()) >= 4 else ok
        grid = pixel_grid(lh, lw, "cpu")  # (2, lh, lw)
        if offsets is None:  # coarsest: a first guess, then dense matching
            # each hole pixel first copies its nearest source: a textured first guess (a smooth inpaint's
            # flat patches would match the flattest sources, a grey band beside stripes)
            _, (iy, ix) = ndimage.distance_transform_edt(~src_ok.numpy(), return_indices=True)
            nearest = torch.stack([torch.from_numpy(iy), torch.from_numpy(ix)]).float() - grid
            im = _fill(im, nearest[None, :, None], hl, grid)
            describe = _Describer(im, extent / f, rows)
            feats = describe(im)
            cand = _window(_dense(feats, feats * src_ok[None, None], src_ok))
        else:  # seeds from the coarser level: its best offset x2 and a 3x3 window around it
            cand = seed_offsets(offsets, 3, 1)
            describe = _Describer(im, extent / f, rows)
        cand = _keep_valid(cand, grid, src_ok)
        sources = torch.nonzero(src_ok).float()  # (S, 2) where patches may be copied from
        rounds, steps = (FINE_ROUNDS, FINE_ITERATIONS) if level == 0 else (iterations, iterations)
        rounds += COARSE_EXTRA if level == levels - 1 else 0
        for i in range(rounds):
            im = _fill(im, cand, hl, grid)
            left_f = describe(im)
            cand = _keep_valid(_random_search(cand, grid, sources, max(lh, lw) / 2 ** (i + 1), generator), grid, src_ok)
            match = pm(left_f, left_f * src_ok[None, None], im, cand, iterations=steps, temperature=0.01)
            cand = match.positions.transpose(1, 2) - grid.view(1, 2, 1, lh, lw)  # (1, 2, K, lh, lw)
            cand = _keep_valid(cand, grid, src_ok)
        offsets = cand[:, :, 0].clone()  # (1, 2, lh, lw): each pixel's best
        offsets[:, :, ~hl] = 0
    if offsets is None:
        return None
    return _Part(offsets[0].permute(1, 2, 0).numpy(), hl.numpy(), box)


def source_box(hole: np.ndarray, allowed: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """(top, left, height, width): the hole's bounding box, grown by ``margin`` pixels and then by half
    its side at a time until it holds ``SOURCES`` times the hole's area of ``allowed`` pixels (or is
    the whole picture). The completion works there only: its cost follows the hole, and the sources
    it copies are the hole's neighbours (the hair round a hole above the hair, not the suit below)."""
    h, w = hole.shape
    rows, cols = np.nonzero(hole)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    need = SOURCES * len(rows)
    grow = margin
    while True:
        t, b = max(0, int(r0 - grow)), min(h, int(np.ceil(r1 + grow)))
        lft, rgt = max(0, int(c0 - grow)), min(w, int(np.ceil(c1 + grow)))
        if (t, lft, b, rgt) == (0, 0, h, w) or allowed[t:b, lft:rgt].sum() >= need:
            return t, lft, b - t, rgt - lft
        grow += 0.5 * max(b - t, rgt - lft)


def _dense(left: torch.Tensor, right: torch.Tensor, src_ok: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w) offsets to each pixel's most similar allowed pixel (exhaustive, coarsest level)."""
    _, c, h, w = left.shape
    sim = left.view(c, -1).t() @ right.view(c, -1)  # (N, N)
    sim[:, ~src_ok.view(-1)] = -2
    best = sim.argmax(1)
    grid = pixel_grid(h, w, "cpu")
    rows = torch.div(best, w, rounding_mode="floor").float().view(h, w)
    cols = (best % w).float().view(h, w)
    return torch.stack([rows - grid[0], cols - grid[1]])[None]


def _random_search(cand, grid, sources, radius: float, generator) -> torch.Tensor:
    """PatchMatch's random search, as extra seeds: the last ``RANDOM`` candidates become one allowed
    position drawn anywhere and the rest drawn within ``radius`` of the best candidate (1, 2, K, h, w)."""
    _, _, k, h, w = cand.shape
    out = cand.clone()
    pick = torch.randint(len(sources), (h * w,), generator=generator)
    out[0, :, k - 1] = sources[pick].t().view(2, h, w) - grid
    for j in range(2, RANDOM + 1):
        jitter = (torch.rand(2, h, w, generator=generator) * 2 - 1) * max(1.0, radius / 2 ** (j - 2))
        out[0, :, k - j] = (cand[0, :, 0] + jitter).round()
    return out


def _window(best: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w) offsets -> (1, 2, 9, h, w): the offset and its 3x3 neighbours."""
    d = torch.tensor([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=best.dtype).t().view(1, 2, 9, 1, 1)
    return best.unsqueeze(2) + d


def _fill(im, cand, hole, grid):
    """Patch voting (Wexler et al. 2007): each hole pixel becomes the mean of what the 5x5 patches
    covering it propose, each patch copied from where its best candidate points."""
    h, w = im.shape[-2:]
    r = PATCH_RADIUS
    at = torch.nonzero(hole)  # (n, 2) hole pixels
    d = torch.tensor([(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)])  # (P, 2)
    # The patch centred at p + d copies p from (p + d + offset(p + d)) - d = p + offset(p + d).
    centre = at[None] + d[:, None]  # (P, n, 2)
    centre[..., 0].clamp_(0, h - 1)
    centre[..., 1].clamp_(0, w - 1)
    off = cand[0, :, 0].round().long()[:, centre[..., 0], centre[..., 1]]  # (2, P, n)
    rows = (at[:, 0] + off[0]).clamp_(0, h - 1)
    cols = (at[:, 1] + off[1]).clamp_(0, w - 1)
    out = im.clone()
    out[0, :, at[:, 0], at[:, 1]] = im[0][:, rows, cols].mean(1)  # (3, n)
    return out


def _keep_valid(cand, grid, src_ok):
    """Candidates pointing at disallowed pixels take the first candidate's offset instead."""
    h, w = src_ok.shape
    pos = (grid.unsqueeze(1) + cand[0]).round().long()
    pos[0].clamp_(0, h - 1)
    pos[1].clamp_(0, w - 1)
    valid = src_ok[pos[0], pos[1]]  # (K, h, w)
    first = cand[:, :, :1].expand_as(cand)
    return torch.where(valid[None, None], cand, first)


def photo_level(photo: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, float]:
    """The picture to sample for a map (H, W, 2) into ``photo``: the original, or where the map shrinks
    it by more than 1.5x (median), a matching level of its area-filtered pyramid (no aliasing); and the
    factor from original pixels to that picture's."""
    det = np.abs(_det(positions))
    shrink = float(np.sqrt(np.median(det))) if det.size else 1.0
    if shrink <= 1.5:
        return photo, 1.0
    sh, sw = max(1, round(photo.shape[0] / shrink)), max(1, round(photo.shape[1] / shrink))
    return cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA), sh / photo.shape[0]


def sample(photo: np.ndarray, positions: np.ndarray, level: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """The photo (any size, uint8) sampled bicubically at ``positions`` (..., 2) (row, col) in its own
    pixels, from ``level`` (default: ``photo_level`` of these positions)."""
    src, factor = level if level is not None else photo_level(photo, positions)
    pos = positions if factor == 1.0 else (positions + 0.5) * factor - 0.5
    if pos.ndim == 2:  # a list of points: remap them as rows of 1024 (OpenCV caps sides at 32767)
        n = len(pos)
        flat = np.zeros((-(-n // 1024) * 1024, 2), np.float32)
        flat[:n] = pos
        flat = flat.reshape(-1, 1024, 2)
    else:
        flat = pos
    out = cv2.remap(src, np.ascontiguousarray(flat[..., 1], np.float32), np.ascontiguousarray(flat[..., 0], np.float32),
                    cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    if pos.ndim == 2:
        return out.reshape(-1, out.shape[-1])[:len(pos)]
    return out


def sample_votes(photo: np.ndarray, votes: np.ndarray, level: tuple[np.ndarray, float],
                 weights: np.ndarray | None = None) -> np.ndarray:
    """``sample`` at each of (V, N, 2) vote positions, averaged by ``weights`` (V, N) (default: evenly):
    (N, 3) uint8. Votes of no weight are not sampled."""
    weights = np.full(votes.shape[:2], 1 / len(votes), np.float32) if weights is None else weights
    total = np.zeros((votes.shape[1], photo.shape[-1]), np.float32)
    for v, w in zip(votes, weights):
        some = w > 0
        if some.any():
            total[some] += sample(photo, v[some], level).astype(np.float32) * w[some, None]
    return np.clip(total + 0.5, 0, 255).astype(np.uint8)


def _det(positions: np.ndarray) -> np.ndarray:
    r_y, r_x = np.gradient(positions[..., 0])
    c_y, c_x = np.gradient(positions[..., 1])
    return r_y * c_x - r_x * c_y


def front_layer(person: np.ndarray, hole: np.ndarray, rim: int) -> np.ndarray:
    """The person layer of the composite: ``person`` (H, W) bool less the pixels of ``hole`` (what the
    exemplar does not show of the person) within ``rim`` pixels of the person's outline. There the
    background shows instead of another part's texture (no rim of suit round the hair); holes deeper
    inside stay the person's, to be filled from its texture."""
    depth = cv2.distanceTransform(person.astype(np.uint8), cv2.DIST_L2, 3)
    return person & ~(hole & (depth <= rim))


def blend(front: np.ndarray, back: np.ndarray, alpha: np.ndarray, levels: int = 3) -> np.ndarray:
    """Multi-band (Laplacian pyramid) blend of two (H, W, 3) uint8 pictures by ``alpha`` (H, W) in [0, 1]:
    low frequencies mix over a wide seam, fine detail over a narrow one (Burt & Adelson 1983)."""
    a = [front.astype(np.float32)]
    b = [back.astype(np.float32)]
    m = [alpha.astype(np.float32)]
    for _ in range(levels):
        if min(a[-1].shape[:2]) < 16:
            break
        a.append(cv2.pyrDown(a[-1]))
        b.append(cv2.pyrDown(b[-1]))
        m.append(cv2.pyrDown(m[-1]))
    out = a[-1] * m[-1][..., None] + b[-1] * (1 - m[-1][..., None])
    for i in range(len(a) - 2, -1, -1):
        size = (a[i].shape[1], a[i].shape[0])
        la = a[i] - cv2.pyrUp(a[i + 1], dstsize=size)
        lb = b[i] - cv2.pyrUp(b[i + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + la * m[i][..., None] + lb * (1 - m[i][..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
