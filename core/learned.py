"""The learned engine: a Warpaint model folder behind the engine protocol (core/protocol.py).

Models are loaded once per process (per folder and device) and shared between threads: a call
writes nothing into the model, so concurrent calls need no lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from core.conditions.condition import Condition
from core.correspondence import random_orders
from core.errors import CheckpointError, InputError
from core.model import Warpaint
from core.patchmatch import LevelMatch
from core.precision import inference_context, prepare_model
from core.protocol import EngineOutput, Progress, mean_positions, upsample_positions
from core.vocabulary import LEARNED

_models: dict[tuple[str, str], Warpaint] = {}
_models_lock = threading.Lock()


def load_model(folder: Path, device: torch.device) -> Warpaint:
    """The model in ``folder`` on ``device``, ready for inference; loaded once per process."""
    key = (str(Path(folder).resolve()), str(device))
    with _models_lock:
        if key not in _models:
            _models[key] = prepare_model(Warpaint.from_pretrained(folder, device=device), device)
        return _models[key]


class LearnedEngine:
    """Encoders -> hierarchical matching -> generator, in one ``Warpaint`` forward."""

    def __init__(self, checkpoint: str | Path, device: torch.device, precision: str = "fp32"):
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.precision = precision
        self.name = f"{LEARNED} ({self.checkpoint})"
        self._model: Warpaint | None = None

    @property
    def model(self) -> Warpaint:
        """Loaded on first use (from the process-wide cache)."""
        if self._model is None:
            self._model = load_model(self.checkpoint, self.device)
        return self._model

    @property
    def stride(self) -> int:
        return self.model.config.stride

    @property
    def resolution(self) -> int:
        return self.model.config.resolution

    def __call__(self, sources: Sequence[Condition], exemplar: torch.Tensor,
                 exemplar_conditions: Sequence[Condition], *, iterations: int | None = None,
                 temperature: float | None = None, seed: int = 0, progress: Progress | None = None,
                 exemplar_features: Sequence[torch.Tensor] | None = None) -> EngineOutput:
        """The engine protocol's call; ``exemplar_features`` (from ``encode_exemplar``) skips the exemplar
        encoder when one exemplar serves many calls (a video's frames)."""
        report = progress or (lambda fraction, text: None)
        model = self.model
        config = model.config
        self._check(sources[0], exemplar_conditions[0])
        size = sources[0].size
        source_label = torch.stack([c.label for c in sources]).to(self.device)
        exemplar_label = torch.stack([c.label for c in exemplar_conditions]).to(self.device)
        iters = int(iterations) if iterations else config.iterations
        marks = [time.perf_counter()]

        def on_level(i: int, match: LevelMatch) -> None:
            marks.append(time.perf_counter())
            report(0.1 + 0.7 * (i + 1) / config.levels, f"matched level {i + 1}/{config.levels}")
            if i == config.levels - 1:
                report(0.85, "synthesizing")

        report(0.0, f"encoding and matching {config.levels} levels ({self.name})")
        with inference_context(self.device, self.precision):
            out = model(source_label, exemplar, exemplar_label, iterations=iters,
                        temperature=float(temperature) if temperature else None,
                        orders=random_orders(seed, config.levels, iters), on_level=on_level,
                        exemplar_features=exemplar_features)
        done = time.perf_counter()
        finest = out.levels[-1]
        levels = [_float(lv) for lv in out.levels]
        return EngineOutput(
            image=out.image.float(),
            warped=F.interpolate(finest.warp.float(), size=size, mode="bilinear", align_corners=False),
            positions=upsample_positions(mean_positions(levels[-1]), size),
            confidence=F.interpolate(finest.confidence.float(), size=size, mode="bilinear", align_corners=False),
            levels=levels, seconds={"matching": marks[-1] - marks[0], "synthesis": done - marks[-1]})

    def encode_exemplar(self, exemplar: torch.Tensor, exemplar_condition: Condition) -> list[torch.Tensor]:
        """The exemplar encoder's pyramid of ``exemplar`` (1, 3, H, W) and its condition, for
        ``exemplar_features=`` (computed once, reused for every input)."""
        label = exemplar_condition.label.unsqueeze(0).to(self.device)
        with inference_context(self.device, self.precision):
            return self.model.correspondence.encode_exemplar(exemplar, label)

    def _check(self, source: Condition, exemplar_condition: Condition) -> None:
        config = self.model.config
        for name, cond in (("input", source), ("exemplar", exemplar_condition)):
            if cond.label.shape[0] != config.label_channels:
                raise CheckpointError(
                    f"{self.checkpoint} expects a {config.label_channels}-channel label but the {name} condition "
                    f"has {cond.label.shape[0]}: this checkpoint was made for another kind of condition.")
        try:
            self.model.check_size(source.size)
        except ValueError as exc:
            raise InputError(f"{self.checkpoint}: {exc}; translate at a resolution that is a multiple of "
                             f"{config.stride}.") from exc


def _float(level: LevelMatch) -> LevelMatch:
    return LevelMatch(level.warp.float(), level.positions.float(), level.weights.float(),
                      level.confidence.float(), level.indices, level.cycle)
