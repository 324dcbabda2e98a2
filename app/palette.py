"""ADE20K palette brushes for painting masks in the ImageEditor, and the editor value -> mask picture.

The colours come from ``core.conditions.ade20k`` (the standard 150-class palette), so a
painted mask is read back by ``core.conditions`` exactly as a palette PNG would be.
"""

from __future__ import annotations

import html

import numpy as np

from core.conditions.ade20k import NAMES, PALETTE, class_index

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


PAINTED_SHARE = 0.9  # photos: 0-13 % exactly on palette colours (mostly black = unlabeled), painted masks ~100 %
_PACKED_PALETTE = np.unique((PALETTE.astype(np.int64) << [16, 8, 0]).sum(axis=1))


def looks_painted(picture: np.ndarray) -> bool:
    """True for a painted ADE20K mask: nearly every pixel exactly a palette colour, and two regions at least (a
    plain black picture is no mask). The Mask tab reads such a picture as a painted mask even when it was given
    as a photo: segmenting a person out of flat colours is never what was meant."""
    rgb = np.asarray(picture)[..., :3]
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))  # a sample: exact colours survive it
    packed = (rgb[::step, ::step].astype(np.int64) << [16, 8, 0]).sum(axis=2).ravel()
    colours, counts = np.unique(packed, return_counts=True)
    on_palette = np.isin(colours, _PACKED_PALETTE)
    regions = int((on_palette & (counts >= 0.01 * packed.size)).sum())
    return counts[on_palette].sum() >= PAINTED_SHARE * packed.size and regions >= 2


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


def editor_to_mask(value) -> np.ndarray | None:
    """An ImageEditor value (numpy) -> (H, W, 3) uint8 picture for ``core.conditions``; None if nothing is there.

    The uploaded background (if any) with the painted layers on top, over black (= unlabeled).
    The editor's blank canvas is plain white, not an ADE20K colour: it counts as unpainted.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        value = {"composite": value}
    background, layers = value.get("background"), [x for x in (value.get("layers") or []) if x is not None]
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
