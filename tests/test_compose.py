"""Compositing of the training-free engine v2: completion that continues nearby texture and copies
sharply, and the person layer's rim."""

from __future__ import annotations

import numpy as np

from core.compose import complete, front_layer


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


def test_completion_votes_and_best_candidates_match_the_plain_computation():
    """The hole-only patch vote equals the mean over all 25 patches computed for every pixel, and the
    completion's matcher (no soft warp) keeps as best what the full PatchMatch's warp weighs highest."""
    import torch

    from core.compose import _best, _BestMatch, _fill
    from core.corr import pixel_grid
    from core.patchmatch import PatchMatch

    g = torch.Generator().manual_seed(0)
    h, w = 20, 24
    im = torch.rand(1, 3, h, w, generator=g)
    cand = torch.randint(-4, 5, (1, 2, 9, h, w), generator=g).float()
    hole = torch.zeros(h, w, dtype=torch.bool)
    hole[5:15, 6:18] = True
    grid = pixel_grid(h, w, "cpu")
    off = cand[0, :, 0].round().long()
    pad = torch.nn.functional.pad(off[None].float(), (2, 2, 2, 2), mode="replicate")[0].long()
    total = torch.zeros_like(im)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            o = pad[:, 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]
            total += im[:, :, (grid[0].long() + o[0]).clamp(0, h - 1), (grid[1].long() + o[1]).clamp(0, w - 1)]
    expected = torch.where(hole[None, None], total / 25, im)
    assert torch.allclose(_fill(im, cand, hole, grid), expected, atol=1e-6)

    feats = torch.nn.functional.normalize(torch.randn(1, 8, h, w, generator=g), dim=1)
    seeds = cand.clamp(-3, 3)
    best = _BestMatch(0, 9, use_gru=False)(feats, feats, im, seeds, iterations=2, temperature=0.01)
    full = PatchMatch(0, 9, use_gru=False)(feats, feats, im, seeds, iterations=2, temperature=0.01)
    assert torch.equal(_best(best, grid), _best(full, grid))
