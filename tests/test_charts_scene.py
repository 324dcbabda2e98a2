"""Dense matching outside the face (core/charts/scene.py): follows two shots of one scene, leaves another
person's scene alone, never moves the face, never folds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data

import core.charts.scene as scene
from core.charts.folds import fold_fraction
from core.charts.scene import follow, match_scene
from core.charts.surround import apply_affine
from core.conditions.condition import Condition
from core.conditions.face import photo_edges
from core.imageio import fit_image
from core.metrics import psnr_ssim

SIDE = 256


def _drawing(seed: int, side: int = SIDE) -> np.ndarray:
    """(side, side) uint8 grey picture of random filled rectangles and discs (a scene with edges)."""
    rng = np.random.default_rng(seed)
    picture = np.full((SIDE, SIDE), 128, np.uint8)
    for _ in range(40):
        x, y = rng.integers(0, SIDE, 2)
        colour = int(rng.integers(0, 256))
        if rng.random() < 0.5:
            w, h = rng.integers(8, 60, 2)
            cv2.rectangle(picture, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
        else:
            cv2.circle(picture, (int(x), int(y)), int(rng.integers(5, 30)), colour, -1)
    return cv2.resize(picture, (side, side), interpolation=cv2.INTER_NEAREST)


def _condition(picture: np.ndarray) -> Condition:
    """A face condition whose channel 0 is the picture's edges (what an extracted condition carries)."""
    edges = photo_edges(np.repeat(picture[..., None], 3, axis=2))
    label = torch.zeros(10, *picture.shape)
    label[0] = torch.from_numpy(edges.astype(np.float32))
    return Condition(task="face", label=label, preview=np.zeros((*picture.shape, 3), np.uint8))


def _truth(side: int = SIDE) -> np.ndarray:
    """(2, 3) output x, y -> exemplar x, y: another aspect and a tilt about the "face" at the centre."""
    c = side / 2
    truth = cv2.getRotationMatrix2D((c, c), 4.0, 1.0) @ np.diag([1.08, 0.94, 1.0])
    truth[:, 2] += np.array([c, c]) - truth[:, :2] @ np.array([c, c])
    return truth


TRUTH = _truth()


