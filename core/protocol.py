"""The engine protocol: what every engine (learned, training-free) takes and returns.

    engine = LearnedEngine(folder, device, precision)  or  TrainingFreeEngine()
    out = engine(sources, exemplar, exemplar_conditions, iterations=None, temperature=None,
                 seed=0, progress=None)            # -> EngineOutput, the same type from every engine
    engine.name, engine.stride, engine.resolution  # for messages and for choosing the output size

``sources`` and ``exemplar_conditions`` are lists of ``Condition`` (one per batch item, all at one
size (H, W)); ``exemplar`` is (B, 3, H, W) in [-1, 1] on the engine's device. ``iterations``,
``temperature`` (None: the engine's defaults) and ``seed`` (propagation orders) are per call;
``progress(fraction, text)`` is called as the levels are matched, fraction in [0, 1], and may raise
to stop the run between levels. Engines keep no per-call state.

Pixel convention (everywhere): positions are (row, col) in pixels, pixel i's centre at i; a level
of size (h, w) maps to an output (H, W) by centre alignment, (p + 0.5) * H / h - 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from core.conditions.condition import Condition
from core.corr import sample_at
from core.patchmatch import LevelMatch

Progress = Callable[[float, str], None]


@dataclass
class EngineOutput:
    """An engine's result for a batch: the output, its correspondence and every level's match."""

    image: torch.Tensor  # (B, 3, H, W) in [-1, 1]: the output
    warped: torch.Tensor  # (B, 3, H, W): the exemplar warped at full resolution
    positions: torch.Tensor  # (B, 2, H, W): (row, col) in exemplar pixels for every output pixel
    confidence: torch.Tensor  # (B, 1, H, W) in [0, 1]
    levels: list[LevelMatch]  # coarsest first: warps, candidates (positions) and their weights per level
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds (for the whole batch)
    fill: torch.Tensor | None = None  # (B, 1, H, W) in [0, 1]: share of an inpainted fill, where an engine has one
    notes: list[list[str]] = field(default_factory=list)  # per item, what the user should know (v2: zoom, fills)
    stats: list[dict[str, float]] = field(default_factory=list)  # per item, measured figures (v2: folds, fills)

    def item(self, i: int) -> EngineOutput:
        """Batch item ``i`` (every tensor keeps its batch dimension)."""
        one = slice(i, i + 1)
        return EngineOutput(self.image[one], self.warped[one], self.positions[one], self.confidence[one],
                            [level_item(lv, i) for lv in self.levels], dict(self.seconds),
                            None if self.fill is None else self.fill[one], self.notes[one], self.stats[one])

    @staticmethod
    def concat(outputs: Sequence[EngineOutput]) -> EngineOutput:
        """Items run one by one -> one batch (levels concatenated; seconds averaged per item)."""
        if len(outputs) == 1:
            return outputs[0]
        seconds: dict[str, float] = {}
        for o in outputs:
            for k, v in o.seconds.items():
                seconds[k] = seconds.get(k, 0.0) + v / len(outputs)
        fills = [o.fill for o in outputs]
        return EngineOutput(
            torch.cat([o.image for o in outputs]), torch.cat([o.warped for o in outputs]),
            torch.cat([o.positions for o in outputs]), torch.cat([o.confidence for o in outputs]),
            [_cat_levels(lvs) for lvs in zip(*(o.levels for o in outputs))], seconds,
            None if any(f is None for f in fills) else torch.cat(fills),
            [n for o in outputs for n in o.notes], [st for o in outputs for st in o.stats])


class Engine(Protocol):
    """What ``Translator`` needs from an engine (see the module docstring)."""

    name: str  # shown to the user: "training-free", "learned (<folder>)"
    stride: int  # output sides must be multiples of this
    resolution: int  # the default output side

    def __call__(self, sources: Sequence[Condition], exemplar: torch.Tensor,
                 exemplar_conditions: Sequence[Condition], *, iterations: int | None = None,
                 temperature: float | None = None, seed: int = 0,
                 progress: Progress | None = None) -> EngineOutput: ...


def level_item(level: LevelMatch, i: int) -> LevelMatch:
    """Batch item ``i`` of a level."""
    one = slice(i, i + 1)
    return LevelMatch(level.warp[one], level.positions[one], level.weights[one], level.confidence[one],
                      None if level.indices is None else level.indices[one],
                      None if level.cycle is None else level.cycle[one])


def _cat_levels(levels: Sequence[LevelMatch]) -> LevelMatch:
    first = levels[0]
    return LevelMatch(*(torch.cat([getattr(lv, name) for lv in levels]) for name in ("warp", "positions", "weights",
                                                                                       "confidence")),
                      indices=None if first.indices is None else torch.cat([lv.indices for lv in levels]),
                      cycle=None if first.cycle is None else torch.cat([lv.cycle for lv in levels]))


def mean_positions(level: LevelMatch) -> torch.Tensor:
    """(B, 2, h, w): the candidates' weighted mean position (row, col) at the level."""
    return (level.weights.unsqueeze(2) * level.positions).sum(1)


def upsample_positions(positions: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Positions at a level (B, 2, h, w) -> (B, 2, H, W) in full-resolution pixels (pixel centres)."""
    h, w = positions.shape[-2:]
    if (h, w) == tuple(size):
        return positions
    scale = torch.tensor([size[0] / h, size[1] / w], device=positions.device).view(1, 2, 1, 1)
    return F.interpolate((positions + 0.5) * scale - 0.5, size=size, mode="bilinear", align_corners=False)


def sample_positions(image: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of image (B, C, H, W) at (row, col) positions (B, 2, H', W') (clamped to
    the image): ``sample_at`` for one candidate per pixel."""
    return sample_at(image, positions.unsqueeze(1))[:, :, 0].to(image.dtype)
