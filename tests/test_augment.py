"""Pseudo exemplars: seeded, aligned between image and label, and the grid says where pixels came from."""

import torch

from core.augment import apply_grid, grid_to_pixels, pseudo_exemplar, random_grid
from core.corr import pixel_grid


def _image(b=2, h=48, w=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def test_zero_strength_is_identity():
    x = _image()
    pair = pseudo_exemplar(x, generator=torch.Generator().manual_seed(0), strength=0.0, flip=False)
    assert torch.allclose(pair.image, x, atol=1e-5)
    assert pair.valid.all()
    assert torch.allclose(grid_to_pixels(pair.grid)[0], pixel_grid(48, 64, "cpu"), atol=1e-4)


def test_seeded_and_different_per_seed():
    x = _image()
    a = pseudo_exemplar(x, generator=torch.Generator().manual_seed(3))
    b = pseudo_exemplar(x, generator=torch.Generator().manual_seed(3))
    c = pseudo_exemplar(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.image, b.image) and torch.equal(a.grid, b.grid)
    assert not torch.allclose(a.image, c.image)
    assert (a.image - x).abs().mean() > 0.05  # it really transforms


def test_label_follows_image_and_one_hot_survives_nearest():
    x = _image(1)
    onehot = torch.nn.functional.one_hot(torch.randint(0, 4, (1, 48, 64)), 4).permute(0, 3, 1, 2).float()
    pair = pseudo_exemplar(x, torch.cat([x, onehot], 1), generator=torch.Generator().manual_seed(5))
    assert torch.allclose(pair.label[:, :3], pair.image, atol=1e-6)
    pair = pseudo_exemplar(x, onehot, generator=torch.Generator().manual_seed(5), label_mode="nearest")
    assert torch.equal(pair.label.sum(1), torch.ones(1, 48, 64))


def test_grid_locates_source_pixels():
    """A marked square of x is found in T(x) exactly where the grid points back to it."""
    h, w = 64, 80
    x = torch.zeros(1, 1, h, w)
    x[..., 30:36, 40:46] = 1.0
    for seed in range(4):
        grid = random_grid(1, (h, w), torch.Generator().manual_seed(seed), strength=1.0)
        t = apply_grid(x, grid)
        spot = (t[0, 0] > 0.9).nonzero().float()
        if not len(spot):
            continue
        src = grid_to_pixels(grid)[0][:, spot[:, 0].long(), spot[:, 1].long()]  # (2, n) (row, col) in x
        assert (src[0] > 29).all() and (src[0] < 36).all() and (src[1] > 39).all() and (src[1] < 46).all()
