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

from core.corr import gather_values, pixel_grid, sample_at, score_indices
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
    """PatchMatch with an optional ConvGRU refinement; one instance serves every fine level."""

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
        """Score all candidates, keep the best K: returns (offsets, top-K probabilities)."""
        _, _, _, h, w = offsets.shape
        index = offsets_to_index(offsets, self.official)  # (B, N, M)
        prob = F.softmax(score_indices(left, right, index, self.temperature, self.chunk), dim=-1)
        top_prob, top = torch.topk(prob, self.k, dim=-1)
        best = index_to_offsets(torch.gather(index, -1, top), h, w)
        return best, top_prob.transpose(1, 2).reshape(top_prob.shape[0], self.k, h, w)

    def forward(self, left: torch.Tensor, right: torch.Tensor, exemplar: torch.Tensor,
                offsets: torch.Tensor, horizontal_first: Sequence[bool] | None = None) -> LevelMatch:
        """left/right: (B, C, H, W) unit features of input and exemplar; exemplar (B, V, H, W);
        offsets (B, 2, K, H, W) seeds. ``horizontal_first[i]`` picks iteration i's order."""
        b, c, h, w = left.shape
        order = list(horizontal_first) if horizontal_first is not None else [
            i % 2 == 0 for i in range(self.iterations)]
        left_flat, right_flat = left.flatten(2), right.flatten(2)
        hidden = self.initial_layer(left, right) if self.refine_net is not None else None
        for it in range(self.iterations):
            with torch.no_grad():
                for horizontal in (order[it], not order[it]):
                    offsets, scores = self.evaluate(left_flat, right_flat, propagate(offsets.detach(), horizontal))
            if self.refine_net is not None:
                hidden, delta = self.refine_net(hidden, scores.to(hidden.dtype), offsets.flatten(1, 2).to(hidden.dtype))
                offsets = offsets + delta.float().view(b, 2, self.k, h, w)
        return self._warp(left, right, exemplar, offsets)

    def _warp(self, left, right, exemplar, offsets) -> LevelMatch:
        """Final soft warp over the K candidates."""
        b, _, k, h, w = offsets.shape
        grid = pixel_grid(h, w, offsets.device).view(1, 2, 1, h, w)
        if self.official:
            index = offsets_to_index(offsets, official=True)
            cost = score_indices(left.flatten(2), right.flatten(2), index, self.temperature, self.chunk)
            weights = F.softmax(cost, dim=-1)  # (B, N, K)
            warp = gather_values(exemplar.flatten(2), index, weights.to(exemplar.dtype)).view(b, -1, h, w)
            positions = index_to_offsets(index, h, w) + grid
            weights_map = weights.transpose(1, 2).reshape(b, k, h, w)
            cost_map = cost.transpose(1, 2).reshape(b, k, h, w)
            return LevelMatch(warp, positions.transpose(1, 2), weights_map,
                              _confidence(cost_map, weights_map, self.temperature), indices=index)
        positions = (grid + offsets).clamp_min(0)
        positions = torch.stack([positions[:, 0].clamp_max(h - 1), positions[:, 1].clamp_max(w - 1)], 1)
        positions = positions.transpose(1, 2)  # (B, K, 2, H, W)
        group = max(1, (self.chunk * 16) // (h * w))  # candidates sampled at once (bounded memory)
        costs = torch.cat([
            (sample_at(right, positions[:, s:s + group]) * left.unsqueeze(2)).sum(1)
            for s in range(0, k, group)], dim=1) / self.temperature  # (B, K, H, W)
        weights = F.softmax(costs.float(), dim=1)
        warp = 0
        for s in range(0, k, group):
            warp = warp + (sample_at(exemplar, positions[:, s:s + group])
                           * weights[:, None, s:s + group].to(exemplar.dtype)).sum(2)
        return LevelMatch(warp, positions, weights, _confidence(costs, weights, self.temperature))


def _confidence(cost: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """Expected cosine similarity of the candidates under their weights, in [0, 1]."""
    return (cost.float() * temperature * weights).sum(1, keepdim=True).clamp(0, 1)
