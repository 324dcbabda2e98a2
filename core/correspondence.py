"""Hierarchical correspondence: encoders -> matching features -> dense attention at the coarsest
level -> PatchMatch at every finer level, each seeded by the one below."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core import budget
from core.config import WarpaintConfig
from core.corr import dense_attention, full_precision, normalize_features, pixel_grid
from core.extractor import PyramidEncoder
from core.patchmatch import LevelMatch, PatchMatch, index_to_offsets, seed_offsets
from core.timing import stage


def match_pyramid(left: Sequence[torch.Tensor], right: Sequence[torch.Tensor], exemplar: torch.Tensor,
                  patchmatch: PatchMatch, temperature: float, window: int, dilation: int,
                  orders: Sequence[Sequence[bool]] | None = None, cycle: bool = False) -> list[LevelMatch]:
    """Match unit-length feature pyramids (coarsest first) and warp the exemplar at every level.

    Used with learned features (Correspondence) and hand-made ones (the training-free engine).
    ``orders[i]`` gives level i+1's propagation orders (True = horizontal first).
    """
    levels: list[LevelMatch] = []
    for i, (lf, rf) in enumerate(zip(left, right)):
        budget.check()  # a request's time budget (app) is checked between levels
        with stage(f"level_{lf.shape[-2]}x{lf.shape[-1]}", lf.device):
            ref = _pool_to(exemplar, lf.shape[-2:])
            if i == 0:
                levels.append(_dense_level(lf, rf, ref, temperature, patchmatch.k, cycle))
                continue
            seeds = seed_offsets(_best_offsets(levels[-1], patchmatch.official), window, dilation)
            levels.append(patchmatch(lf, rf, ref, seeds, orders[i - 1] if orders is not None else None))
    return levels


def _dense_level(left: torch.Tensor, right: torch.Tensor, exemplar: torch.Tensor, temperature: float,
                 k: int, cycle: bool) -> LevelMatch:
    """The coarsest level: dense attention, its top-K as the level's candidates."""
    dense = dense_attention(left, right, exemplar, temperature, topk=k, cycle=cycle)
    wk = right.shape[-1]
    pos = torch.stack([torch.div(dense.top_index, wk, rounding_mode="floor"), dense.top_index % wk], 2)
    weights = dense.top_weight / dense.top_weight.sum(1, keepdim=True).clamp_min(1e-12)
    return LevelMatch(dense.warp, pos.float(), weights, dense.confidence,
                      indices=dense.top_index.flatten(2).transpose(1, 2), cycle=dense.cycle)


def _pool_to(x: torch.Tensor, size) -> torch.Tensor:
    """Average-pool the exemplar down to a level's size (the official warps pooled exemplars)."""
    factor = x.shape[-1] // size[-1]
    return x if factor == 1 else F.avg_pool2d(x, factor, stride=factor)


def _best_offsets(level: LevelMatch, official: bool) -> torch.Tensor:
    """(B, 2, H, W) offsets of a level's best candidate: what seeds the next level."""
    h, w = level.weights.shape[-2:]
    if official:  # slot 0 of the final indices (at the coarsest level: the top-1 of attention)
        return index_to_offsets(level.indices[:, :, :1], h, w)[:, :, 0]
    best = level.weights.argmax(1, keepdim=True)  # (B, 1, H, W)
    pos = torch.gather(level.positions, 1, best.unsqueeze(2).expand(-1, -1, 2, -1, -1))[:, 0]
    return pos.detach().round() - pixel_grid(h, w, pos.device)


class Correspondence(nn.Module):
    """Two domain-alignment encoders, per-level projections and the shared PatchMatch."""

    def __init__(self, config: WarpaintConfig):
        super().__init__()
        self.config = config
        c = config
        self.condition_encoder = PyramidEncoder(c.label_channels, c.nef, c.levels, c.spade_hidden)
        self.exemplar_encoder = PyramidEncoder(c.label_channels + c.image_channels, c.nef, c.levels,
                                               c.spade_hidden)
        widths = self.condition_encoder.out_channels
        self.theta = nn.ModuleList(nn.Conv2d(ch, c.nef, 1) for ch in widths)
        self.phi = nn.ModuleList(nn.Conv2d(ch, c.nef, 1) for ch in widths)
        self.patch_match = PatchMatch(c.nef, c.candidates, c.iterations, c.temperature, c.gru_hidden,
                                      c.gru_motion, use_gru=True, official=c.matching == "official",
                                      chunk_pixels=c.chunk_pixels)

    # Under bf16/fp16 autocast the encoders still run in fp32 unless this is True: their features
    # decide the discrete matches (in bf16 the official model's 512 warp drops from 46 to 15 dB
    # PSNR against fp32 on the fixture, versus 27 dB with fp32 encoders).
    lower_encoders: bool = False

    def encode(self, condition: torch.Tensor, exemplar: torch.Tensor, exemplar_condition: torch.Tensor):
        """Unit-length encoder features (coarsest first) of the input and of the exemplar."""
        precision = contextlib.nullcontext() if self.lower_encoders else full_precision(condition.device)
        with precision:
            cond = [normalize_features(f) for f in self.condition_encoder(condition.float())]
            ex_input = torch.cat([exemplar, exemplar_condition], 1).float()
            ex = [normalize_features(f) for f in self.exemplar_encoder(ex_input)]
        return cond, ex

    def match_features(self, cond, ex):
        """Project encoder features to matching features: 1x1 conv, centre, unit length."""
        with full_precision(cond[0].device):  # 1x1 convs: cheap, and matching needs the precision
            left = [normalize_features(t(f.float()), center=True) for t, f in zip(self.theta, cond)]
            right = [normalize_features(p(f.float()), center=True) for p, f in zip(self.phi, ex)]
        return left, right

    def forward(self, condition: torch.Tensor, exemplar: torch.Tensor, exemplar_condition: torch.Tensor,
                orders: Sequence[Sequence[bool]] | None = None, cycle: bool = False) -> list[LevelMatch]:
        with stage("encoders", condition.device):
            cond, ex = self.encode(condition, exemplar, exemplar_condition)
            left, right = self.match_features(cond, ex)
            del cond, ex  # the encoder pyramids are not needed any more: free them before matching
        c = self.config
        return match_pyramid(left, right, exemplar, self.patch_match, c.temperature, c.search_window,
                             c.dilation, orders, cycle)
