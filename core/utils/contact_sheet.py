"""A contact sheet: one row per example, one column per picture (input | exemplar | outputs...),
each picture letterboxed whole into a square tile, a caption strip above every row."""

from __future__ import annotations

import textwrap

import cv2
import numpy as np

HEADER = 26  # pixels: the column titles
CAPTION = 20  # pixels: each row's caption strip
BACKGROUND = (236, 236, 236)
EMPTY = (200, 200, 200)  # a cell without a picture (refused, failed)


def letterbox(picture: np.ndarray, side: int) -> np.ndarray:
    """The whole picture (H, W, 3|1) uint8 scaled into a (side, side, 3) tile, centred on the background."""
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    h, w = picture.shape[:2]
    s = side / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    interpolation = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    small = cv2.resize(np.ascontiguousarray(picture[..., :3]), (nw, nh), interpolation=interpolation)
    tile = np.full((side, side, 3), BACKGROUND, np.uint8)
    top, left = (side - nh) // 2, (side - nw) // 2
    tile[top:top + nh, left:left + nw] = small
    return tile


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.4) -> None:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)


def _message_tile(message: str, side: int) -> np.ndarray:
    """A grey tile with ``message`` wrapped on it (an engine refused or failed)."""
    tile = np.full((side, side, 3), EMPTY, np.uint8)
    width = max(8, side // 7)
    for i, line in enumerate(textwrap.wrap(message, width)[: max(1, side // 14 - 1)]):
        _text(tile, line, 4, 16 + 14 * i, 0.35)
    return tile


def _label(tile: np.ndarray, label: str) -> np.ndarray:
    """``label`` on a white strip along the tile's bottom edge."""
    tile = tile.copy()
    tile[-16:] = (255, 255, 255)
    _text(tile, label, 2, tile.shape[0] - 4, 0.3)
    return tile


Cell = np.ndarray | str | tuple[np.ndarray, str]


def contact_sheet(columns: list[str], rows: list[tuple[str, list[Cell]]], tile: int = 192) -> np.ndarray:
    """(H, W, 3) uint8: a header of ``columns`` titles, then per row its caption and its cells,
    each a picture (letterboxed into ``tile``), a (picture, label) pair (the label on a strip along
    the tile's bottom), or a message (a grey tile with the text).

    Layout: width = len(columns) * tile; height = HEADER + len(rows) * (CAPTION + tile); row r's
    cell c starts at (HEADER + r * (CAPTION + tile) + CAPTION, c * tile)."""
    sheet = np.full((HEADER + len(rows) * (CAPTION + tile), len(columns) * tile, 3), BACKGROUND, np.uint8)
    for c, title in enumerate(columns):
        _text(sheet, title, c * tile + 6, HEADER - 8, 0.5)
    for r, (caption, cells) in enumerate(rows):
        if len(cells) != len(columns):
            raise ValueError(f"row {r} has {len(cells)} cells for {len(columns)} columns")
        top = HEADER + r * (CAPTION + tile)
        _text(sheet, caption, 4, top + CAPTION - 6)
        for c, cell in enumerate(cells):
            if isinstance(cell, str):
                picture = _message_tile(cell, tile)
            elif isinstance(cell, tuple):
                picture = _label(letterbox(cell[0], tile), cell[1])
            else:
                picture = letterbox(cell, tile)
            sheet[top + CAPTION:top + CAPTION + tile, c * tile:(c + 1) * tile] = picture
    return sheet
