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
    """A marked square of x is found in T(x) exactly where the grid points back to it. The square
    is put where T(x)'s centre pixel comes from, so every seed sees it (none is skipped)."""
    h, w = 64, 80
    for seed in range(4):
        grid = random_grid(1, (h, w), torch.Generator().manual_seed(seed), strength=1.0)
        r, c = (int(v) for v in grid_to_pixels(grid)[0, :, h // 2, w // 2].round())
        x = torch.zeros(1, 1, h, w)
        x[..., r - 3:r + 3, c - 3:c + 3] = 1.0
        t = apply_grid(x, grid)
        spot = (t[0, 0] > 0.9).nonzero()
        assert len(spot) >= 16, seed  # a 6x6 square, resized by at most 20%
        src = grid_to_pixels(grid)[0][:, spot[:, 0], spot[:, 1]]  # (2, n) (row, col) in x
        assert (src[0] > r - 4).all() and (src[0] < r + 3).all() and (src[1] > c - 4).all() and (src[1] < c + 3).all()


def test_inverse_says_where_each_pixel_of_x_went():
    """grid(inverse(p)) = p wherever x's pixel p is visible in T(x); the visible share is what the
    crop kept; a marked pixel of x is found in T(x) at its inverse position."""
    h, w = 64, 80
    x = _image(4, h, w)
    pair = pseudo_exemplar(x, generator=torch.Generator().manual_seed(7))
    back = grid_to_pixels(apply_grid(pair.grid.permute(0, 3, 1, 2), pair.inverse).permute(0, 2, 3, 1))
    err = (back - pixel_grid(h, w, "cpu")).abs().amax(1, keepdim=True)
    assert float(err[pair.visible].max()) < 0.01
    assert 0.5 < float(pair.visible.float().mean()) < 0.99  # some of x is cropped out, most is kept
    # a smooth picture sampled back from T(x) at the inverse positions is x again
    rows, cols = pixel_grid(h, w, "cpu")
    smooth = torch.stack([torch.sin(rows / 7), torch.cos(cols / 9), torch.sin((rows + cols) / 11)])[None]
    again = apply_grid(apply_grid(smooth.expand(4, -1, -1, -1), pair.grid), pair.inverse)
    diff = (again - smooth).abs().amax(1, keepdim=True)
    assert float(diff[pair.visible].mean()) < 0.01 and float(diff[pair.visible].max()) < 0.1
    assert float(diff[~pair.visible].mean()) > 0.1  # where x was cropped out, it is not found


def test_inverse_of_a_plain_flip_is_the_flip():
    x = _image(1)
    flips = set()
    for seed in range(6):
        pair = pseudo_exemplar(x, generator=torch.Generator().manual_seed(seed), strength=0.0)
        mirrored = torch.allclose(pair.image, x.flip(-1), atol=1e-5)
        assert mirrored or torch.allclose(pair.image, x, atol=1e-5)
        expected = pixel_grid(48, 64, "cpu").clone()
        if mirrored:
            expected[1] = 63 - expected[1]
        assert torch.allclose(grid_to_pixels(pair.inverse)[0], expected, atol=1e-3) and pair.visible.all()
        flips.add(mirrored)
    assert flips == {True, False}
