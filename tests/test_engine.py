"""The training-free engine on real photos: descriptors, promised outputs, and warps that beat identity."""

import os

import matplotlib
import numpy as np
import pytest
import skimage.data
import torch

from core.augment import grid_to_pixels, pseudo_exemplar
from core.conditions import extract
from core.corr import pixel_grid
from core.descriptors import SmoothThinPlateSpline, describe_pair, descriptor_pyramid, fit_mapping
from core.engine import TrainingFreeEngine
from core.imageio import fit_image, from_tensor, load_image, to_tensor
from core.utils.flow_viz import flow_to_image

SIZE = (128, 128)


def _photo(name: str) -> np.ndarray:
    if name == "grace_hopper":
        return load_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def pose_pair():
    """x (grace hopper), T(x) and both pose conditions at 128x128."""
    x = fit_image(_photo("grace_hopper"), SIZE)
    t = from_tensor(pseudo_exemplar(to_tensor(x), generator=torch.Generator().manual_seed(1)).image)
    return x, t, extract("pose", x, SIZE), extract("pose", t, SIZE)


def _psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    err = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(-1)
    return float(10 * np.log10(255**2 / max(err[region if region is not None else slice(None)].mean(), 1e-10)))


def test_descriptors_same_layout_unit_length(pose_pair):
    _, _, cx, ct = pose_pair
    pair = describe_pair(cx, ct, (64, 64))
    assert pair.source.shape == pair.exemplar.shape
    assert pair.source.shape[1] == sum(pair.groups.values()) <= 48
    assert list(pair.groups)[0] == "parts" and "coords" in pair.groups
    pyramid = descriptor_pyramid(pair.source, 3)
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(16, 16), (32, 32), (64, 64)]
    assert torch.allclose(pyramid[-1].norm(dim=1), torch.ones(1, 64, 64), atol=1e-4)
    assert pair.prior.shape == (2, 64, 64) and np.isfinite(pair.prior).all()


def test_smooth_tps_interpolates_and_smooths():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (12, 2))
    dst = src * 1.1 + 3 + rng.normal(0, 2, src.shape)
    exact = fit_mapping(src, dst)  # scikit-image's thin-plate spline
    assert np.allclose(exact(src), dst, atol=1e-3)
    assert np.allclose(SmoothThinPlateSpline(src, dst, 0.0)(src), dst, atol=1e-6)
    smooth = SmoothThinPlateSpline(src, dst, 10.0)(src)
    assert np.abs(smooth - dst).mean() > 0.1  # no longer interpolates the noise


def test_engine_outputs_everything_promised(pose_pair):
    _, t, cx, ct = pose_pair
    seen = []
    out = TrainingFreeEngine()([cx], to_tensor(t), [ct], progress=lambda f, m: seen.append(f))
    assert out.image.shape == out.warped.shape == (1, 3, *SIZE)
    assert out.image.abs().max() <= 1 + 1e-5
    assert out.positions.shape == (1, 2, *SIZE) and torch.isfinite(out.positions).all()
    assert out.confidence.shape == out.fill.shape == (1, 1, *SIZE)
    assert 0 <= float(out.confidence.min()) and float(out.confidence.max()) <= 1
    sizes = [tuple(lv.warp.shape[-2:]) for lv in out.levels]
    assert sizes == sorted(sizes) and sizes[-1] == SIZE  # coarsest first, finest matched at full size here
    for lv in out.levels:
        k = lv.weights.shape[1]
        assert lv.positions.shape[1:3] == (k, 2)
        assert torch.allclose(lv.weights.sum(1), torch.ones_like(lv.weights[:, 0]), atol=1e-4)
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_engine_finds_a_known_mapping():
    """T(x) with its own extracted condition, where the augmentation says where every pixel of x
    went: on the person, the engine's positions are closer to that than no warp is. (Matching a
    picture to itself tested nothing but the keypoint prior: with identical conditions the
    matches' gain over the prior is exactly 0.)"""
    x = fit_image(_photo("astronaut"), SIZE)
    errors, unwarped = [], []
    for seed in (1, 2):
        pair = pseudo_exemplar(to_tensor(x), generator=torch.Generator().manual_seed(seed), flip=False)
        cx, ct = extract("pose", x, SIZE), extract("pose", from_tensor(pair.image), SIZE)
        out = TrainingFreeEngine()([cx], pair.image, [ct])
        truth = grid_to_pixels(pair.inverse)[0]  # (2, H, W): where each pixel of x lies in T(x)
        region = torch.from_numpy(cx.subject_mask) & pair.visible[0, 0]
        errors.append(float((out.positions[0] - truth).norm(dim=0)[region].median()))
        unwarped.append(float((pixel_grid(*SIZE, "cpu") - truth).norm(dim=0)[region].median()))
    assert sum(errors) < 0.8 * sum(unwarped), (errors, unwarped)  # measured: (4.8, 7.6) vs (5.8, 11.0) px


