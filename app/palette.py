"""ADE20K palette brushes for painting masks in the ImageEditor, and the editor value -> mask picture.

The colours come from ``core.conditions.ade20k`` (the standard 150-class palette), so a
painted mask is read back by ``core.conditions`` exactly as a palette PNG would be.
"""

from __future__ import annotations

import html

import numpy as np

from app import settings
from core.conditions.ade20k import NAMES, PALETTE, class_index
from core.errors import InputError

# Classes offered as brushes (the editor's swatches have no names: the legend shows them).
BRUSH_CLASSES = ("person", "sky", "tree", "grass", "building", "wall", "floor", "road", "water", "sea",
                 "mountain", "sand", "earth", "plant", "flower", "car", "rock", "field", "unlabeled")


def hex_colour(index: int) -> str:
    r, g, b = (int(c) for c in PALETTE[index])
    return f"#{r:02x}{g:02x}{b:02x}"


def brush_indices() -> list[int]:
    return [class_index(name) for name in BRUSH_CLASSES]


def make_brush(default: str = "person"):
    """A Gradio brush limited to the ADE20K colours of ``BRUSH_CLASSES``."""
    import gradio as gr

    colours = [hex_colour(i) for i in brush_indices()]
    return gr.Brush(colors=colours, default_color=hex_colour(class_index(default)), color_mode="fixed")


def legend_html() -> str:
    """Coloured swatches with the class names, in brush order."""
    items = []
    for i in brush_indices():
        name = html.escape(NAMES[i])
        items.append(f'<span style="display:inline-flex;align-items:center;margin:0 10px 4px 0">'
                     f'<span style="width:14px;height:14px;border:1px solid #888;margin-right:4px;'
                     f'background:{hex_colour(i)}"></span>{name}</span>')
    return '<div class="warpaint-legend">' + "".join(items) + "</div>"


def _rgb_alpha(picture) -> tuple[np.ndarray, np.ndarray]:
    """(H, W[, 1|3|4]) -> float RGB (H, W, 3) and alpha (H, W, 1) in [0, 1]."""
    arr = np.asarray(picture)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] in (1, 2):  # grey (+ alpha)
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2)
    rgb = arr[..., :3].astype(np.float32)
    alpha = arr[..., 3:4].astype(np.float32) / 255.0 if arr.shape[2] == 4 else np.ones_like(rgb[..., :1])
    return rgb, alpha


def _is_picture(value: object) -> bool:
    """An (H, W) or (H, W, 1-4) uint8 array, as Gradio's editor gives."""
    return (isinstance(value, np.ndarray) and value.dtype == np.uint8
            and (value.ndim == 2 or (value.ndim == 3 and 1 <= value.shape[2] <= 4)))


def editor_to_mask(value) -> np.ndarray | None:
    """An ImageEditor value (numpy) -> (H, W, 3) uint8 picture for ``core.conditions``; None if nothing is there.

    The uploaded background (if any) with the painted layers on top, over black (= unlabeled).
    The editor's blank canvas is plain white, not an ADE20K colour: it counts as unpainted.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        value = {"composite": value}
    layers = value.get("layers") or []
    pictures = [value.get("background"), value.get("composite"), *(layers if isinstance(layers, list) else [None])]
    pictures = [p for p in pictures if p is not None]
    if not isinstance(layers, list) or not all(_is_picture(p) for p in pictures):
        raise InputError("The mask editor's picture could not be read. Upload a PNG mask or paint one.")
    if max((p.shape[0] * p.shape[1] for p in pictures), default=0) > settings.MAX_PIXELS:  # before any float copy
        raise InputError(f"The mask has more than {settings.MAX_PIXELS / 1e6:.0f} MP. Use a smaller mask.")
    background, layers = value.get("background"), [x for x in layers if x is not None]
    if background is None and not layers:
        if value.get("composite") is None:
            return None
        background = value["composite"]
    base = background if background is not None else layers[0]
    height, width = np.asarray(base).shape[:2]
    out = np.zeros((height, width, 3), np.float32)
    painted = False
    if background is not None:
        rgb, alpha = _rgb_alpha(background)
        blank = (rgb * alpha + 255.0 * (1 - alpha) >= 250).all() or not alpha.any()
        if not blank:
            out, painted = rgb * alpha, True
    for layer in layers:
        rgb, alpha = _rgb_alpha(layer)
        if rgb.shape[:2] != (height, width) or not alpha.any():
            continue
        out, painted = rgb * alpha + out * (1 - alpha), True
    return np.clip(np.rint(out), 0, 255).astype(np.uint8) if painted else None
