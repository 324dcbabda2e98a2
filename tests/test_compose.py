"""Compositing of the training-free engine v2: completion that continues nearby texture and copies
sharply, and the person layer's rim."""

from __future__ import annotations

import numpy as np

from core.compose import SCENE_ROWS, complete, front_layer


def _stripes(h: int, w: int, period: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    on = (np.arange(w) // (period // 2)) % 2 == 0
    img[:, on] = (200, 40, 40)
    img[:, ~on] = (30, 30, 180)
    return img


def test_completion_copies_from_near_the_hole_when_a_far_copy_fits_as_well():
    """The same stripes on both sides of a grey band: a hole in the left ones is filled from the left
    ones (the exemplar's texture continued where it was), not from the identical copy far away."""
    img = np.full((96, 192, 3), 128, np.uint8)
    img[:, :64] = _stripes(96, 64, 8)
    img[:, 128:] = _stripes(96, 64, 8)
    hole = np.zeros((96, 192), bool)
    hole[32:64, 16:48] = True
    fill = complete(img, hole, side=192)
    src = np.round(fill.sources(np.argwhere(hole).astype(np.float32))[0]).astype(int)
    assert not hole[src[:, 0], src[:, 1]].any()
    assert (src[:, 1] < 128).all()  # nothing from the far copy
    filled = img[src[:, 0], src[:, 1]]
    assert (filled[:, 0] != 128).mean() > 0.95  # stripes, copied (not the grey band, not a blur)


def test_front_layer_gives_the_rim_to_the_background_and_keeps_deep_holes():
    person = np.zeros((64, 64), bool)
    person[8:56, 8:56] = True
    hole = np.zeros_like(person)
    hole[8:11, 8:56] = True  # a strip along the top edge: the exemplar shows background there
    hole[28:36, 28:36] = True  # deep inside: the person's own texture fills it
    front = front_layer(person, hole, rim=4)
    assert not front[8:11, 8:56].any()
    assert front[28:36, 28:36].all()
    assert front[20:24, 8:56].all()  # the rest of the person stays


def test_fill_votes_count_the_own_cell_fully_at_its_centre_and_half_at_a_border():
    """Full-resolution votes: sharp inside a work cell (its own offset only), blended across the
    border between two cells (half each), never a five-way average."""
    img = _stripes(64, 64, 8)
    hole = np.zeros((64, 64), bool)
    hole[16:48, 16:48] = True
    fill = complete(img, hole, side=16)  # work cells of 4x4 pixels
    points = np.array([[21.5, 21.5], [21.5, 23.5], [23.5, 21.5]], np.float32)  # a cell's centre, the borders
    # with the next cell to the right and below (which then counts as the own cell: numpy's rounding)
    w = fill.weights(points)
    assert np.allclose(w.sum(0), 1)
    assert np.allclose(w[:, 0], [1, 0, 0, 0, 0])
    assert np.allclose(w[:, 1], [0.5, 0, 0, 0.5, 0])  # own and the left neighbour's (VOTES' order)
    assert np.allclose(w[:, 2], [0.5, 0.5, 0, 0, 0])  # own and the upper neighbour's


def _noise(h: int, w: int, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.array(colour, np.float32) + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def test_completion_runs_the_horizon_on_behind_a_person():
    """Sky above ground, a person-shaped hole from the left edge across the horizon: the rows above the
    horizon are filled with sky and those below with ground (a source's distance in rows costs more than
    in columns, so layered backgrounds continue sideways instead of bending round the hole)."""
    img = np.concatenate([_noise(60, 160, (150, 180, 230), 0), _noise(68, 160, (60, 120, 40), 1)])
    hole = np.zeros((128, 160), bool)
    hole[20:128, :90] = True
    fill = complete(img, hole, side=128, rows=SCENE_ROWS)
    points = np.argwhere(hole).astype(np.float32)
    src = np.round(fill.sources(points)[0]).astype(int)
    sky_source = src[:, 0] < 60
    assert not hole[src[:, 0], src[:, 1]].any()
    assert (sky_source == (points[:, 0] < 60))[np.abs(points[:, 0] - 60) > 6].mean() > 0.9  # 0.84 with rows=1


def test_completion_works_in_a_box_per_piece_of_the_hole():
    """Two small holes far apart are completed apart, each in a box near it (the cost follows the hole,
    and each copies from its own neighbourhood), not over the whole picture."""
    img = np.concatenate([_noise(128, 128, (200, 40, 40), 2), _noise(128, 128, (40, 40, 200), 3)], 1)
    hole = np.zeros((128, 256), bool)
    hole[20:30, 20:30] = True
    hole[90:100, 220:230] = True
    fill = complete(img, hole, side=128)
    assert len(fill.parts) == 2
    for part in fill.parts:
        top, left, height, width = part.box
        assert height * width < 0.2 * hole.size
    src = np.round(fill.sources(np.argwhere(hole).astype(np.float32))[0]).astype(int)
    red = img[src[:, 0], src[:, 1], 0] > img[src[:, 0], src[:, 1], 2]
    assert red[np.argwhere(hole)[:, 1] < 128].all() and not red[np.argwhere(hole)[:, 1] >= 128].any()
