"""Hierarchical correspondence: encoders -> matching features -> dense attention at the coarsest
level -> PatchMatch at every finer level, each seeded by the one below."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core import budget
from core.checkpointing import run_block
from core.config import WarpaintConfig
from core.corr import dense_attention, normalize_features
from core.extractor import PyramidEncoder
from core.patchmatch import MATCHERS, LevelMatch, PatchMatch, seed_offsets
from core.precision import full_precision
from core.timing import stage

OnLevel = Callable[[int, LevelMatch], None]  # (level index, coarsest = 0; its match) after every level


def match_pyramid(left: Sequence[torch.Tensor], right: Sequence[torch.Tensor], exemplar: torch.Tensor,
                  patch_match: PatchMatch, *, iterations: int, temperature: float, window: int, dilation: int,
                  orders: Sequence[Sequence[bool]] | None = None, cycle: bool = False,
                  on_level: OnLevel | None = None, run: Callable = run_block) -> list[LevelMatch]:
    """Match unit-length feature pyramids (coarsest first) and warp the exemplar at every level.

    Used with learned features (``Warpaint``) and hand-made ones (the training-free engine).
    ``orders[i]`` gives level i+1's propagation orders (True = horizontal first); ``on_level``
    is called after every level; ``run(module, *args, **kwargs)`` calls ``patch_match`` (the
    model passes a checkpointing runner there).
    """
    levels: list[LevelMatch] = []
    for i, (lf, rf) in enumerate(zip(left, right)):
        budget.check()  # a request's time budget (app) is checked between levels
        with stage(f"level_{lf.shape[-2]}x{lf.shape[-1]}", lf.device):
            ref = _pool_to(exemplar, lf.shape[-2:])
            if i == 0:
                levels.append(_dense_level(lf, rf, ref, temperature, patch_match.k, cycle))
            else:
                seeds = seed_offsets(patch_match.best_offsets(levels[-1]), window, dilation)
                levels.append(run(patch_match, lf, rf, ref, seeds, iterations=iterations, temperature=temperature,
                                  horizontal_first=orders[i - 1] if orders is not None else None))
        if on_level is not None:
            on_level(i, levels[-1])
    return levels


def random_orders(seed: int, levels: int, iterations: int) -> list[list[bool]]:
    """Propagation orders for every PatchMatch level (True = horizontal first), drawn from ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    return [[bool(b) for b in torch.rand(iterations, generator=gen) < 0.5] for _ in range(levels - 1)]


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


class Correspondence(nn.Module):
    """Two domain-alignment encoders, per-level projections and the shared PatchMatch (learned or
    official, chosen once from ``config.matching``)."""

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
        self.patch_match = MATCHERS[c.matching](c.nef, c.candidates, c.gru_hidden, c.gru_motion, use_gru=True,
                                                chunk_pixels=c.chunk_pixels)
        self.gradient_checkpointing = False  # set by Warpaint.enable_gradient_checkpointing()

    def run(self, module: nn.Module, *args, **kwargs):
        """Call a block, checkpointed when gradient checkpointing is on."""
        return run_block(module, *args, checkpointing=self.gradient_checkpointing, **kwargs)

    def encoder_precision(self, device: torch.device, lower: bool | None = None):
        """The one place that decides the encoders' precision under bf16/fp16 autocast: lowered
        when ``lower`` is True; in fp32 when it is False. None (the default) picks by matching mode:
        learned matching lowers them (continuous positions: a bf16 rounding moves a match a
        little); official matching keeps them fp32, because its integer indices decide the warp
        (in bf16 the official model's 512 warp drops from 46 to 15 dB PSNR against fp32 on the
        fixture, versus 27 dB with fp32 encoders). Inference and training alike."""
        if lower is None:
            lower = self.config.matching != "official"
        return contextlib.nullcontext() if lower else full_precision(device)

    def encode(self, condition: torch.Tensor, exemplar: torch.Tensor, exemplar_condition: torch.Tensor,
               lower_precision: bool | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Unit-length encoder features (coarsest first) of the input and of the exemplar."""
        return (self.encode_condition(condition, lower_precision),
                self.encode_exemplar(exemplar, exemplar_condition, lower_precision))

    def encode_condition(self, condition: torch.Tensor, lower_precision: bool | None = None) -> list[torch.Tensor]:
        with self.encoder_precision(condition.device, lower_precision):
            return [normalize_features(f) for f in self.run(self.condition_encoder, condition.float())]

    def encode_exemplar(self, image: torch.Tensor, label: torch.Tensor, lower_precision: bool | None = None
                        ) -> list[torch.Tensor]:
        """The exemplar encoder's unit features of a picture with its label (also the training
        target's, for the feature-pair loss)."""
        with self.encoder_precision(image.device, lower_precision):
            x = torch.cat([image, label], 1).float()
            return [normalize_features(f) for f in self.run(self.exemplar_encoder, x)]

    def match_features(self, cond, ex):
        """Project encoder features to matching features: 1x1 conv, centre, unit length."""
        with full_precision(cond[0].device):  # 1x1 convs: cheap, and matching needs the precision
            left = [normalize_features(t(f.float()), center=True) for t, f in zip(self.theta, cond)]
            right = [normalize_features(p(f.float()), center=True) for p, f in zip(self.phi, ex)]
        return left, right

    def match(self, left: Sequence[torch.Tensor], right: Sequence[torch.Tensor], exemplar: torch.Tensor, *,
              iterations: int, temperature: float, orders: Sequence[Sequence[bool]] | None = None,
              cycle: bool = False, on_level: OnLevel | None = None) -> list[LevelMatch]:
        """``match_pyramid`` with this model's PatchMatch and seed window."""
        c = self.config
        return match_pyramid(left, right, exemplar, self.patch_match, iterations=iterations, temperature=temperature,
                             window=c.search_window, dilation=c.dilation, orders=orders, cycle=cycle,
                             on_level=on_level, run=self.run)
