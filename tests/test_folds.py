"""core.charts.folds: the one fold-over definition (engine v2's repair and eval-warp's figure)."""

from __future__ import annotations

import numpy as np
import pytest

import core.metrics
from core.charts import folds
from core.charts.folds import fold_fraction, unfold


def _identity(h: int, w: int) -> np.ndarray:
    return np.stack(np.mgrid[0:h, 0:w], axis=-1).astype(np.float32)


def test_the_engine_and_the_metric_share_one_definition():
    assert core.metrics.fold_fraction is folds.fold_fraction
    assert core.metrics.jacobian_determinant is folds.jacobian_determinant


def test_a_fold_one_pixel_wide_is_counted():
    """Two neighbouring columns swapped: central differences (what the repair used to read) stay positive
    everywhere, but the cell between the two columns shows the exemplar mirrored."""
    h, w = 20, 40
    pos = _identity(h, w)
    pos[:, [30, 31], 1] = pos[:, [31, 30], 1]
    r_y, r_x = np.gradient(pos[..., 0])
    c_y, c_x = np.gradient(pos[..., 1])
    assert (r_y * c_x - r_x * c_y > 0).all()
    assert fold_fraction(pos) == pytest.approx(1 / (w - 1))  # exactly the column of cells between them


def test_a_fold_in_one_corner_of_a_cell_is_counted():
    """The bilinear cell folds when any of its four corners does, not only the top-left one."""
    pos = _identity(3, 3)
    pos[1, 1] = (-0.5, -0.5)  # the middle pixel pushed past its top-left neighbour
    det = folds.corner_determinants(pos)
    assert det[0, 0, 0] > 0 and det[0, 0, 3] < 0  # cell (0, 0): fine at its top-left corner only
    assert folds.jacobian_determinant(pos)[0, 0] < 0


def test_a_seam_between_quilted_tiles_is_not_a_fold_but_a_mirror_inside_a_tile_is():
    h, w = 32, 64
    pos = _identity(h, w)
    pos[:, 32:] += (37.0, -50.0)  # the right half copies another part of the exemplar: a jump back
    pieces = np.zeros((h, w), np.int32)
    pieces[:, 32:] = 1
    assert fold_fraction(pos) == pytest.approx(1 / (w - 1))  # read as one map, the seam "folds"
    assert fold_fraction(pos, pieces=pieces) == 0.0
    mirrored = pos.copy()
    mirrored[8:24, 40:56, 1] = mirrored[8:24, 40:56, 1][:, ::-1]
    assert fold_fraction(mirrored, pieces=pieces) > 0.05


def test_unfold_smooths_inside_a_piece_and_leaves_the_others():
    h, w = 48, 96
    pos = _identity(h, w)
    pos[:, 48:] += (20.0, -40.0)
    pieces = np.zeros((h, w), np.int32)
    pieces[:, 48:] = 1
    folded = pos.copy()
    folded[16:32, 20:36, 1] = folded[16:32, 20:36, 1][:, ::-1]  # a mirrored patch in the left piece
    fixed, before = unfold(folded, pos, pieces=pieces)
    assert before > 0.02 and fold_fraction(fixed, pieces=pieces) == 0.0
    np.testing.assert_allclose(fixed[:, 48:], folded[:, 48:], atol=1e-4)  # the other piece: untouched
    # Next to the seam no position is pulled toward the other tile (a blur across it would: tens of pixels).
    assert np.abs(fixed[:, 44:48] - folded[:, 44:48]).max() < 3.0
    across, _ = unfold(folded, pos)
    assert np.abs(across[:, 44:48] - folded[:, 44:48]).max() > 10.0


def test_fold_fraction_reads_a_given_determinant_as_its_own():
    """Engine v2 measures one map over two masks with one determinant: the same figure as computing it."""
    from core.charts.folds import fold_fraction, jacobian_determinant

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:24, :30].astype(np.float32)
    positions = np.stack([rows, cols], -1) + rng.normal(0, 0.6, (24, 30, 2)).astype(np.float32)
    used = rng.uniform(size=(24, 30)) > 0.2
    det = jacobian_determinant(positions)
    assert 0 < fold_fraction(positions, used) == fold_fraction(positions, used, det=det)
    assert fold_fraction(positions, used, det=np.ones_like(det)) == 0.0  # the given one is what counts
