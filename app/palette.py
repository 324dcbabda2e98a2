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


def editor_to_mask(value) -> np.ndarray | None:
    """An ImageEditor value (numpy) -> (H, W, 3) uint8 picture; unpainted (transparent) pixels are black = unlabeled.

    Returns None when nothing was uploaded or painted.
    """
    if value is None:
        return None
    composite = value.get("composite") if isinstance(value, dict) else value
    if composite is None:
        return None
    arr = np.asarray(composite)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        if not alpha.any():
            return None
        arr = arr[..., :3].astype(np.float32) * alpha  # over black (unlabeled)
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8)
