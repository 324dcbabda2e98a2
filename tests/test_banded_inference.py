"""CPU inference computes its largest temporaries band of rows by band (PatchMatch's candidate
scoring, the modulation's hidden map, the encoders' skips): the results must not change."""

from __future__ import annotations

import pytest
import torch

import core.layers as layers
from core.corr import normalize_features
from core.patchmatch import MATCHERS, seed_offsets


@pytest.mark.parametrize("official", [True, False])
@pytest.mark.parametrize("batch", [1, 2])
def test_patchmatch_in_bands_is_bit_identical(official, batch, one_thread):
    torch.manual_seed(0)
    h, w = 18, 14
    left = normalize_features(torch.randn(batch, 8, h, w))
    right = normalize_features(torch.randn(batch, 8, h, w))
    exemplar = torch.randn(batch, 3, h, w)
    seeds = seed_offsets(torch.randint(-3, 4, (batch, 2, h // 2, w // 2)).float(), 3, 1)
    matcher = MATCHERS["official" if official else "learned"]
    whole = matcher(8, 9, hidden=8, motion=32, chunk_pixels=1 << 20).eval()
    banded = matcher(8, 9, hidden=8, motion=32, chunk_pixels=3 * w * batch).eval()
    banded.load_state_dict(whole.state_dict())
    with torch.inference_mode():
        a = whole(left, right, exemplar, seeds, iterations=2, temperature=0.01, horizontal_first=[True, False])
        b = banded(left, right, exemplar, seeds, iterations=2, temperature=0.01, horizontal_first=[True, False])
    assert torch.equal(a.positions, b.positions)  # the matches themselves: exactly the same
    if official:
        assert torch.equal(a.indices, b.indices) and torch.equal(a.warp, b.warp)
    else:  # the learned warp sums its candidates in groups sized by chunk_pixels: float rounding only
        assert (a.warp - b.warp).abs().max() < 1e-5 and (a.weights - b.weights).abs().max() < 1e-5


@pytest.mark.parametrize("size", [(37, 21), (5, 9), (2, 6)])
def test_modulated_norm_in_bands_matches_the_whole_map(size, monkeypatch, one_thread):
    torch.manual_seed(0)
    h, w = size
    norm = layers.ModulatedNorm(16, 7, 12).eval()
    x, guide = torch.randn(2, 16, h, w), torch.randn(2, 7, h // 2 + 1, w // 2 + 1)
    with torch.no_grad():  # the plain formula on the whole map
        actv = norm.pad(norm.mlp_shared(layers.resize_nearest(guide, (h, w))))
        expected = layers.positional_norm(x) * (1 + norm.mlp_gamma(actv)) + norm.mlp_beta(actv)
    monkeypatch.setattr(layers, "BAND_ELEMENTS", 200)  # bands of 2 rows: every border case
    with torch.inference_mode():
        out = norm(x, guide)
    assert (out - expected).abs().max() < 1e-5



@pytest.mark.parametrize("fin, fout", [(12, 6), (6, 6)])  # learned shortcut, identity shortcut
@pytest.mark.parametrize("size", [None, (10, 14), (9, 13)])  # no resize, x2, an uneven nearest resize
def test_modulated_block_in_bands_matches_the_plain_block(fin, fout, size, monkeypatch, one_thread):
    """The CPU inference path (x resized band by band, modulation written into its padded buffer,
    the shortcut added band by band) gives the plain block's numbers."""
    torch.manual_seed(0)
    block = layers.ModulatedResBlock(fin, fout, 5, 8).eval()
    x, guide = torch.randn(2, fin, 5, 7), torch.randn(2, 5, 4, 4)
    x, guide = x.contiguous(memory_format=torch.channels_last), guide.contiguous(memory_format=torch.channels_last)
    expected = block(x, guide, size).detach()  # autograd on: the plain path
    monkeypatch.setattr(layers, "BAND_ELEMENTS", 150)  # bands of 2-6 rows: every border case
    with torch.inference_mode():
        assert layers.banded_inference(x, size)
        out = block(x, guide, size)
    assert out.shape == expected.shape == (2, fout, *(size or (5, 7)))
    assert (out - expected).abs().max() < 1e-5


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (10, 14), (15, 21), (9, 13), (3, 2)])
def test_nearest_rows_are_the_rows_of_the_resized_map(size, channels_last):
    x = torch.randn(1, 3, 5, 7)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    whole = layers.resize_nearest(x, size)
    for r, e in [(0, 1), (1, size[0]), (size[0] - 1, size[0]), (1, 4)]:
        band = layers.nearest_rows(x, size, r, e)
        assert torch.equal(band, whole[:, :, r:e])
        if channels_last:  # the layout is kept (a mixed layout makes every later op slow)
            assert band.is_contiguous(memory_format=torch.channels_last)
