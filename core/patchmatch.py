"""GRU-assisted PatchMatch at one correspondence level: seed, propagate, evaluate, refine, warp.

Candidates are offsets (B, 2, K, H, W): for each pixel, K (row, col) displacements into the
exemplar grid of the same level. The matching mode is chosen once, by class (``MATCHERS``):
- ``PatchMatch`` (learned): continuous positions; the final warp samples features and exemplar
  bilinearly at them, so the loss reaches the GRU through the offsets.
- ``OfficialPatchMatch``: CoCosNet v2's integer indices (row and col clamped, combined as
  row * W + col in float32 and truncated), reproducing its released checkpoint exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core import budget
from core.corr import gather_values, pixel_grid, sample_at, score_indices
from core.environment import reuse_heap
from core.precision import full_precision
from core.update import HiddenInit, UpdateBlock


@dataclass
class LevelMatch:
    """One level's correspondence: the warp and what produced it (for losses and the UI)."""

    warp: torch.Tensor  # (B, V, H, W): the exemplar warped to the input at this level
    positions: torch.Tensor  # (B, K, 2, H, W): candidate (row, col) in this level's exemplar pixels
    weights: torch.Tensor  # (B, K, H, W): softmax weights of the candidates
    confidence: torch.Tensor  # (B, 1, H, W) in [0, 1]: expected cosine similarity
    indices: torch.Tensor | None = None  # (B, H*W, K) long flat indices (official mode)
    cycle: torch.Tensor | None = None  # coarsest level only, when asked: warp mapped back


