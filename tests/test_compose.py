"""Compositing of the training-free engine v2: completion that continues nearby texture and copies
sharply, and the person layer's rim."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core.compose import _structure_metric, complete, front_layer


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


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(img)


def test_completion_matched_only_near_what_is_read_gives_the_same_fill_there(monkeypatch):
    """A hole of two far pieces, only one of them read: the matching covers that piece's zone only (less
    work), and the fill read there is the one matching the whole picture gives. Exactly so when the
    descriptors are each patch's own (here: a fixed projection); the engine's take their projection
    and scale from the whole picture, which the unread fill moves a little (docs/engine.md)."""
    import torch.nn.functional as F

    import core.compose as compose

    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(75, compose.CHANNELS, generator=g))[0]

    def own_patches(image, allowed=None, locality=0.0):  # unit descriptors of each patch alone
        h, w = image.shape[-2:]
        proj = F.unfold(F.pad(image - 0.5, (2,) * 4, mode="replicate"), 5)[0].t() @ basis
        proj = torch.cat([proj, compose.pixel_grid(h, w, "cpu").reshape(2, -1).t() / max(h, w) * locality], 1)
        lift = (100 - proj.square().sum(1, keepdim=True)).clamp_min(0).sqrt()
        return (torch.cat([proj, lift], 1) / 10).t().reshape(1, -1, h, w)

    monkeypatch.setattr(compose, "_features", own_patches)
    img = _textured(96, 192)
    hole = np.zeros((96, 192), bool)
    hole[30:54, 12:44] = True  # read on its left half
    hole[40:56, 160:176] = True  # not read
    need = np.zeros_like(hole)
    need[30:54, 12:28] = True
    full = complete(img, hole, side=192, need=np.ones_like(hole))  # every pixel read: matched everywhere
    part = complete(img, hole, side=192, need=need)
    zones = compose._zones(compose._cells(need, (96, 192)), torch.from_numpy(full.hole_work), 4,
                           {0: 2, 1: 3, 2: 3, 3: 3}, 2)
    assert zones[0].mean() < 0.2 and not zones[0][40:56, 160:176].any()  # the unread piece is not matched
    points = np.argwhere(need).astype(np.float32)
    assert np.array_equal(part.sources(points), full.sources(points))
    assert not np.array_equal(part.offsets[40:56, 160:176], full.offsets[40:56, 160:176])  # (it was left out)


@pytest.mark.parametrize("layers", [False, True])
@pytest.mark.parametrize("task", ["mask", "face"])
def test_exemplar_background_is_completed_again_only_for_what_was_not_completed_yet(task, layers):
    """Engine v2 keeps the last exemplar's completed background (a video's frames share it): reused while
    what the output sees lies within what was completed, else completed again for both views; along the
    structures beside the hole (``follow``), split at level edges into layers (``layers``), for whole
    figures, not for faces (FOLLOW_TASKS); split into layers only when the engine is asked to
    (``completion_layers``)."""
    from core.conditions.condition import Condition
    from core.engine_v2 import TrainingFreeEngineV2

    img = _textured(64, 64, 1)
    img[:24] //= 3  # a level edge beside the hole: the two guesses differ
    ex = Condition(task=task, label=torch.zeros(1, 64, 64), preview=img, image=img)
    hole = np.zeros((64, 64), bool)
    hole[16:48, 16:48] = True
    left, right = np.zeros_like(hole), np.zeros_like(hole)
    left[16:48, 16:20] = True
    right[16:48, 44:48] = True
    engine = TrainingFreeEngineV2(completion_side=64, completion_layers=("mask",) if layers else ())
    first = engine._completed_background(ex, hole, left)
    assert engine._completed_background(ex, hole, left & (np.arange(64) < 30)[:, None]) is first
    both = engine._completed_background(ex, hole, right)
    assert both is not first and np.array_equal(engine._backgrounds.get(ex)[2], left | right)
    points = np.argwhere(left | right).astype(np.float32)
    mask = task == "mask"
    whole = complete(img, hole, side=64, follow=mask, layers=mask and layers, perceptual=mask)
    assert np.array_equal(both.sources(points), whole.sources(points))
    others = [complete(img, hole, side=64, follow=not mask, layers=not mask and layers, perceptual=not mask),
              complete(img, hole, side=64, follow=mask, layers=mask and layers, perceptual=mask, stitched=True)]
    if mask:  # the level edge at row 24 splits the person's hole into layers when the engine asks; in CIELab
        others.append(complete(img, hole, side=64, follow=True, layers=not layers, perceptual=True))
        others.append(complete(img, hole, side=64, follow=True, layers=layers))
    for other in others:
        assert not np.array_equal(both.sources(points), other.sources(points))


@pytest.mark.parametrize("task", ["pose", "mask", "face"])
def test_engine_completes_backgrounds_without_layers_by_default(task, monkeypatch):
    """By default engine v2 completes a pose or mask exemplar's background along the structures without
    layers (each task had a cross pair that rose with them), a mask's matched in CIELab (pose's rose), a face's
    isotropically in RGB; asked, in layers; not stitched from dominant shifts (``core/stitch.py``) unless the task
    is in STITCHED_TASKS."""
    from core import engine_v2
    from core.conditions.condition import Condition
    from core.engine_v2 import TrainingFreeEngineV2

    img = _textured(64, 64, 1)
    img[:24] //= 3  # a level edge beside the hole
    ex = Condition(task=task, label=torch.zeros(1, 64, 64), preview=img, image=img)
    hole = np.zeros((64, 64), bool)
    hole[16:48, 16:48] = True
    points = np.argwhere(hole).astype(np.float32)
    for asked in ((), (task,)) if task != "face" else ((),):  # layers are asked for pose and mask only
        fill = TrainingFreeEngineV2(completion_side=64, completion_layers=asked)._completed_background(ex, hole, hole)
        want = (task != "face", task != "face" and bool(asked), task == "mask")
        for follow, layers, perceptual in ((False, False, False), (True, False, False), (True, False, True),
                                           (True, True, False), (True, True, True)):
            other = complete(img, hole, side=64, follow=follow, layers=layers, perceptual=perceptual)
            same = np.array_equal(fill.sources(points), other.sources(points))
            assert same == ((follow, layers, perceptual) == want)
    default = TrainingFreeEngineV2(completion_side=64)._completed_background(ex, hole, hole)
    plain = complete(img, hole, side=64, follow=task != "face", perceptual=task == "mask")
    assert np.array_equal(default.sources(points), plain.sources(points))
    stitched = complete(img, hole, side=64, follow=task != "face", perceptual=task == "mask", stitched=True)
    assert not np.array_equal(default.sources(points), stitched.sources(points))
    monkeypatch.setattr(engine_v2, "STITCHED_TASKS", (task,))
    asked = TrainingFreeEngineV2(completion_side=64)._completed_background(ex, hole, hole)
    assert np.array_equal(asked.sources(points), stitched.sources(points))


def test_a_seam_between_two_copied_zones_takes_no_third_hue_when_matched_perceptually():
    """A navy zone (a flag, its red-and-white stripes in one corner) beside a light-blue backdrop, their
    boundary all inside the hole (no navy-to-blue edge to copy anywhere): in RGB the seam's patches copy the
    stripes' red-to-white edge (red is nearer navy, white nearer light blue, than navy is to light blue) and
    draw a red line down it (the painted cameraman onto Grace Hopper); matched in CIELab on the coarser levels,
    where the zones and their seam are decided, the seam is navy against blue."""
    rng = np.random.default_rng(0)
    img = np.zeros((128, 128, 3), np.float32)
    img[:, :64] = (16, 16, 39)
    img[:, 64:] = (113, 148, 204)
    rows, cols = np.mgrid[:128, :128]
    corner = (rows < 40) & (cols < 40)
    stripes = ((rows + cols) // 6) % 2 == 0
    img[corner & stripes] = (180, 30, 40)
    img[corner & ~stripes] = (235, 230, 230)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    hole = np.zeros((128, 128), bool)
    hole[:, 44:84] = True
    points = np.argwhere(hole).astype(np.float32)
    for perceptual in (False, True):
        fill = complete(img, hole, side=128, follow=True, perceptual=perceptual)
        src = np.round(fill.sources(points)[0]).astype(int)
        copied = img[src[:, 0], src[:, 1]].astype(int)
        red = int(((copied[:, 0] - copied[:, 2] > 60) | (copied.min(1) > 150)).sum())  # stripe red or white
        assert (red == 0) == perceptual, (perceptual, red)
    with pytest.raises(ValueError):
        complete(img, hole, follow=False, perceptual=True)


def test_fill_sources_equal_the_per_vote_computation():
    """``Completion.sources`` reads each point's five votes from a per-cell table: the same positions as
    computing every vote for every point (own cell, neighbours outside the hole giving the own offset)."""
    from core.compose import VOTES, Completion

    rng = np.random.default_rng(0)
    hole = np.zeros((40, 52), bool)
    hole[8:30, 10:44] = True
    hole_work = np.zeros((10, 13), bool)
    hole_work[2:8, 2:11] = True
    fill = Completion(rng.integers(-6, 7, (10, 13, 2)).astype(np.float32), hole_work, hole)
    points = rng.uniform(-2, 54, (500, 2)).astype(np.float32)
    r = np.clip(np.round(points[:, 0]).astype(int), 0, 39)
    c = np.clip(np.round(points[:, 1]).astype(int), 0, 51)
    cr, cc = (r * 10) // 40, (c * 13) // 52
    expected = np.empty((len(VOTES), 500, 2), np.float32)
    for v, (dr, dc) in enumerate(VOTES):
        nr, nc = np.clip(cr + dr, 0, 9), np.clip(cc + dc, 0, 12)
        off = np.where(hole_work[nr, nc][:, None], fill.offsets[nr, nc], fill.offsets[cr, cc]) * np.float32(4)
        src = points + np.where(hole[r, c][:, None], off, 0)
        expected[v] = np.stack([src[:, 0].clip(0, 39), src[:, 1].clip(0, 51)], 1)
    assert np.array_equal(fill.sources(points), expected)


def _horizon_scene() -> tuple[np.ndarray, np.ndarray]:
    """Sky, a dark band of buildings on the horizon, grass; a person-sized hole over the left part
    (the horizon known only to its right, as behind the cameraman)."""
    rng = np.random.default_rng(0)
    img = np.zeros((128, 128, 3), np.float32)
    img[:52] = (200, 205, 215)
    img[52:60] = (90, 90, 95)
    img[60:] = (110, 120, 90)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    hole = np.zeros((128, 128), np.uint8)
    cv2.ellipse(hole, (20, 100), (44, 80), 0, 0, 360, 1, -1)
    return img, hole > 0


def test_background_completion_continues_the_horizon_beside_the_hole():
    """``follow``: the band on the horizon goes on through the hole along its rows, and the grass under
    it stays grass (isotropic completion lets the sky and grass close over the band: a diagonal ramp)."""
    img, hole = _horizon_scene()
    points = np.argwhere(hole)
    band = (points[:, 0] >= 52) & (points[:, 0] < 60)
    ground = points[:, 0] >= 64
    share = {}
    for follow in (False, True):
        fill = complete(img, hole, follow=follow)
        src = np.round(fill.sources(points.astype(np.float32))[0]).astype(int)
        assert not hole[src[:, 0], src[:, 1]].any()
        share[follow] = (((src[band, 0] >= 50) & (src[band, 0] < 62)).mean(), (src[ground, 0] >= 60).mean())
    assert share[True][0] > 0.3 and share[True][0] > 3 * share[False][0]
    assert share[True][1] > 0.93


def test_structure_metric_follows_level_edges_and_leaves_hanging_folds_alone():
    """Beside a horizon, moving across rows costs more than along them; beside vertical folds (a hanging
    flag) the metric stays the identity (only level structures are continued)."""
    img, hole = _horizon_scene()
    as_tensor = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    metric = _structure_metric(as_tensor, torch.from_numpy(hole))
    yy, _, xx = metric[:, 56, 30]  # in the hole, on the horizon's line
    assert yy > 3 * xx
    folds = np.ascontiguousarray(img.transpose(1, 0, 2))  # the same scene turned: vertical edges
    as_tensor = torch.from_numpy(folds).permute(2, 0, 1)[None].float() / 255
    metric = _structure_metric(as_tensor, torch.from_numpy(np.ascontiguousarray(hole.T)))
    assert torch.allclose(metric[:, 30, 56], torch.tensor([1.0, 0.0, 1.0]), atol=0.05)


def test_a_cancelled_completion_stops_at_its_next_pass_and_an_uncancelled_one_is_unchanged(monkeypatch):
    """``cancelled`` is asked between passes: once it says so no further matching round runs and None comes
    back; while it says no, the fill is the one a completion without it gives (the same offsets)."""
    import core.compose as compose

    img, hole = _horizon_scene()
    rounds = []
    real_fill = compose._fill
    monkeypatch.setattr(compose, "_fill", lambda *a: rounds.append(1) or real_fill(*a))
    plain = complete(img, hole, follow=True)
    all_rounds = len(rounds)
    rounds.clear()
    assert np.array_equal(complete(img, hole, follow=True, cancelled=lambda: False).offsets, plain.offsets)
    assert len(rounds) == all_rounds
    rounds.clear()
    assert complete(img, hole, follow=True, cancelled=lambda: len(rounds) >= 2) is None
    assert len(rounds) == 2 < all_rounds


def _table_scene() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's table in small: a light backdrop, a black table under a level edge (row 70) on the
    right, a light flag down the left edge, and a person-shaped hole between them reaching below the edge."""
    rng = np.random.default_rng(3)
    img = np.full((128, 128, 3), 200, np.float64)
    img[70:, 72:] = 20  # the table, its top edge seen right of the hole only
    img[:, :20] = (230, 230, 230)
    img[:, :20][:, (np.arange(20) // 5) % 2 == 0] = (200, 40, 40)  # a hanging flag: stripes top to bottom
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    hole = np.zeros((128, 128), bool)
    hole[30:, 24:72] = True
    return img, hole


def test_a_level_edge_beside_the_hole_splits_it_into_layers_filled_from_their_own_side():
    """The part of the hole under the table's edge is filled from under it (the table's black), the part
    above from above (the backdrop): not the grey slab a guess mixing the flag's white and the table's
    black gave, copied from a patch of backdrop (docs/engine.md, seventh session, engineer C)."""
    img, hole = _table_scene()
    fill = complete(img, hole, follow=True, layers=True)
    points = np.argwhere(hole)
    src = np.round(fill.sources(points.astype(np.float32))[0]).astype(int)
    assert not hole[src[:, 0], src[:, 1]].any()
    under_edge = (points[:, 0] > 70) & (points[:, 0] < 84) & (points[:, 1] >= 50)  # the edge's course, near
    below = points[:, 0] >= 76  # the table
    above = points[:, 0] < 64
    # The edge goes on level: just under it the table (without layers: 25 % of those pixels, grey 155, the
    # table's top sloping down across the hole), and nothing under the edge copies from above it.
    assert (src[under_edge, 0] >= 70).mean() > 0.9
    assert img[src[under_edge, 0], src[under_edge, 1]].mean() < 90
    assert (src[below, 0] >= 70).mean() > 0.99
    assert (src[above, 0] < 70).mean() > 0.95


def test_layers_are_found_only_for_a_level_edge_that_runs_into_the_hole():
    """``_layers`` splits at the table's edge (the line's row there, level), and finds nothing in the same
    scene without the table (flag stripes ending at the picture's edge are no layer edge) nor for a hole
    that the edge does not reach."""
    from core.compose import _layers

    img, hole = _table_scene()
    as_tensor = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    targets, sources = _layers(as_tensor, torch.from_numpy(hole))
    assert sources.shape[0] == 2
    layer = sources.argmax(0)
    assert (layer[:68] == 0).all() and (layer[72:] == 1).all()  # split at the edge, level across the picture
    assert (targets[:, 72:, 24:72].argmax(0) == 1).all() and (targets.sum(0)[:, 24:72] == 1).all()
    assert (targets.sum(0)[:, :16] == 0).all()  # past the hole's far side (the flag): any source
    for table in (200, 175):  # no table; a faint shade under the line (an edge, but no layer's)
        plain = img.copy()
        plain[70:, 72:] = np.clip(plain[70:, 72:].astype(int) - 20 + table, 0, 255)
        as_tensor = torch.from_numpy(plain).permute(2, 0, 1)[None].float() / 255
        assert _layers(as_tensor, torch.from_numpy(hole)) is None
    small = np.zeros_like(hole)
    small[20:50, 30:60] = True  # above the edge, away from it
    as_tensor = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    assert _layers(as_tensor, torch.from_numpy(small)) is None


def test_completion_layers_take_task_names_only():
    """``completion_layers``: one name is that task (not its letters), a list its tasks; a name outside
    FOLLOW_TASKS, or a value that is no list of names, is refused naming the allowed tasks."""
    from core.engine_v2 import FOLLOW_TASKS, TrainingFreeEngineV2
    from core.errors import InputError

    assert TrainingFreeEngineV2(completion_layers="pose").completion_layers == ("pose",)
    assert TrainingFreeEngineV2(completion_layers=["mask", "pose"]).completion_layers == ("mask", "pose")
    assert TrainingFreeEngineV2(completion_layers=()).completion_layers == ()
    for bad in ("face", ["pose", "cats"], True, 3, None):
        with pytest.raises(InputError, match="|".join(repr(t) for t in FOLLOW_TASKS)):
            TrainingFreeEngineV2(completion_layers=bad)


def _star_field_beside_a_sky() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A flag's star field (navy, white stars on a 12-pixel lattice) beside a sky's vertical sweep, and a large
    hole across the bottom of both (a person removed): the picture, the hole, where the lattice's stars are
    and the sky as drawn."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:128, :128]
    img = np.zeros((128, 128, 3), np.float32)
    img[:, :64] = (20, 22, 60)
    stars = (rows % 12 < 3) & (cols % 12 < 3) & (cols < 60)
    img[stars] = (240, 240, 235)
    sky = np.stack([100 + rows * 0.4, 140 + rows * 0.4, 200 + rows * 0.2], -1)
    img[:, 64:] = sky[:, 64:]
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    hole = np.zeros((128, 128), bool)
    hole[56:, 12:100] = True
    return img, hole, stars, sky


def test_a_large_hole_in_a_star_field_is_stitched_with_its_stars_not_left_a_flat_navy_mass():
    """Stitched (``core/stitch.py``), the hole's part in the star field is the lattice of stars continued, a
    period further wherever the nearer copy is itself in the hole; the plain completion leaves it a flat navy
    mass (a few stars near the border, a smear). The sky's sweep beside it is continued as smoothly both ways
    (a shifted copy of a gradient would show steps: there the completion's own offsets are kept)."""
    img, hole, stars, sky = _star_field_beside_a_sky()
    points = np.argwhere(hole).astype(np.float32)
    star_points = stars[hole]
    sky_points = points[:, 1] >= 68
    found = {}
    for stitched in (False, True):
        fill = complete(img, hole, side=128, stitched=stitched)
        src = np.round(fill.sources(points)[0]).astype(int)
        assert not hole[src[:, 0], src[:, 1]].any()
        copied = img[src[:, 0], src[:, 1]].astype(float)
        white = copied.min(1) > 180
        found[stitched] = (white[star_points].mean(), white[~star_points & (points[:, 1] < 60)].mean())
        drawn = sky[points[sky_points, 0].astype(int), points[sky_points, 1].astype(int)]
        assert np.abs(copied[sky_points] - drawn).mean() < 8, stitched  # the sweep, continued
    assert found[True][0] > 0.9 and found[True][1] < 0.02, found  # stars where the lattice has them, only there
    assert found[False][0] < 0.5, found  # the plain completion: mostly navy where stars belong


def test_stitching_gives_a_shifted_copys_small_pieces_back_to_the_completion(monkeypatch):
    """A shifted copy's connected piece smaller than ISLAND cells (a star's fragment cut by a seam) takes the
    completion's label; pieces of ISLAND cells or more, of any shifted label, stay; the completion's own
    pieces stay however small."""
    from core import stitch

    side = 24
    grid = np.full((side, side), 3)  # 3: the completion's label
    grid[1:6, 1:6] = 0  # 25 cells: a fragment
    grid[8:16, 1:9] = 0  # 64 cells of the same label: a whole piece
    grid[1:11, 12:22] = 1  # 100 cells
    grid[18:20, 18:20] = 2  # 4 cells, touching nothing of its label
    hole = np.ones((side, side), bool)
    hole[23] = False  # a row outside the hole: no label
    at = torch.from_numpy(np.argwhere(hole))
    labels = torch.from_numpy(grid[hole])
    monkeypatch.setattr(stitch, "ISLAND", 64)
    out = stitch._without_islands(labels, at, (side, side), 3).numpy()
    want = grid.copy()
    want[1:6, 1:6] = 3
    want[18:20, 18:20] = 3
    assert np.array_equal(out, want[hole])


def test_stitching_keeps_a_hole_whose_picture_does_not_repeat_to_the_completion():
    """No repetition to continue (a smooth ramp: every shift's copy steps it): the stitched fill is the
    completion's own wherever its copy agrees (no shifted copies of a gradient)."""
    rows, cols = np.mgrid[:96, :96]
    img = np.stack([60 + rows, 80 + cols, 120 + (rows + cols) // 2], -1).clip(0, 255).astype(np.uint8)
    hole = np.zeros((96, 96), bool)
    hole[30:80, 20:70] = True
    points = np.argwhere(hole).astype(np.float32)
    plain = complete(img, hole, side=96)
    stitched = complete(img, hole, side=96, stitched=True)
    same = (np.abs(plain.sources(points) - stitched.sources(points)).max(-1) < 0.5).all(0)
    assert same.mean() > 0.95, same.mean()