def _face(side: int = SIDE) -> np.ndarray:
    keep = np.zeros((side, side), np.uint8)
    cv2.circle(keep, (side // 2, side // 2), round(30 * side / SIDE), 1, -1)
    return keep > 0


@pytest.mark.parametrize("side", [SIDE, 384])  # 384: matched at 256, the displacement brought back up
def test_follows_two_shots_of_one_scene_and_leaves_another_alone(side):
    picture = _drawing(0, side)
    # the exemplar shows the scene through the truth: exemplar(truth x) = picture(x)
    exemplar = cv2.warpAffine(picture, _truth(side), (side, side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
    # the map so far: the similarity through the face (right at the centre, wrong far from it)
    current, truth = apply_affine(np.eye(2, 3), (side, side)), apply_affine(_truth(side), (side, side))
    keep = _face(side)
    found = match_scene(_condition(picture), _condition(exemplar), current, keep)
    assert found.agrees and found.misfit < scene.AGREE
    refined = follow(current, found.displacement)
    frame = np.zeros((side, side), bool)
    frame[side // 10:-side // 10, side // 10:-side // 10] = True  # the exemplar shows this part of the scene
    before = np.hypot(*(current - truth).transpose(2, 0, 1))[frame & ~keep]
    after = np.hypot(*(refined - truth).transpose(2, 0, 1))[frame & ~keep]
    assert np.median(after) < 0.4 * np.median(before), (np.median(before), np.median(after))
    assert np.abs(found.displacement[keep]).max() == 0  # the face's chart is exact: never moved
    grid = np.stack(np.mgrid[0:side, 0:side], -1).astype(np.float32)
    assert fold_fraction(grid + found.displacement) == 0

    other = match_scene(_condition(picture), _condition(_drawing(1, side)), current, keep)  # another scene
    assert not other.agrees and other.misfit > 0.75
    assert not other.displacement.any()


def test_nothing_to_match_without_edges_outside_the_face():
    """A ready condition (landmark lines only): no edges outside the face, nothing changes."""
    empty = np.full((SIDE, SIDE), 128, np.uint8)
    found = match_scene(_condition(empty), _condition(_drawing(0)), apply_affine(np.eye(2, 3), (SIDE, SIDE)), _face())
    assert not found.agrees and not found.displacement.any()


def test_follow_extends_a_map_linearly_past_the_frame():
    """Read past the frame's edge, an affine map stays that affine map (no flat, folded rim)."""
    m = np.array([[1.1, 0.1, 3.0], [-0.1, 1.1, 5.0]])
    displacement = np.zeros((64, 64, 2), np.float32)
    displacement[..., 0], displacement[..., 1] = -3.0, 5.0
    out = follow(apply_affine(m, (64, 64)), displacement)
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ np.array([5.0, -3.0])  # x + (5, -3) in x, y
    assert np.abs(out - apply_affine(shifted, (64, 64))).max() < 1e-3


@pytest.fixture(scope="module")
def translator():
    from core.pipeline import Translator

    return Translator("face", engine="training-free", version=2)


def test_engine_follows_the_input_s_own_scene_and_not_another_person_s(translator, monkeypatch):
    """Another shot of the input's own scene (tilted, another aspect, closer): the surroundings follow
    the input's edges (well above the output without the matching); a different person's photo gives
    the same output as without it (nothing is warped on a cross-identity pair)."""
    from core.conditions import extract
    from core.pipeline import exemplar_condition

    photo = fit_image(data.astronaut(), (SIDE, SIDE))
    src = extract("face", photo, (SIDE, SIDE))
    shot = cv2.warpAffine(photo, TRUTH, (SIDE, SIDE), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)
    shot = cv2.resize(shot[20:-20, 20:-20], (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)  # closer
    ex = exemplar_condition("face", shot, SIDE)
    matched = translator.translate(src, ex, resolution=SIDE)
    assert any("own scene" in m for m in matched.messages)
    monkeypatch.setattr(scene, "AGREE", -1.0)  # the matching refused
    given = translator.translate(src, ex, resolution=SIDE)
    assert not any("own scene" in m for m in given.messages)
    face = src.subject_mask
    assert psnr_ssim(matched.image, photo, face)["psnr"] > psnr_ssim(given.image, photo, face)["psnr"] + 1.5

    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = exemplar_condition("face", np.array(Image.open(f).convert("RGB")), SIDE)
    closed = translator.translate(src, grace, resolution=SIDE)  # the gate still closed
    monkeypatch.undo()
    other = translator.translate(src, grace, resolution=SIDE)
    assert not any("own scene" in m for m in other.messages)
    assert np.array_equal(other.image, closed.image)


def test_pose_follows_the_input_s_own_scene_and_not_another_person_s(monkeypatch):
    """Pose (the edges come from the photo behind the skeleton): a pseudo pair of the trainer's kind gains
    more than 1 dB with the matching and gets the note; a different person's photo is refused (the same
    output as without the matching); a skeleton with no photo is never matched."""
    import dataclasses

    import matplotlib.cbook as cbook
    from PIL import Image

    from core.augment import pseudo_exemplar
    from core.conditions import extract
    from core.imageio import from_tensor, to_tensor
    from core.pipeline import Translator, exemplar_condition

    translator = Translator("pose", engine="training-free", version=2)
    photo = fit_image(data.astronaut(), (SIDE, SIDE))
    shot = from_tensor(pseudo_exemplar(to_tensor(photo), generator=torch.Generator().manual_seed(1)).image)
    src, ex = extract("pose", photo, (SIDE, SIDE)), extract("pose", shot, (SIDE, SIDE))
    matched = translator.translate(src, ex, seed=0, allow_partial=True)
    assert any("own scene" in m for m in matched.messages)
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = exemplar_condition("pose", np.array(Image.open(f).convert("RGB")), SIDE)
    other = translator.translate(src, grace, seed=0, allow_partial=True)
    assert not any("own scene" in m for m in other.messages)
    skeleton = translator.translate(dataclasses.replace(src, image=None), ex, seed=0, allow_partial=True)
    assert not any("own scene" in m for m in skeleton.messages)

    monkeypatch.setattr(scene, "AGREE", -1.0)  # the matching refused
    given = translator.translate(src, ex, seed=0, allow_partial=True)
    gain = psnr_ssim(matched.image, photo, src.subject_mask)["psnr"] - psnr_ssim(given.image, photo,
                                                                               src.subject_mask)["psnr"]
    assert gain > 1.0, gain
    assert np.array_equal(other.image, translator.translate(src, grace, seed=0, allow_partial=True).image)