def index_to_offsets(index: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, M) flat indices -> (B, 2, M, H, W) integer-valued float offsets."""
    b, _, m = index.shape
    flat = index.transpose(1, 2).reshape(b, m, h, w)
    grid = pixel_grid(h, w, index.device).unsqueeze(1)
    return torch.stack([torch.div(flat, w, rounding_mode="floor") - grid[0], flat % w - grid[1]], dim=1).float()


def seed_offsets(best: torch.Tensor, window: int, dilation: int) -> torch.Tensor:
    """Candidates for a level from the coarser level's best offsets (B, 2, H/2, W/2):
    ``2 * offset + d`` for d on a window x window grid (rows outer), nearest-upsampled x2."""
    centering = (window - 1) // 2
    steps = (torch.arange(window, device=best.device, dtype=best.dtype) - centering) * dilation
    d_row = steps.view(window, 1).expand(window, window).reshape(-1)
    d_col = steps.view(1, window).expand(window, window).reshape(-1)
    d = torch.stack([d_row, d_col]).view(1, 2, -1, 1, 1)
    cand = 2 * best.unsqueeze(2) + d  # (B, 2, K, h, w)
    b, _, k, h, w = cand.shape
    return F.interpolate(cand.view(b, 2 * k, h, w), scale_factor=2, mode="nearest").view(b, 2, k, 2 * h, 2 * w)


class PatchMatch(torch.nn.Module):
    """Learned-mode PatchMatch with an optional ConvGRU refinement; one instance serves every fine level.

    Candidates are continuous positions: the final warp samples features and exemplar bilinearly
    at them, so the loss reaches the GRU through the offsets. ``OfficialPatchMatch`` is the
    released checkpoint's integer-index variant. Iterations and temperature are call arguments.

    Internally candidates live pixel-major, (B, H, W, 2, K): that is the GRU's NHWC input as it
    is, and it makes the flat indices (B, H*W, M) contiguous without any transpose.
    """

    def __init__(self, feature_channels: int, candidates: int, hidden: int = 32, motion: int = 64,
                 use_gru: bool = True, chunk_pixels: int = 16384):
        super().__init__()
        self.k = candidates
        self.chunk = chunk_pixels
        self.initial_layer = HiddenInit(feature_channels, hidden) if use_gru else None
        self.refine_net = UpdateBlock(candidates, hidden, motion) if use_gru else None

    def forward(self, left: torch.Tensor, right: torch.Tensor, exemplar: torch.Tensor, offsets: torch.Tensor, *,
                iterations: int, temperature: float, horizontal_first: Sequence[bool] | None = None) -> LevelMatch:
        """left/right: (B, C, H, W) unit features of input and exemplar; exemplar (B, V, H, W);
        offsets (B, 2, K, H, W) seeds. ``horizontal_first[i]`` picks iteration i's order."""
        b, c, h, w = left.shape
        k = self.k
        order = list(horizontal_first) if horizontal_first is not None else [i % 2 == 0 for i in range(iterations)]
        left_flat, right_flat = left.flatten(2), right.flatten(2)  # views for channels_last features
        cand = offsets.permute(0, 3, 4, 1, 2).contiguous()  # (B, H, W, 2, K)
        with self.refine_precision(left.device):
            hidden = self.initial_layer(left, right) if self.refine_net is not None else None
        for it in range(iterations):
            budget.check()  # a request's time budget (app) is checked between iterations
            with torch.no_grad():
                for horizontal in (order[it], not order[it]):
                    cand, top_prob = self._propagate_select(left_flat, right_flat, cand.detach(), horizontal,
                                                            temperature)
            if self.refine_net is not None:
                scores = top_prob.view(b, h, w, k).permute(0, 3, 1, 2)  # (B, K, H, W), NHWC memory
                flow = cand.view(b, h, w, 2 * k).permute(0, 3, 1, 2)  # (B, 2K, H, W): K rows, then K cols
                with self.refine_precision(left.device):
                    hidden, delta = self.refine_net(hidden, scores.to(hidden.dtype), flow.to(hidden.dtype))
                cand = cand + delta.float().permute(0, 2, 3, 1).reshape(b, h, w, 2, k)
        return self.warp(left, right, exemplar, cand, temperature)

    def refine_precision(self, device: torch.device):
        """The ConvGRU's precision under bf16/fp16 autocast: lowered (continuous offsets move a little)."""
        return contextlib.nullcontext()

    def _select(self, left, right, cand, temperature: float, row0: int = 0, height: int | None = None):
        """cand (B, h, W, 2, M) -> best K (B, h, W, 2, K) and their probabilities (B, h*W, K).
        ``cand`` may be the rows row0..row0+h-1 of a map ``height`` rows high (left: all of it)."""
        h, w = cand.shape[1:3]
        index = self.flat_index(cand, row0, height)  # (B, h*W, M)
        query = left if h == (height or h) else left[:, :, row0 * w:(row0 + h) * w]
        prob = F.softmax(score_indices(query, right, index, temperature, self.chunk), dim=-1)
        top_prob, top = torch.topk(prob, self.k, dim=-1)
        return _index_offsets(torch.gather(index, -1, top), h, w, row0), top_prob

    def _propagate_select(self, left, right, cand, horizontal: bool, temperature: float):
        """``_select(_propagate(cand))``; on CPU in bands of about ``chunk`` pixels, so the 3K
        candidates, their indices and scores never exist for the whole map at once (the 512
        level's largest temporaries otherwise). The same matches: every pixel is scored alone."""
        b, h, w, _, k = cand.shape
        rows = h if cand.device.type != "cpu" else max(1, self.chunk // (b * w))
        if rows >= h:
            return self._select(left, right, _propagate(cand, horizontal), temperature)
        best, prob = torch.empty_like(cand), cand.new_empty(b, h * w, k)
        with reuse_heap():  # every band's temporaries have the same sizes: reused heap pages
            for r in range(0, h, rows):
                e = min(r + rows, h)
                lo, hi = (r, e) if horizontal else (max(r - 1, 0), min(e + 1, h))  # vertical: a row of halo
                band = _propagate(cand[:, lo:hi], horizontal)[:, r - lo:e - lo]
                best[:, r:e], prob[:, r * w:e * w] = self._select(left, right, band, temperature, r, h)
        return best, prob

    @staticmethod
    def flat_index(cand: torch.Tensor, row0: int = 0, height: int | None = None) -> torch.Tensor:
        """Offsets (B, h, W, 2, M) -> flat exemplar indices (B, h*W, M): the nearest pixel."""
        return _nearest_index(cand, row0, height)

    def warp(self, left, right, exemplar, cand, temperature: float) -> LevelMatch:
        """Final soft warp over the K continuous candidates ``cand`` (B, H, W, 2, K)."""
        b, h, w, _, k = cand.shape
        grid = pixel_grid(h, w, cand.device).view(1, 2, 1, h, w)
        offsets = cand.permute(0, 3, 4, 1, 2)  # (B, 2, K, H, W)
        positions = (grid + offsets).clamp_min(0)
        positions = torch.stack([positions[:, 0].clamp_max(h - 1), positions[:, 1].clamp_max(w - 1)], 1)
        positions = positions.transpose(1, 2).contiguous()  # (B, K, 2, H, W)
        group = max(1, (self.chunk * 16) // (h * w))  # candidates sampled at once (bounded memory)
        costs = torch.cat([_sampled_cosine(left, right, positions[:, s:s + group])
                           for s in range(0, k, group)], dim=1) / temperature  # (B, K, H, W)
        weights = F.softmax(costs.float(), dim=1)
        warp = 0
        for s in range(0, k, group):
            warp = warp + (sample_at(exemplar, positions[:, s:s + group])
                           * weights[:, None, s:s + group].to(exemplar.dtype)).sum(2)
        return LevelMatch(warp, positions, weights, _confidence(costs, weights, temperature))

    @staticmethod
    def best_offsets(level: LevelMatch) -> torch.Tensor:
        """(B, 2, H, W) offsets of a level's best candidate, rounded: what seeds the next level."""
        h, w = level.weights.shape[-2:]
        best = level.weights.argmax(1, keepdim=True)  # (B, 1, H, W)
        pos = torch.gather(level.positions, 1, best.unsqueeze(2).expand(-1, -1, 2, -1, -1))[:, 0]
        return pos.detach().round() - pixel_grid(h, w, pos.device)


class OfficialPatchMatch(PatchMatch):
    """CoCosNet v2's PatchMatch: integer indices (row and col clamped, combined as row * W + col in
    float32 and truncated), reproducing its released checkpoint exactly. Its GRU gets no gradient."""

    @staticmethod
    def flat_index(cand: torch.Tensor, row0: int = 0, height: int | None = None) -> torch.Tensor:
        return _truncated_index(cand, row0, height)

    def refine_precision(self, device: torch.device):
        """fp32 even under autocast: the GRU's offsets are truncated to integer indices, so a bf16
        rounding picks other pixels (fixture, bf16 GRU: 96.4 % of the 128 indices equal; fp32
        GRU: 99.84 %, as fp32; docs/performance.md). Only the generator is lowered then."""
        return full_precision(device)

    def warp(self, left, right, exemplar, cand, temperature: float) -> LevelMatch:
        """Final soft warp over the K integer candidates: scores and values gathered by index."""
        b, h, w, _, k = cand.shape
        grid = pixel_grid(h, w, cand.device).view(1, 2, 1, h, w)
        index = self.flat_index(cand)  # (B, N, K)
        cost = score_indices(left.flatten(2), right.flatten(2), index, temperature, self.chunk)
        weights = F.softmax(cost, dim=-1)  # (B, N, K)
        warp = gather_values(exemplar.flatten(2), index, weights.to(exemplar.dtype)).view(b, -1, h, w)
        positions = _index_offsets(index, h, w).permute(0, 4, 3, 1, 2) + grid.transpose(1, 2)
        weights_map = weights.transpose(1, 2).reshape(b, k, h, w)
        cost_map = cost.transpose(1, 2).reshape(b, k, h, w)
        return LevelMatch(warp, positions.contiguous(), weights_map, _confidence(cost_map, weights_map, temperature),
                          indices=index.long())

    @staticmethod
    def best_offsets(level: LevelMatch) -> torch.Tensor:
        """Slot 0 of the final indices (at the coarsest level: the top-1 of attention)."""
        h, w = level.weights.shape[-2:]
        return index_to_offsets(level.indices[:, :, :1], h, w)[:, :, 0]


MATCHERS: dict[str, type[PatchMatch]] = {"learned": PatchMatch, "official": OfficialPatchMatch}  # MATCHING_MODES


def _sampled_cosine(left: torch.Tensor, right: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """<left, right sampled bilinearly at positions (B, k, 2, H, W)> -> (B, k, H, W). A bilinear
    sample between unit features is shorter than 1 (0.87 at half a pixel), so it is brought back
    to unit length, or every fractional position would score lower than the integer ones.
    Samples at integer positions are used as they are (bit for bit the plain dot product)."""
    sampled = sample_at(right, positions)  # (B, C, k, H, W)
    dot = (sampled * left.unsqueeze(2)).sum(1)
    on_grid = (positions == positions.round()).all(2)
    norm = torch.linalg.vector_norm(sampled, dim=1).clamp_min(1e-10)
    return torch.where(on_grid, dot, dot / norm)


def _propagate(cand: torch.Tensor, horizontal: bool) -> torch.Tensor:
    """``propagate`` in the pixel-major layout: (B, H, W, 2, K) -> (B, H, W, 2, 3K) as
    [previous neighbour's, own, next neighbour's] offsets; zero offsets at the border."""
    k = cand.shape[-1]
    dim = 2 if horizontal else 1
    n = cand.shape[dim]
    out = cand.new_empty(*cand.shape[:-1], 3 * k)
    out[..., k:2 * k] = cand
    prev, nxt = out[..., :k], out[..., 2 * k:]
    prev.narrow(dim, 1, n - 1).copy_(cand.narrow(dim, 0, n - 1))
    prev.narrow(dim, 0, 1).zero_()
    nxt.narrow(dim, 0, n - 1).copy_(cand.narrow(dim, 1, n - 1))
    nxt.narrow(dim, n - 1, 1).zero_()
    return out


def _clamped_pixels(cand: torch.Tensor, row0: int = 0, height: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets (B, h, W, 2, M) of the query rows row0..row0+h-1 (of ``height``, default h) -> the
    exemplar (row, col) they point at, clamped to the grid."""
    _, h, w, _, _ = cand.shape
    height = height or h
    rows = torch.arange(row0, row0 + h, device=cand.device, dtype=cand.dtype).view(1, h, 1, 1)
    cols = torch.arange(w, device=cand.device, dtype=cand.dtype).view(1, 1, w, 1)
    return (rows + cand[..., 0, :]).clamp_(0, height - 1), (cols + cand[..., 1, :]).clamp_(0, w - 1)


def _nearest_index(cand: torch.Tensor, row0: int = 0, height: int | None = None) -> torch.Tensor:
    """Offsets (B, h, W, 2, M) -> flat index (B, h*W, M) of the nearest pixel: int32, int64 beyond
    2**24 pixels (where float32 stops holding every index exactly)."""
    b, h, w, _, m = cand.shape
    row, col = _clamped_pixels(cand, row0, height)
    if (height or h) * w > _EXACT:
        return row.round_().long().mul_(w).add_(col.round_().long()).view(b, h * w, m)
    return row.round_().mul_(w).add_(col.round_()).int().view(b, h * w, m)  # exact integers in float32


def _truncated_index(cand: torch.Tensor, row0: int = 0, height: int | None = None) -> torch.Tensor:
    """Offsets (B, h, W, 2, M) -> flat index (B, h*W, M) as the released code computes it: float32
    row * W + col, then truncation."""
    b, h, w, _, m = cand.shape
    row, col = _clamped_pixels(cand, row0, height)
    flat = row.float().mul_(w).add_(col.float())
    return (flat.int() if (height or h) * w <= _EXACT else flat.long()).view(b, h * w, m)


_EXACT = 2**24  # float32 holds every integer up to here: index arithmetic in float32 is exact


def _index_offsets(index: torch.Tensor, h: int, w: int, row0: int = 0) -> torch.Tensor:
    """``index_to_offsets`` in the pixel-major layout: (B, h*W, K) integer -> (B, h, W, 2, K) float,
    for the query rows row0..row0+h-1. Float32 division (exact for int32 indices, and vectorised)
    instead of int64 floor division."""
    b, _, k = index.shape
    if index.dtype == torch.int32:  # int32 indices exist only where float32 is exact
        flat = index.float()
        row = torch.div(flat, w, rounding_mode="floor")
        col = flat - row * w
    else:
        row = torch.div(index, w, rounding_mode="floor")
        col = (index - row * w).float()
        row = row.float()
    rows = torch.arange(row0, row0 + h, device=index.device, dtype=row.dtype).view(1, h, 1, 1)
    cols = torch.arange(w, device=index.device, dtype=row.dtype).view(1, 1, w, 1)
    return torch.stack([row.view(b, h, w, k) - rows, col.view(b, h, w, k) - cols], dim=3)


def _confidence(cost: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """Expected cosine similarity of the candidates under their weights, in [0, 1]."""
    return (cost.float() * temperature * weights).sum(1, keepdim=True).clamp(0, 1)
