"""Model configuration: one dataclass, named presets, JSON round trip (diffusers' habit)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from core.vocabulary import MATCHING_MODES


@dataclass(frozen=True)
class WarpaintConfig:
    """Everything that shapes a Warpaint model (plus the defaults of the per-call settings: a call to
    the model may pass its own iterations and temperature). Nothing here fixes the input resolution."""

    task: str = "pose"  # which condition the model consumes: pose | face | mask
    label_channels: int = 20  # channels of the condition label (pose: official 20)
    image_channels: int = 3
    resolution: int = 512  # the size it was trained at (a default for the CLI/app, not a limit)
    levels: int = 4  # correspondence levels; the coarsest is resolution / 2**(levels-1)
    nef: int = 32  # encoder width (official 32); matching features have nef channels
    ngf: int = 64  # generator width (official 64)
    temperature: float = 0.01  # softmax temperature of every similarity (default of the call argument)
    iterations: int = 5  # PatchMatch iterations per fine level (default of the call argument)
    search_window: int = 4  # seeds: a search_window x search_window window per pixel...
    dilation: int = 2  # ...with this dilation, around 2x the coarser match
    gru_hidden: int = 32
    gru_motion: int = 64
    spade_hidden: int = 128
    generator_upsamples: int = 5  # the generator starts at resolution / 2**generator_upsamples
    matching: str = "learned"  # learned: differentiable positions; official: integer indices
    chunk_pixels: int = 16384  # query pixels per chunk in dense attention and candidate scoring

    def __post_init__(self) -> None:
        if self.matching not in MATCHING_MODES:
            raise ValueError(f"matching must be one of {MATCHING_MODES}, got {self.matching!r}")
        if self.levels < 1:
            raise ValueError("levels must be >= 1")
        if 2 * self.candidates >= self.gru_motion:
            raise ValueError("gru_motion must exceed 2 * candidates (the motion encoder appends the offsets)")

    @property
    def candidates(self) -> int:
        """K: candidates kept per pixel at every PatchMatch level."""
        return self.search_window**2

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this (the coarsest level's stride)."""
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WarpaintConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {unknown}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> WarpaintConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes) -> WarpaintConfig:
        return replace(self, **changes)


PRESETS: dict[str, WarpaintConfig] = {
    # The official DeepFashionHD architecture (nef 32, ngf 64, 5 iterations, L = 4 at 512).
    "official": WarpaintConfig(matching="official"),
    # Same architecture with differentiable PatchMatch: what our trainer trains.
    "pose-512": WarpaintConfig(),
    "pose-256": WarpaintConfig(resolution=256, levels=3),
    "face-512": WarpaintConfig(task="face", label_channels=10, resolution=512),
    "face-1024": WarpaintConfig(task="face", label_channels=10, resolution=1024, levels=5),
    "mask-256": WarpaintConfig(task="mask", label_channels=151, resolution=256, levels=3),
    # Small and fast, for tests.
    "tiny": WarpaintConfig(resolution=64, levels=3, nef=8, ngf=8, iterations=2, spade_hidden=16,
                           gru_hidden=16, search_window=2, gru_motion=16, generator_upsamples=3),
}


def get_preset(name: str, **overrides) -> WarpaintConfig:
    """A named preset, optionally with some fields changed."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
