"""Pictures the app draws from a translation: confidence maps, the warp gallery, click-to-inspect marks.

Pure numpy/OpenCV on uint8 RGB arrays, so it is tested without a browser or a model.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.results import LevelView

MARK_COLOURS = np.array([[255, 221, 0], [0, 229, 255], [255, 64, 129], [118, 255, 3]], dtype=np.uint8)


def confidence_picture(confidence: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) confidence in [0, 1] -> (H, W, 3) uint8 viridis picture, nearest-upsampled so level pixels show."""
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float32), nan=0.0)
    grey = np.clip(np.rint(conf * 255.0), 0, 255).astype(np.uint8)
    grey = cv2.resize(grey, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS)[..., ::-1])


def level_caption(index: int, level: LevelView, count: int) -> str:
    """'level 2/4 - 128x128' (coarsest is level 1)."""
    h, w = level.size
    return f"level {index + 1}/{count} - {w}x{h}"


def warp_gallery(levels: list[LevelView]) -> list[tuple[np.ndarray, str]]:
    """(picture, caption) per level, coarsest first: the exemplar warped at that level (already output-sized)."""
    return [(level.warp, level_caption(i, level, len(levels))) for i, level in enumerate(levels)]


def grid_cell(point: tuple[float, float], image_size: tuple[int, int], level_size: tuple[int, int]) -> tuple[int, int]:
    """Which (row, col) of a level's grid an output pixel (x, y) falls in."""
    x, y = float(point[0]), float(point[1])
    (height, width), (h, w) = image_size, level_size
    row = int(np.clip(np.floor(y * h / height), 0, h - 1))
    col = int(np.clip(np.floor(x * w / width), 0, w - 1))
    return row, col


def mark_candidates(exemplar: np.ndarray, candidates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The exemplar with the K matched points of one pixel drawn as discs whose area follows their weight.

    exemplar (H, W, 3) uint8 at output size; candidates (K, 2) (x, y) in output pixels; weights (K,).
    The heaviest candidate is drawn last (on top) and outlined in white.
    """
    out = np.ascontiguousarray(exemplar, dtype=np.uint8).copy()
    overlay = out.copy()
    side = min(out.shape[:2])
    weights = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0).clip(min=0.0)
    top = float(weights.max()) if weights.size and weights.max() > 0 else 1.0
    r_max, r_min = max(4.0, side / 24.0), max(1.5, side / 256.0)
    order = np.argsort(weights, kind="stable")  # light ones first
    for rank, k in enumerate(order):
        x, y = (float(v) for v in candidates[k])
        radius = int(round(max(r_min, r_max * np.sqrt(weights[k] / top))))
        colour = tuple(int(c) for c in MARK_COLOURS[(len(order) - 1 - rank) % len(MARK_COLOURS)])
        centre = (int(round(x)), int(round(y)))
        cv2.circle(overlay, centre, radius, colour, -1, cv2.LINE_AA)
        cv2.circle(overlay, centre, radius, (0, 0, 0), max(1, side // 512), cv2.LINE_AA)
    out = cv2.addWeighted(overlay, 0.7, out, 0.3, 0.0)
    if len(order):
        best = order[-1]
        centre = tuple(int(round(float(v))) for v in candidates[best])
        radius = int(round(max(r_min, r_max * np.sqrt(weights[best] / top))))
        cv2.circle(out, centre, radius + 1, (255, 255, 255), max(1, side // 256), cv2.LINE_AA)
    return out


def describe_match(level_index: int, level: LevelView, count: int, point: tuple[float, float],
                   cell: tuple[int, int], weights: np.ndarray, candidates: np.ndarray) -> str:
    """One short Markdown paragraph about what a click found."""
    best = int(np.argmax(weights)) if weights.size else 0
    bx, by = (float(v) for v in candidates[best]) if weights.size else (0.0, 0.0)
    return (f"Clicked ({point[0]:.0f}, {point[1]:.0f}) -> {level_caption(level_index, level, count)}, cell "
            f"(row {cell[0]}, col {cell[1]}): {len(weights)} candidates, confidence "
            f"{float(level.confidence[cell]):.2f}. Heaviest: weight {float(weights[best]):.2f} at "
            f"({bx:.0f}, {by:.0f}) in the exemplar.")
