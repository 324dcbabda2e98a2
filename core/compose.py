"""Compositing for the training-free engine v2: exemplar-based completion, full-resolution sampling of
the original photo, and multi-band blending of the mapped person over the completed background.

``complete`` fills a hole with patches from the rest of a picture (Wexler-style, coarse to fine) using
the project's own ``PatchMatch`` (core/patchmatch.py, no GRU) on patch descriptors that also carry
where a patch is (so the hole continues the texture beside it), with random-search seeds; the coarsest
level is matched densely, on a first guess that (for backgrounds) continues the level structures beside
each part of the hole. It returns a *shift map* (where each pixel copies from), not colours, so the
fill is finally sampled from the full-resolution picture: sharp, never a blurred inpaint.
``front_layer`` decides which of the input's person pixels the person layer keeps (docs/engine.md,
"Engine v2 compositing").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.corr import pixel_grid, score_indices
from core.patchmatch import LevelMatch, PatchMatch, _propagate, seed_offsets

PATCH_RADIUS = 2  # 5x5 patches
COARSEST = 24  # the dense level's longer side
RANDOM = 3  # candidates replaced by random-search draws before each PatchMatch call
COARSE_EXTRA = 1  # extra EM rounds on every level but the finest (cheap there)
LOCALITY = 2.0  # weight of where a patch is beside what it shows (see ``_features``)
CHANNELS = 16  # principal directions kept of the 75-dimensional patches
ACROSS = 3.0  # ``follow``: the first guess's distance scale across a level structure beside a hole part
ALONG = 0.3  # and along it: the known pixels far along a horizon count, those above or below it less
HORIZONTAL = 4.0  # how fast a structure counts less as it leans off the horizontal (cos^this)
GUESS_POWER = 2.0  # the first guess's inverse-distance weights: 1 / distance^(2 x this)
EDGE = 0.03  # a gradient (per channel step, colours in [0, 1]) that makes an edge
SPREAD = (0.06, 0.15, 0.4)  # how far (shares of the work picture's side) a border's edge direction reaches
ZONE_WORTH = 0.8  # a level matches only the zone that reaches what is read when it is under this share
# ``layers``: a level edge (a table top, a horizon) that runs into the hole splits it into layers, each
# filled only from its own side of the edge continued (``_layers``).
LAYER_TILTS = 12.0  # degrees: the steepest edge that counts as level (tried in steps of LAYER_TILT_STEP)
LAYER_TILT_STEP = 2.0
LAYER_LEVEL = 32.0  # a line's score falls as cos(tilt)^this (0.84 at 6 degrees): of the tilts a short edge fits
LAYER_REACH = 0.15  # how far (share of the work picture's side) beside the hole an edge is followed
LAYER_MARGIN = 3  # work pixels next to the hole left out (the person's own outline is no edge)
LAYER_LENGTH = 0.08  # an edge must be seen over at least this share of the side, on one side of the hole
LAYER_CONTINUITY = 0.7  # and be an edge along this share of what is seen there
LAYER_CONTRAST = 0.015  # with this mean contrast there (squared gradients across less along the line, summed
# over channels): a table top 0.02-0.06, a horizon 0.02-0.03; a flag's folds, a rock's outline 0.007-0.013
LAYER_LINES = 2  # at most this many edges split a hole
LAYER_APART = 0.05  # lines closer than this share of the side where one was seen are one edge
LAYER_WEIGHT = 3.0  # squared weight of the one-hot layer channels: a same-layer source always ranks first


def _features(image: torch.Tensor, allowed: torch.Tensor | None = None, locality: float = 0.0) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1] -> (1, CHANNELS + 1, h, w) unit patch descriptors (zero where not allowed):
    5x5 colour patches projected on their principal directions (matching cost grows with channels);
    with ``locality``, two more channels for where the patch is (so far sources cost more)."""
    k = 2 * PATCH_RADIUS + 1
    h, w = image.shape[-2:]
    padded = F.pad(image - image.mean((2, 3), keepdim=True), (PATCH_RADIUS,) * 4, mode="replicate")
    patches = F.unfold(padded, k)[0].t()  # (N, 75)
    sample = patches[:: max(1, len(patches) // 4096)]
    centred = (sample - sample.mean(0)).double()
    _, vecs = torch.linalg.eigh(centred.t() @ centred)  # ascending eigenvalues (torch's LAPACK: numpy's
    # OpenBLAS threads would fight torch's for the cores)
    basis = vecs.flip(1)[:, :CHANNELS].float()  # (75, CHANNELS)
    proj = patches @ basis  # (N, CHANNELS)
    if locality:  # where a patch is, as two more channels: distant sources cost more (continuation)
        where = pixel_grid(h, w, "cpu").reshape(2, -1).t() / max(h, w)
        proj = torch.cat([proj, where * locality * proj.norm(dim=1).mean()], 1)
    # Lift onto a sphere (x -> [x, sqrt(R^2 - |x|^2)] / R): cosine similarity then ranks by L2 distance.
    radius = proj.norm(dim=1).max().clamp_min(1e-6) * 1.01
    lift = (radius**2 - proj.square().sum(1, keepdim=True)).clamp_min(0).sqrt()
    feats = (torch.cat([proj, lift], 1) / radius).t().reshape(1, -1, h, w)
    if allowed is not None:
        feats = feats * allowed
    return feats


def _layered(feats: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
    """(1, C, h, w) unit descriptors with each pixel's layers ``code`` (L, h, w) from ``_layers`` appended,
    weighted ``LAYER_WEIGHT``: a target's similarity with a source becomes (cos + LAYER_WEIGHT [the source
    may be in the target's layer]) / (1 + LAYER_WEIGHT), so a source of the target's own layer ranks above
    every other (and among them, as before); a target with no layer (zeros) ranks sources as before."""
    if code is None:
        return feats
    return torch.cat([feats, code[None] * LAYER_WEIGHT**0.5], 1) / (1 + LAYER_WEIGHT) ** 0.5


VOTES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # a work cell and its four neighbours


@dataclass
class Completion:
    """Where the pixels of a hole copy from: offsets on a work grid, evaluated at any point.

    ``sources(points)`` gives V source positions per point (its own work cell's offset and each
    neighbouring cell's, at full resolution) and ``weights(points)`` how much each counts: the own
    cell's fully at its centre, a neighbour's rising to half at the border they share. So the seams
    between cells that copy from different places blend, and the rest stays as sharp as the source
    (no five-way average). Identity outside the hole."""

    offsets: np.ndarray  # (wh, ww, 2) (row, col) offsets in work pixels; 0 outside the hole
    hole_work: np.ndarray  # (wh, ww) bool
    hole: np.ndarray  # (H, W) bool, full resolution
    _shifts: np.ndarray | None = field(default=None, init=False, repr=False)  # ``_vote_shifts``, once made

    def sources(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) (row, col) full-resolution points -> (V, N, 2) where to copy each from."""
        h, w = self.hole.shape
        wh, ww = self.hole_work.shape
        r = np.clip(np.round(points[:, 0]).astype(np.int64), 0, h - 1)
        c = np.clip(np.round(points[:, 1]).astype(np.int64), 0, w - 1)
        inside = self.hole[r, c]
        cr = np.clip((r * wh) // h, 0, wh - 1)
        cc = np.clip((c * ww) // w, 0, ww - 1)
        shift = self._vote_shifts()[cr, cc]  # (N, V, 2)
        out = points[:, None] + np.where(inside[:, None, None], shift, np.float32(0))
        out[..., 0] = out[..., 0].clip(0, h - 1)
        out[..., 1] = out[..., 1].clip(0, w - 1)
        return np.ascontiguousarray(out.transpose(1, 0, 2), np.float32)

    def _vote_shifts(self) -> np.ndarray:
        """(wh, ww, V, 2) per work cell: each vote's offset in full-resolution pixels (a neighbour outside
        the hole gives the cell's own), computed once."""
        if self._shifts is None:
            h, w = self.hole.shape
            wh, ww = self.hole_work.shape
            scale = np.array([h / wh, w / ww], np.float32)
            cr, cc = np.mgrid[:wh, :ww]
            own = self.offsets[cr, cc]
            shifts = np.empty((wh, ww, len(VOTES), 2), np.float32)
            for v, (dr, dc) in enumerate(VOTES):
                nr, nc = np.clip(cr + dr, 0, wh - 1), np.clip(cc + dc, 0, ww - 1)
                shifts[:, :, v] = np.where(self.hole_work[nr, nc][..., None], self.offsets[nr, nc], own) * scale
            self._shifts = shifts
        return self._shifts

    def weights(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) (row, col) full-resolution points -> (V, N) weights of ``sources``' votes (sum 1)."""
        h, w = self.hole.shape
        wh, ww = self.hole_work.shape
        dy = np.clip((points[:, 0] + 0.5) * wh / h, 0, wh - 1e-3) % 1 - 0.5  # from the cell's centre, in cells
        dx = np.clip((points[:, 1] + 0.5) * ww / w, 0, ww - 1e-3) % 1 - 0.5
        out = np.empty((len(VOTES), len(points)), np.float32)
        for v, (vr, vc) in enumerate(VOTES):
            out[v] = 1 - np.abs(dy) - np.abs(dx) if (vr, vc) == (0, 0) else np.maximum(0, vr * dy + vc * dx)
        return out


class _BestMatch(PatchMatch):
    """The project's PatchMatch (propagation and selection; no GRU) without its final soft warp: the
    completion needs each pixel's best candidate only, which selection already keeps first. With a
    ``zone`` (flat pixel indices), only those pixels select (the same arithmetic as ``PatchMatch``'s);
    the others keep their candidates."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.zone: torch.Tensor | None = None  # (n,) long: the pixels that match; None: all

    def _propagate_select(self, left, right, cand, horizontal: bool, temperature: float):
        if self.zone is None:
            return super()._propagate_select(left, right, cand, horizontal, temperature)
        b, h, w, _, k = cand.shape
        at = self.zone
        prop = _propagate(cand, horizontal).view(b, h * w, 2, 3 * k)[:, at]  # (B, n, 2, 3K)
        rows = torch.div(at, w, rounding_mode="floor").to(cand.dtype).view(1, -1, 1)
        cols = (at % w).to(cand.dtype).view(1, -1, 1)
        row = (rows + prop[:, :, 0]).clamp_(0, h - 1)
        col = (cols + prop[:, :, 1]).clamp_(0, w - 1)
        index = row.round_().mul_(w).add_(col.round_()).int()  # (B, n, 3K) nearest pixels (exact in float32)
        prob = F.softmax(score_indices(left[:, :, at], right, index, temperature, self.chunk), dim=-1)
        top_prob, top = torch.topk(prob, k, dim=-1)
        flat = torch.gather(index, -1, top).float()
        at_row = torch.div(flat, w, rounding_mode="floor")
        best = cand.clone()
        best.view(b, h * w, 2, k)[:, at] = torch.stack([at_row - rows, flat - at_row * w - cols], dim=2)
        return best, top_prob  # the zone's probabilities (B, n, K): no GRU reads them

    def warp(self, left, right, exemplar, cand, temperature: float) -> LevelMatch:
        b, h, w, _, k = cand.shape
        positions = pixel_grid(h, w, cand.device).view(1, 1, 2, h, w) + cand.permute(0, 4, 3, 1, 2)
        weights = torch.zeros(b, k, h, w)
        weights[:, 0] = 1
        return LevelMatch(exemplar, positions, weights, weights[:, :1])


def complete(image: np.ndarray, hole: np.ndarray, allowed: np.ndarray | None = None, side: int = 128,
             iterations: int = 2, need: np.ndarray | None = None, follow: bool = False, layers: bool = False,
             perceptual: bool = False, stitched: bool = False, cancelled: Callable[[], bool] | None = None
             ) -> Completion | None:
    """Where to copy each pixel of ``hole`` (H, W) bool of ``image`` (H, W, 3) uint8 from, so that it
    is filled with the texture of ``allowed`` (default: everything outside the hole). ``need`` (H, W)
    bool: where the caller will read the fill (default: the whole hole). The matching works only within
    reach of it (``_zones``); the fill there is the one matching everywhere gives (all but a few cells
    where the descriptors' whole-picture projection moves a near tie; docs/engine.md, fourth session).
    ``follow`` (backgrounds): the first guess of the coarsest level continues the level structures that
    border each part of the hole (``_structure_metric``, ``_directed_guess``: a horizon or a table top
    goes on along its rows) instead of OpenCV's isotropic inpainting, which closes sky and ground over it
    in a diagonal ramp that the matching then copies in blocks (the launch pad's "tripod").
    ``layers`` (with ``follow``; a person's hole in a scene): a level edge that runs into the hole (a table
    top, a horizon) splits it, each side filled from its own side of the edge (``_layers``): the table's
    black under its edge, the backdrop above, not one grey slab of their mean.
    ``perceptual`` (with ``follow``): on every level but the finest, patches are compared, guessed and voted in
    CIELab (``_cielab``), where a colour difference is what it looks like; those levels decide the zones a hole is
    copied from and where they meet. In RGB, where a hole's navy zone meets its light-blue zone, the seam's
    patches (dark one side, light the other) matched a flag's red-and-white stripe edge best (the red nearer the
    navy, the white nearer the blue, than navy is to blue) and drew a red line down the seam; in CIELab the navy
    zone's own continuation is nearer. The finest level stays RGB: in CIELab there it raised two cross pairs'
    coherence (docs/engine.md, eighth session, engineer C).
    ``stitched`` (a person's hole in an exemplar's background): the result is then stitched from a few dominant
    shifts of the picture with the completion's own offsets as one more label (``core/stitch.py``), so where the
    picture repeats (a flag) a part of the hole is one whole shifted copy, not a flat copy of one dark patch.
    ``cancelled``: asked before each level and each matching round; once it says so, the work stops there
    and None is returned (a job whose fill is no longer wanted frees its core at once)."""
    if perceptual and not follow:
        raise ValueError("perceptual matching is for backgrounds completed with follow")
    h, w = hole.shape
    none = Completion(np.zeros((1, 1, 2), np.float32), np.zeros((1, 1), bool), np.zeros_like(hole))
    allowed = ~hole if allowed is None else allowed & ~hole
    if not hole.any() or allowed.sum() < 16:
        return none
    s = min(1.0, side / max(h, w))
    wh, ww = max(8, round(h * s)), max(8, round(w * s))
    levels = 1
    while max(wh, ww) / 2 ** levels >= COARSEST and min(wh, ww) / 2 ** levels >= 8:
        levels += 1
    # Sides divisible by 2**(levels-1) so each level is exactly twice the coarser one.
    unit = 2 ** (levels - 1)
    wh, ww = max(unit, round(wh / unit) * unit), max(unit, round(ww / unit) * unit)
    img = torch.from_numpy(cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    img = img.float() / 255
    hole_t = torch.from_numpy(cv2.resize(hole.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST) > 0)
    ok_t = torch.from_numpy(cv2.resize(allowed.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST) > 0)
    ok_t &= ~hole_t
    if int(ok_t.sum()) < 4:
        return none
    rounds = {level: iterations if level == 0 else iterations + COARSE_EXTRA for level in range(levels)}
    zones = _zones(_cells(hole if need is None else need, (wh, ww)), hole_t, levels, rounds, iterations)
    pm = _BestMatch(0, 9, use_gru=False)
    generator = torch.Generator().manual_seed(0)  # the same fill every run
    split = _layers(img, hole_t, ok_t) if follow and layers else None  # (targets, sources) (L, wh, ww) or None
    look = _cielab(image, (ww, wh)) if perceptual else img  # the coarser levels' colours (the guides stay RGB)
    offsets = None
    for level in reversed(range(levels)):
        if cancelled is not None and cancelled():
            return None
        f = 2 ** level
        lh, lw = wh // f, ww // f
        im = F.avg_pool2d(look, f) if f > 1 else img.clone()  # CIELab on the coarser levels, RGB on the finest
        hl = F.max_pool2d(hole_t[None, None].float(), f)[0, 0] > 0 if f > 1 else hole_t
        ok = (F.avg_pool2d(ok_t[None, None].float(), f)[0, 0] > 0.99 if f > 1 else ok_t) & ~hl
        if int(ok.sum()) < 4:
            continue
        src_ok = F.max_pool2d((~ok)[None, None].float(), 2 * PATCH_RADIUS + 1, 1, PATCH_RADIUS)[0, 0] == 0
        src_ok = src_ok if int(src_ok.sum()) >= 4 else ok
        grid = pixel_grid(lh, lw, "cpu")  # (2, lh, lw)
        # (L, lh, lw) each cell's centre's layers as a target and as a source
        targets, sources_in = (None, None) if split is None else (code[:, f // 2::f, f // 2::f] for code in split)
        if offsets is None:  # coarsest: a smooth first guess, then dense matching
            if not follow:
                small = (im[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                im = torch.from_numpy(cv2.inpaint(small, hl.numpy().astype(np.uint8), 3, cv2.INPAINT_TELEA))
                im = im.permute(2, 0, 1)[None].float() / 255
            else:  # inverse-distance weighting along the structures beside each part (no diagonal ramps)
                im = _directed_guess(im, hl, ok, _structure_metric(img, hole_t, f), targets, sources_in)
            feats = _features(im, locality=LOCALITY)
            cand = _window(_dense(_layered(feats, targets), _layered(feats, sources_in) * src_ok[None, None], src_ok))
        else:  # seeds from the coarser level: its best offset x2 and a 3x3 window around it
            cand = seed_offsets(offsets, 3, 1)
        cand = _keep_valid(cand, grid, src_ok)
        sources = torch.nonzero(src_ok).float()  # (S, 2) where patches may be copied from
        # Matching a zone costs a gather per step: worth it when it leaves out a good part of the level.
        pm.zone = None if zones[level].mean() > ZONE_WORTH else torch.from_numpy(np.flatnonzero(zones[level]))
        for i in range(rounds[level]):
            if cancelled is not None and cancelled():
                return None
            im = _fill(im, cand, hl, grid)
            feats = _features(im, locality=LOCALITY)
            left, right = _layered(feats, targets), _layered(feats, sources_in) * src_ok[None, None]
            cand = _keep_valid(_random_search(cand, grid, sources, max(lh, lw) / 2 ** (i + 1), generator), grid, src_ok)
            match = pm(left, right, im, cand, iterations=iterations, temperature=0.01)
            cand = match.positions.transpose(1, 2) - grid.view(1, 2, 1, lh, lw)  # (1, 2, K, lh, lw)
            cand = _keep_valid(cand, grid, src_ok)
        offsets = cand[:, :, 0].clone()  # (1, 2, lh, lw): each pixel's best (the matcher keeps it first)
        offsets[:, :, ~hl] = 0
    if offsets is None:
        return none
    if stitched and levels > 1:
        if cancelled is not None and cancelled():
            return None
        from core.stitch import stitch  # (it uses this module's helpers)

        offsets = stitch(img, hl, ok_t & ~hl, offsets[0], _features(F.avg_pool2d(img, 2)))[None]
    return Completion(offsets[0].permute(1, 2, 0).numpy(), hl.numpy(), hole)


def _cielab(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float CIELab at the work size ``size`` (w, h), every channel / 100:
    Euclidean distances are then CIE76 colour differences (/ 100), near what a person sees."""
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return torch.from_numpy(cv2.cvtColor(small, cv2.COLOR_RGB2LAB) / 100).permute(2, 0, 1)[None].contiguous()


def _structure_metric(image: torch.Tensor, hole: torch.Tensor, factor: int = 1) -> torch.Tensor:
    """(1, 3, h, w) picture and its (h, w) bool hole -> (3, h / factor, w / factor) per pixel a metric M
    (its yy, yx, xx entries) for ``_directed_guess``'s distances on the level ``factor`` times coarser.
    Each known pixel on an edge votes for its edge's direction, as much as its neighbourhood agrees on
    it (the local structure tensor's coherence: a horizon or a table top votes, grass or noise hardly);
    the votes spread into the hole (normalized convolution over the edge pixels, narrow near them, wider
    deeper in). Where they agree on a level direction, moving along it costs ``ALONG``^2 and across it
    ``ACROSS``^2; where they disagree, lean (a hanging flag's folds) or nothing borders, the identity."""
    h, w = hole.shape
    known = (F.max_pool2d(hole[None, None].float(), 5, 1, 2)[0, 0] == 0).float()  # gradients not touching it
    smooth = _blur(image, 1.0)
    gy = F.pad(smooth[..., 2:, 1:-1] - smooth[..., :-2, 1:-1], (1, 1, 1, 1)) * 0.5  # (1, 3, h, w)
    gx = F.pad(smooth[..., 1:-1, 2:] - smooth[..., 1:-1, :-2], (1, 1, 1, 1)) * 0.5
    local = _blur(torch.cat([(gy * gy).sum(1, keepdim=True), (gy * gx).sum(1, keepdim=True),
                             (gx * gx).sum(1, keepdim=True)], 1), 1.5)  # (1, 3, h, w) structure tensor
    trace = local[:, 0] + local[:, 2]
    edge = (trace > EDGE**2).float() * known  # (1, h, w) known pixels on an edge
    votes = _coherence(local[0]) ** 2 * edge[0]  # (h, w): how much each edge pixel's direction counts
    unit = local / trace.clamp_min(1e-12)[:, None]  # unit-trace tensors: directions, not contrast
    stack = torch.cat([unit * votes, edge[None]], 1)
    if factor > 1:  # spread on the coarse level (the wide blurs cost factor^3 less)
        stack = F.avg_pool2d(stack, factor)
        h, w = stack.shape[-2:]
    # Near edges the narrow spread decides; deeper in a hole the wider ones (each one's share falls tenfold).
    spread = sum(_blur(stack, reach * max(h, w)) * 0.1**i for i, reach in enumerate(SPREAD))
    field = spread[0, :3] / spread[0, 3:].clamp_min(1e-6)
    strength = _coherence(field) * (field[0] + field[2])  # agreeing votes among the edges that reach here
    field = field / (field[0] + field[2]).clamp_min(1e-12)
    angle = 0.5 * torch.atan2(2 * field[1], field[0] - field[2])  # of the gradient n from the row axis
    ny, nx = torch.cos(angle), torch.sin(angle)
    strength = strength.clamp(0, 1) * ny**HORIZONTAL  # layers of a scene lie level: horizons, table tops, floors
    across = 1 + strength * (ACROSS**2 - 1)
    along = 1 + strength * (ALONG**2 - 1)
    # M = across n n^T + along e e^T, e = (-nx, ny).
    return torch.stack([across * ny * ny + along * nx * nx, (across - along) * ny * nx,
                        across * nx * nx + along * ny * ny])


def _directed_guess(im: torch.Tensor, hole: torch.Tensor, known: torch.Tensor, metric: torch.Tensor,
                    targets: torch.Tensor | None = None, sources: torch.Tensor | None = None) -> torch.Tensor:
    """(1, 3, h, w) coarse picture with its hole filled by inverse-distance weighting of the ``known``
    pixels (Shepard), distances measured in each hole pixel's ``metric`` (3, h, w): along a horizon the
    nearest known pixels are those of its rows, so the guess continues it (isotropic diffusion, as
    OpenCV's inpainting, blurs it into a diagonal ramp). With the layers (``_layers``' ``targets`` and
    ``sources``), each hole pixel is guessed from the known pixels that may be in its layer (when any are)."""
    h, w = hole.shape
    at = torch.nonzero(hole)  # (n, 2)
    src = torch.nonzero(known)  # (S, 2)
    if not len(at) or not len(src):
        return im
    d = (src[None].float() - at[:, None].float()) / max(h, w)  # (n, S, 2)
    m = metric[:, at[:, 0], at[:, 1]].t()  # (n, 3)
    dist2 = m[:, :1] * d[..., 0] ** 2 + 2 * m[:, 1:2] * d[..., 0] * d[..., 1] + m[:, 2:] * d[..., 1] ** 2
    weight = dist2.clamp_min(1e-6) ** -GUESS_POWER  # (n, S)
    if targets is not None:  # the table's black under its edge, the backdrop above it: never their grey mean
        same = targets[:, at[:, 0], at[:, 1]].t() @ sources[:, src[:, 0], src[:, 1]] > 0  # (n, S)
        weight = torch.where(same | ~same.any(1, keepdim=True), weight, torch.zeros(()))
    weight = weight / weight.sum(1, keepdim=True)
    colours = im[0][:, src[:, 0], src[:, 1]]  # (3, S)
    out = im.clone()
    out[0][:, at[:, 0], at[:, 1]] = colours @ weight.t()
    return out


def _layers(image: torch.Tensor, hole: torch.Tensor, known: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(1, 3, h, w) picture, its (h, w) bool hole and the pixels ``known`` to copy from (default: all but the hole;
    edges are read there only, so the outline of a person kept out of the sources is no edge) -> the layer (L,
    h, w) one-hot each pixel is in as a target (zeros off the lines' course: any source) and as a source, or
    None when no level edge runs into the hole. A level edge (a table top, a horizon: a straight line tilted at
    most ``LAYER_TILTS`` degrees) counts when, beside the hole on at least one side, it is an edge along
    ``LAYER_CONTINUITY`` of at least ``LAYER_LENGTH`` of the side with ``LAYER_CONTRAST`` (the strongest
    ``LAYER_LINES``, one per place). Each such line, continued across the picture, splits it: a pixel's layer is
    the number of lines above it. A hole pixel keeps to its layer where the line runs from where it was seen
    across the hole to the hole's far side (``_course``), not beyond (so a wider shot's table is not continued
    on the far side of the picture, through a flag). So the part of a hole under a table's edge is filled from
    under that edge (the table), the part above it from above (the backdrop), each with its own texture instead
    of their grey mean."""
    h, w = hole.shape
    side = max(h, w)
    smooth = _blur(image, 1.0)
    gy = F.pad(smooth[..., 2:, 1:-1] - smooth[..., :-2, 1:-1], (1, 1, 1, 1))[0] * 0.5  # (3, h, w)
    gx = F.pad(smooth[..., 1:-1, 2:] - smooth[..., 1:-1, :-2], (1, 1, 1, 1))[0] * 0.5
    # The structure tensor's (yy - xx, 2 yx): with the line's tilt t, across it less along it is
    # cos(2t) (yy - xx) - sin(2t) 2 yx (normal (cos t, -sin t) in (row, col)).
    split_yx = torch.stack([(gy * gy - gx * gx).sum(0), 2 * (gy * gx).sum(0)])  # (2, h, w)
    unknown = hole if known is None else ~known | hole
    near = F.max_pool2d(unknown[None, None].float(), 2 * LAYER_MARGIN + 1, 1, LAYER_MARGIN)[0, 0] > 0
    tilts = torch.deg2rad(torch.arange(-LAYER_TILTS, LAYER_TILTS + 1e-3, LAYER_TILT_STEP))  # (T,)
    slope = torch.tan(tilts)
    centre = (w - 1) / 2
    pad = int(np.ceil(float(slope.abs().max()) * w / 2)) + 1
    y0 = torch.arange(-pad, h + pad, dtype=torch.float32)  # (Y,) where a line crosses the centre column
    xs = torch.arange(w, dtype=torch.float32)
    ys = (y0.view(1, -1, 1) + slope.view(-1, 1, 1) * (xs - centre)).round().long()  # (T, Y, w)
    inside = (ys >= 0) & (ys < h)
    yc = ys.clamp(0, h - 1)
    index = torch.arange(w).expand_as(yc)
    flat = yc * w + index  # (T, Y, w) the pixel under each point of each line
    cos2, sin2 = torch.cos(2 * tilts).view(-1, 1, 1), torch.sin(2 * tilts).view(-1, 1, 1)
    # How much of an edge along the line each pixel is: across the line less along it.
    contrast = (cos2 * split_yx[0].take(flat) - sin2 * split_yx[1].take(flat)) * inside  # (T, Y, w)
    edge = contrast > EDGE**2
    in_hole = hole.take(flat) & inside
    usable = inside & ~near.take(flat)
    big = 4 * w
    left_hole = torch.cummax(torch.where(in_hole, index, -big), dim=2).values  # the nearest hole column before
    right_hole = -torch.cummax(torch.where(in_hole, -index, -big).flip(2).contiguous(), dim=2).values.flip(2)
    # (and after)
    reach = LAYER_REACH * side
    score = torch.zeros(ys.shape[:2])
    evidence = torch.zeros(ys.shape, dtype=torch.bool)  # (T, Y, w): the edge pixels a line is counted on
    for band in ((index - left_hole <= reach) & usable, (right_hole - index <= reach) & usable):
        seen = band.sum(2)
        on_edge = band & edge
        on = on_edge.sum(2)
        # The side's contrast along the line: highest on the edge's own course (a tilt or a row off it
        # still runs inside a short edge's width, with less contrast).
        energy = (contrast * on_edge).sum(2)
        ok = (seen >= LAYER_LENGTH * side) & (on >= LAYER_CONTINUITY * seen) & (energy >= LAYER_CONTRAST * on)
        score = torch.maximum(score, torch.where(ok, energy, torch.zeros(())))
        evidence |= on_edge & ok[..., None]
    score *= torch.cos(tilts).view(-1, 1) ** LAYER_LEVEL  # a short edge fits several tilts: the most level
    if not bool((score > 0).any()):
        return None
    rows_grid = torch.arange(h, dtype=torch.float32).view(-1, 1)
    layer = torch.zeros(h, w, dtype=torch.long)  # per pixel: how many lines it lies under
    split = torch.ones(w, dtype=torch.bool)  # the columns where every line runs its course
    for _ in range(LAYER_LINES):
        best = int(score.argmax())
        t, y = divmod(best, score.shape[1])
        if float(score[t, y]) <= 0:
            break
        seen_at = evidence[t, y]
        layer += (rows_grid > y0[y] + slope[t] * (xs - centre)).long()
        split &= _course(seen_at, in_hole[t, y], near.take(flat[t, y]), reach)
        # One edge, one line: every line passing near it where it was seen (other tilts, the edge's width).
        score[((ys[..., seen_at] - ys[t, y, seen_at]).abs() <= LAYER_APART * side).any(-1)] = 0
    sources = F.one_hot(layer, int(layer.max()) + 1).permute(2, 0, 1).float()  # (L, h, w)
    targets = sources * split  # a hole pixel off a line's course may copy from any layer
    return targets, sources


def _course(seen: torch.Tensor, hole: torch.Tensor, near: torch.Tensor, reach: float) -> torch.Tensor:
    """(w,) bool columns along a line where it splits the picture: where it was ``seen`` as an edge, on to
    the hole beside it and across the hole to its far side (``near``: the hole's margin, crossed too);
    not past it (a table seen right of a person is not continued through the flag left of her)."""
    w = len(seen)
    at = torch.nonzero(seen).flatten()
    course = torch.zeros(w, dtype=torch.bool)
    lo, hi = int(at.min()), int(at.max())
    course[lo:hi + 1] = True
    for step, start in ((-1, lo - 1), (1, hi + 1)):
        c, crossed = start, False
        while 0 <= c < w and (hole[c] or near[c] or (not crossed and abs(c - start) <= reach)):
            crossed |= bool(hole[c])
            c += step
        if crossed:  # the line ran into the hole on this side: it splits up to the hole's far edge
            course[min(start, c - step):max(start, c - step) + 1] = True
    return course


def _coherence(tensor: torch.Tensor) -> torch.Tensor:
    """(3, h, w) structure tensors (yy, yx, xx) -> (h, w) (l1 - l2) / (l1 + l2) in [0, 1]."""
    half_gap = ((tensor[0] - tensor[2]).square() * 0.25 + tensor[1].square()).sqrt()
    return (half_gap / ((tensor[0] + tensor[2]) * 0.5).clamp_min(1e-12)).clamp(0, 1)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(1, C, h, w) Gaussian blur (separable, replicated borders)."""
    r = max(1, min(int(3 * sigma), max(x.shape[-2:]) - 1))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _cells(need: np.ndarray, work: tuple[int, int]) -> np.ndarray:
    """(wh, ww) bool: the work cells ``Completion.sources`` reads for the pixels ``need`` (H, W): each
    one's own cell and its four neighbours."""
    h, w = need.shape
    rows, cols = np.nonzero(need)
    cells = np.zeros(work, np.uint8)
    cells[np.clip((rows * work[0]) // h, 0, work[0] - 1), np.clip((cols * work[1]) // w, 0, work[1] - 1)] = 1
    return cv2.dilate(cells, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))) > 0


def _reach(rounds: int, iterations: int) -> int:
    """How far (work pixels, any direction) a level's matching carries a pixel's state: per round, the
    patch vote (a patch's radius), the descriptors (another) and each of the PatchMatch's 2 x
    ``iterations`` propagation steps (one pixel each). (The descriptors' projection and scale are the
    whole picture's: far pixels move them a little, so a zone's fill is the same in all but a few cells.)"""
    return rounds * (2 * PATCH_RADIUS + 2 * iterations)


def _zones(cells: np.ndarray, hole: torch.Tensor, levels: int, rounds: dict[int, int], iterations: int
           ) -> dict[int, np.ndarray]:
    """Per level, the (h, w) bool pixels to match so that the offsets at ``cells`` (the finest level's
    work cells) come out as over the whole picture: what is needed, grown by ``_reach``; the coarser
    level needs its hole cells under that zone (they seed it)."""
    zones: dict[int, np.ndarray] = {}
    want = cells
    for level in range(levels):
        grow = 2 * _reach(rounds[level], iterations) + 1
        zones[level] = cv2.dilate(want.astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0
        if level + 1 < levels:
            coarse = (F.max_pool2d(hole[None, None].float(), 2 ** (level + 1))[0, 0] > 0).numpy()
            zone = torch.from_numpy(zones[level]).float()[None, None]
            want = (F.max_pool2d(zone, 2)[0, 0] > 0).numpy() & coarse
    return zones


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
    covering it propose, each patch copied from where its best candidate points (hole pixels only)."""
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


def _best(match, grid) -> torch.Tensor:
    """(1, 2, h, w): the offset of each pixel's highest-weighted candidate."""
    top = match.weights.argmax(1, keepdim=True)  # (1, 1, h, w)
    pos = torch.gather(match.positions, 1, top.unsqueeze(2).expand(-1, -1, 2, -1, -1))[:, 0]
    return pos - grid[None]


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
