"""Sizes and the detector's view of a photo: the same centre crop ``fit_image`` keeps.

Detectors run on that crop at a resolution that suits them (not at the output size, which
may be small), and their points are scaled to the output size afterwards.
"""

from __future__ import annotations

import numpy as np

from core.errors import InputError
from core.imageio import fit_geometry, fit_image

MIN_OUTPUT_SIDE = 32
MAX_OUTPUT_SIDE = 4096
MIN_DETECTION_SIDE = 64  # below this no detector finds anything useful


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Validate an output size (H, W) and return it as ints."""
    try:
        h, w = int(size[0]), int(size[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"Size must be (height, width), got {size!r}.") from exc
    if not (MIN_OUTPUT_SIDE <= h <= MAX_OUTPUT_SIDE and MIN_OUTPUT_SIDE <= w <= MAX_OUTPUT_SIDE):
        raise InputError(f"Output size {w}x{h} is out of range: use {MIN_OUTPUT_SIDE} to {MAX_OUTPUT_SIDE} "
                         "pixels per side (512 is the model's native size).")
    return h, w


def check_photo(image: np.ndarray, what: str) -> np.ndarray:
    """Validate an (H, W, 3) uint8 photo for detection."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise InputError(f"Expected an RGB picture (H, W, 3) uint8, got {arr.shape} {arr.dtype}; "
                         "load it with core.imageio.load_image.")
    arr = arr[..., :3]
    h, w = arr.shape[:2]
    if min(h, w) < MIN_DETECTION_SIDE:
        raise InputError(f"The picture is only {w}x{h} pixels: too small to find a {what}. "
                         f"Use a photo at least {MIN_DETECTION_SIDE} pixels (ideally 512+) on each side.")
    return arr


def detection_view(image: np.ndarray, size: tuple[int, int], long_side: int = 1024
                   ) -> tuple[np.ndarray, float, float]:
    """The output's centre crop at up to ``long_side`` pixels, and the x / y scales to the output."""
    _, _, ch, cw, _, _ = fit_geometry(image.shape[:2], size)
    s = min(1.0, long_side / max(ch, cw))
    vh, vw = max(1, round(ch * s)), max(1, round(cw * s))
    view = fit_image(image, (vh, vw))
    return view, size[1] / vw, size[0] / vh
