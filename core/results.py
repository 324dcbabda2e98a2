"""What a translation returns: the image plus everything needed to show the correspondence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.utils.deferred import deferred_field


@dataclass
class LevelView:
    """One correspondence level, ready to display (all arrays are numpy, CPU)."""

    size: tuple[int, int]  # (H, W) of this level's grid
    warp: np.ndarray  # (H_out, W_out, 3) uint8: exemplar warped at this level, upsampled to output size
    flow: np.ndarray  # (H_out, W_out, 3) uint8: flow field as a colour-wheel picture
    confidence: np.ndarray  # (H, W) float32 in [0, 1]
    candidates: np.ndarray  # (H, W, K, 2) float32: matched exemplar points (x, y) in OUTPUT pixels
    weights: np.ndarray  # (H, W, K) float32: softmax weight of each candidate (sums to 1)


@dataclass
class TranslationResult:
    """Output of ``Translator.translate``: one picture and its correspondence, ready to show."""

    image: np.ndarray  # (H, W, 3) uint8 RGB: the synthesized output
    warped: np.ndarray  # (H, W, 3) uint8 RGB: exemplar warped at the finest level
    input_condition: np.ndarray  # (H, W, 3) uint8 picture of the input's condition
    exemplar_condition: np.ndarray  # (H, W, 3) uint8 picture of the exemplar's condition
    levels: list[LevelView]  # coarsest first (made when first read: a Deferred)
    engine: str  # "learned (<checkpoint>)" or "training-free"
    messages: list[str] = field(default_factory=list)  # warnings worth showing the user
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    confidence: np.ndarray | None = None  # (H, W) float32 in [0, 1]: the output's match confidence
    flow: np.ndarray | None = None  # (H, W, 3) uint8: the output's flow (output -> exemplar) as a colour wheel
    # (made when first read, as ``levels``)
    # The final map, for evaluation (fold-overs) and tools: for every output pixel, the (row, col) it
    # samples in the exemplar, in the pixels of the exemplar view the engine matched (v1: the exemplar
    # fitted to the output size; v2: its condition's working size, a scale of the original photo),
    # pixel centres at integer coordinates ...
    positions: np.ndarray | None = None  # (H, W, 2) float32
    # ... and where the output really comes from that map (False: filled / synthesized / composited
    # from elsewhere; the engine's ``fill`` is under 0.5). None means everywhere.
    mapped: np.ndarray | None = None  # (H, W) bool
    # True when the map reverses left and right on purpose (engine v2 used the exemplar mirrored): its
    # orientation is then negative everywhere, which is a mirror, not a fold.
    mirrored: bool = False


# The views for people (each level's warp and flow pictures, the flow wheel) cost about a tenth of a v2
# translation at 512; callers that only want the picture (the API, eval-warp, video) never make them.
deferred_field(TranslationResult, "levels")
deferred_field(TranslationResult, "flow")
