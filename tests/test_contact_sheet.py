"""core.utils.contact_sheet: the layout the sheet's docstring promises."""

import numpy as np

from core.utils.contact_sheet import BACKGROUND, CAPTION, EMPTY, HEADER, contact_sheet, letterbox


def test_cells_land_where_the_layout_says():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)
    tall = rng.integers(0, 256, (90, 30, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (50, 50), dtype=np.uint8)
    sheet = contact_sheet(["input", "exemplar", "v1"], [("a", [wide, tall, gray]), ("b", [tall, wide, "refused"])],
                          tile=64)
    assert sheet.shape == (HEADER + 2 * (CAPTION + 64), 3 * 64, 3) and sheet.dtype == np.uint8

    def cell(r: int, c: int) -> np.ndarray:
        top = HEADER + r * (CAPTION + 64) + CAPTION
        return sheet[top:top + 64, c * 64:(c + 1) * 64]

    assert np.array_equal(cell(0, 0), letterbox(wide, 64))
    assert np.array_equal(cell(1, 0), letterbox(tall, 64))
    assert np.array_equal(cell(1, 1), letterbox(wide, 64))
    assert np.array_equal(cell(0, 2), letterbox(gray, 64))
    assert (cell(1, 2) == EMPTY).all(-1).mean() > 0.8  # a refusal: a grey tile with its message


def test_letterbox_keeps_the_whole_picture_centred():
    wide = np.zeros((40, 80, 3), np.uint8)
    tile = letterbox(wide, 64)
    assert (tile[:16] == BACKGROUND).all() and (tile[16:48] == 0).all() and (tile[48:] == BACKGROUND).all()


def test_a_labelled_cell_keeps_its_picture_above_the_label():
    picture = np.full((64, 64, 3), 90, np.uint8)
    sheet = contact_sheet(["v1"], [("a", [(picture, "NME 0.02")])], tile=64)
    cell = sheet[HEADER + CAPTION:HEADER + CAPTION + 64]
    assert (cell[:48] == 90).all() and (cell[48:] == 255).mean() > 0.5 and (cell[48:] < 100).any()
