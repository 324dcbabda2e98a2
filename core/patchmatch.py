"""GRU-assisted PatchMatch at one correspondence level: seed, propagate, evaluate, refine, warp.

Candidates are offsets (B, 2, K, H, W): for each pixel, K (row, col) displacements into the
exemplar grid of the same level. Two ways to turn offsets into exemplar pixels:
- ``official``: CoCosNet v2's integer indices (row and col clamped, combined as row * W + col in
  float32 and truncated), reproducing its released checkpoint exactly. Its GRU gets no gradient.
- ``learned``: continuous positions; the final warp samples features and exemplar bilinearly
  at them, so the loss reaches the GRU through the offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.corr import gather_values, normalize_features, pixel_grid, sample_at, score_indices
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


def offsets_to_index(offsets: torch.Tensor, official: bool) -> torch.Tensor:
    """(B, 2, M, H, W) offsets -> (B, H*W, M) long flat indices into the same-size grid."""
    _, _, m, h, w = offsets.shape
    grid = pixel_grid(h, w, offsets.device, offsets.dtype).unsqueeze(1)  # (2, 1, H, W)
    row = (grid[0] + offsets[:, 0]).clamp(0, h - 1)
    col = (grid[1] + offsets[:, 1]).clamp(0, w - 1)
    if official:  # float32 arithmetic then truncation, as the released code does
        flat = (row.float() * w + col.float()).long()
    else:
        flat = row.round().long() * w + col.round().long()
    return flat.flatten(2).transpose(1, 2)


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


def propagate(offsets: torch.Tensor, horizontal: bool) -> torch.Tensor:
    """Add the neighbours' candidates: (B, 2, K, H, W) -> (B, 2, 3K, H, W) as
    [from previous neighbour, own, from next neighbour]; zero offsets at the border."""
    dim = -1 if horizontal else -2
    n = offsets.shape[dim]
    zero = torch.zeros_like(offsets.narrow(dim, 0, 1))
    prev = torch.cat([zero, offsets.narrow(dim, 0, n - 1)], dim=dim)
    nxt = torch.cat([offsets.narrow(dim, 1, n - 1), zero], dim=dim)
    return torch.cat([prev, offsets, nxt], dim=2)


class PatchMatch(torch.nn.Module):
    """PatchMatch with an optional ConvGRU refinement; one instance serves every fine level.

    Internally candidates live pixel-major, (B, H, W, 2, K): that is the GRU's NHWC input as it
    is, and it makes the flat indices (B, H*W, M) contiguous without any transpose.
    """

    def __init__(self, feature_channels: int, candidates: int, iterations: int, temperature: float,
                 hidden: int = 32, motion: int = 64, use_gru: bool = True, official: bool = False,
                 chunk_pixels: int = 16384):
        super().__init__()
        self.k = candidates
        self.iterations = iterations
        self.temperature = temperature
        self.official = official
        self.chunk = chunk_pixels
        self.initial_layer = HiddenInit(feature_channels, hidden) if use_gru else None
        self.refine_net = UpdateBlock(candidates, hidden, motion) if use_gru else None

    def evaluate(self, left, right, offsets):
        """Score all candidates (B, 2, M, H, W), keep the best K: returns (offsets, top-K probabilities)."""
        b, _, _, h, w = offsets.shape
        best, top_prob = self._select(left, right, offsets.permute(0, 3, 4, 1, 2).contiguous())
        return best.permute(0, 3, 4, 1, 2), top_prob.transpose(1, 2).reshape(b, self.k, h, w)

    def _select(self, left, right, cand):
        """cand (B, H, W, 2, M) -> best K (B, H, W, 2, K) and their probabilities (B, H*W, K)."""
        index = _flat_index(cand, self.official)  # (B, N, M)
        prob = F.softmax(score_indices(left, right, index, self.temperature, self.chunk), dim=-1)
        top_prob, top = torch.topk(prob, self.k, dim=-1)
        return _index_offsets(torch.gather(index, -1, top), *cand.shape[1:3]), top_prob

    def forward(self, left: torch.Tensor, right: torch.Tensor, exemplar: torch.Tensor,
                offsets: torch.Tensor, horizontal_first: Sequence[bool] | None = None) -> LevelMatch:
        """left/right: (B, C, H, W) unit features of input and exemplar; exemplar (B, V, H, W);
        offsets (B, 2, K, H, W) seeds. ``horizontal_first[i]`` picks iteration i's order."""
        b, c, h, w = left.shape
        k = self.k
        order = list(horizontal_first) if horizontal_first is not None else [
            i % 2 == 0 for i in range(self.iterations)]
        left_flat, right_flat = left.flatten(2), right.flatten(2)  # views for channels_last features
        cand = offsets.permute(0, 3, 4, 1, 2).contiguous()  # (B, H, W, 2, K)
        hidden = self.initial_layer(left, right) if self.refine_net is not None else None
        for it in range(self.iterations):
            with torch.no_grad():
                for horizontal in (order[it], not order[it]):
                    cand, top_prob = self._select(left_flat, right_flat, _propagate(cand.detach(), horizontal))
            if self.refine_net is not None:
                scores = top_prob.view(b, h, w, k).permute(0, 3, 1, 2)  # (B, K, H, W), NHWC memory
                flow = cand.view(b, h, w, 2 * k).permute(0, 3, 1, 2)  # (B, 2K, H, W): K rows, then K cols
                hidden, delta = self.refine_net(hidden, scores.to(hidden.dtype), flow.to(hidden.dtype))
                cand = cand + delta.float().permute(0, 2, 3, 1).reshape(b, h, w, 2, k)
        return self._warp(left, right, exemplar, cand)

    def _warp(self, left, right, exemplar, cand) -> LevelMatch:
        """Final soft warp over the K candidates ``cand`` (B, H, W, 2, K)."""
        b, h, w, _, k = cand.shape
        grid = pixel_grid(h, w, cand.device).view(1, 2, 1, h, w)
        if self.official:
            index = _flat_index(cand, official=True)  # (B, N, K)
            cost = score_indices(left.flatten(2), right.flatten(2), index, self.temperature, self.chunk)
            weights = F.softmax(cost, dim=-1)  # (B, N, K)
            warp = gather_values(exemplar.flatten(2), index, weights.to(exemplar.dtype)).view(b, -1, h, w)
            positions = _index_offsets(index, h, w).permute(0, 4, 3, 1, 2) + grid.transpose(1, 2)
            weights_map = weights.transpose(1, 2).reshape(b, k, h, w)
            cost_map = cost.transpose(1, 2).reshape(b, k, h, w)
            return LevelMatch(warp, positions.contiguous(), weights_map,
                              _confidence(cost_map, weights_map, self.temperature), indices=index.long())
        offsets = cand.permute(0, 3, 4, 1, 2)  # (B, 2, K, H, W)
        positions = (grid + offsets).clamp_min(0)
        positions = torch.stack([positions[:, 0].clamp_max(h - 1), positions[:, 1].clamp_max(w - 1)], 1)
        positions = positions.transpose(1, 2).contiguous()  # (B, K, 2, H, W)
        group = max(1, (self.chunk * 16) // (h * w))  # candidates sampled at once (bounded memory)
        # bilinear samples between unit features are shorter than 1 (0.87 at half a pixel): back to
        # unit length, or every fractional position would score lower than the integer ones
        costs = torch.cat([
            (normalize_features(sample_at(right, positions[:, s:s + group])) * left.unsqueeze(2)).sum(1)
            for s in range(0, k, group)], dim=1) / self.temperature  # (B, K, H, W)
        weights = F.softmax(costs.float(), dim=1)
        warp = 0
        for s in range(0, k, group):
            warp = warp + (sample_at(exemplar, positions[:, s:s + group])
                           * weights[:, None, s:s + group].to(exemplar.dtype)).sum(2)
        return LevelMatch(warp, positions, weights, _confidence(costs, weights, self.temperature))


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


def _flat_index(cand: torch.Tensor, official: bool) -> torch.Tensor:
    """``offsets_to_index`` in the pixel-major layout: (B, H, W, 2, M) -> (B, H*W, M) int32
    (int64 beyond 2**24 pixels, where float32 stops holding every index exactly)."""
    b, h, w, _, m = cand.shape
    rows = torch.arange(h, device=cand.device, dtype=cand.dtype).view(1, h, 1, 1)
    cols = torch.arange(w, device=cand.device, dtype=cand.dtype).view(1, 1, w, 1)
    row = (rows + cand[..., 0, :]).clamp_(0, h - 1)
    col = (cols + cand[..., 1, :]).clamp_(0, w - 1)
    if official:  # float32 row * W + col, then truncation, as the released code does
        flat = row.float().mul_(w).add_(col.float())
    elif h * w <= _EXACT:
        flat = row.round_().mul_(w).add_(col.round_())  # exact integers in float32
    else:
        return row.round_().long().mul_(w).add_(col.round_().long()).view(b, h * w, m)
    return (flat.int() if h * w <= _EXACT else flat.long()).view(b, h * w, m)


_EXACT = 2**24  # float32 holds every integer up to here: index arithmetic in float32 is exact


def _index_offsets(index: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``index_to_offsets`` in the pixel-major layout: (B, H*W, K) integer -> (B, H, W, 2, K) float.
    Float32 division (exact here, and vectorised) instead of int64 floor division."""
    b, _, k = index.shape
    if h * w <= _EXACT:
        flat = index.float()
        row = torch.div(flat, w, rounding_mode="floor")
        col = flat - row * w
    else:
        row = torch.div(index, w, rounding_mode="floor")
        col = (index - row * w).float()
        row = row.float()
    rows = torch.arange(h, device=index.device, dtype=row.dtype).view(1, h, 1, 1)
    cols = torch.arange(w, device=index.device, dtype=row.dtype).view(1, 1, w, 1)
    return torch.stack([row.view(b, h, w, k) - rows, col.view(b, h, w, k) - cols], dim=3)


def _confidence(cost: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """Expected cosine similarity of the candidates under their weights, in [0, 1]."""
    return (cost.float() * temperature * weights).sum(1, keepdim=True).clamp(0, 1)