@pytest.mark.parametrize("task", ["pose", "face", "mask"])
def test_warp_closer_than_identity_on_pseudo_pairs(task):
    """Warping T(x) to x's condition gets closer to x than T(x) itself, on two real photos."""
    size = (256, 256) if task == "face" else SIZE  # faces are small in these photos
    engine = TrainingFreeEngine()
    for name, seed in (("grace_hopper", 1), ("astronaut", 2)):
        x = fit_image(_photo(name), size)
        t = from_tensor(pseudo_exemplar(to_tensor(x), generator=torch.Generator().manual_seed(seed)).image)
        cx, ct = extract(task, x, size), extract(task, t, size)
        out = from_tensor(engine([cx], to_tensor(t), [ct]).image)
        region = cx.subject_mask
        assert _psnr(out, x, region) > _psnr(t, x, region) + 0.5, (task, name)
        assert _psnr(out, x) > _psnr(t, x), (task, name)


def test_engine_rejects_mismatched_sizes(pose_pair):
    x, t, cx, ct = pose_pair
    with pytest.raises(ValueError):
        TrainingFreeEngine()([cx], to_tensor(fit_image(t, (64, 64))), [ct])


def test_flow_picture_colour_wheel():
    flow = np.zeros((4, 8, 2))
    flow[:, 4:, 0] = 3.0  # right half moves right
    pic = flow_to_image(flow)
    assert pic.shape == (4, 8, 3) and pic.dtype == np.uint8
    assert (pic[:, :4] == 255).all()  # no motion is white
    assert not (pic[:, 4:] == 255).all()
    left = flow_to_image(-flow)
    assert not np.array_equal(left[:, 4:], pic[:, 4:])  # direction changes the hue
    faint = flow_to_image(flow, max_radius=30.0)
    assert faint[:, 4:].astype(int).sum() > pic[:, 4:].astype(int).sum()  # shorter relative length: paler


def test_one_pixel_convention():
    """Positions are (row, col) pixel centres everywhere: sampling at a pixel's own position gives
    that pixel; a level's identity field upsampled is the full-size identity (inside the outer
    half-level-pixel, where bilinear upsampling clamps)."""
    from core.protocol import sample_positions, upsample_positions

    image = torch.arange(2 * 5 * 7, dtype=torch.float32).view(1, 2, 5, 7)
    assert torch.allclose(sample_positions(image, pixel_grid(5, 7, "cpu")[None]), image)
    half = sample_positions(image, pixel_grid(5, 7, "cpu")[None] + torch.tensor([0.0, 0.5]).view(1, 2, 1, 1))
    assert torch.allclose(half[..., :-1], (image[..., :-1] + image[..., 1:]) / 2)  # between two columns
    up = upsample_positions(pixel_grid(8, 6, "cpu")[None], (32, 24))
    assert torch.allclose(up[..., 2:-2, 2:-2], pixel_grid(32, 24, "cpu")[None, :, 2:-2, 2:-2], atol=1e-4)
