"""core.metrics: each figure on cases whose answer is known (NME, PCK, folds exactly; patch
coherence ~1 for the exemplar itself, clearly above for smears and other photos)."""

import cv2
import numpy as np
import pytest
from skimage import data

from core.eval_pairs import picture
from core.metrics import (
    NearestPatch,
    PatchCoherence,
    face_nme,
    fold_fraction,
    head_to_hip,
    jacobian_determinant,
    pose_pck,
)


def _face(rng) -> np.ndarray:
    kp = np.concatenate([rng.uniform(100, 300, (68, 2)), np.ones((68, 1))], axis=1)
    kp[36, :2], kp[45, :2] = (150, 200), (250, 200)  # inter-ocular distance 100
    return kp


def test_nme_is_zero_for_identical_landmarks_and_scales_with_a_shift():
    ref = _face(np.random.default_rng(0))
    assert face_nme(ref, ref) == 0
    moved = ref.copy()
    moved[:, :2] += (3, 4)  # 5 pixels everywhere
    assert face_nme(moved, ref) == pytest.approx(0.05)
    moved[:, :2] += (3, 4)
    assert face_nme(moved, ref) == pytest.approx(0.10)
    moved[:34, 2] = 0  # points missing in the output are skipped, not counted as 0
    assert face_nme(moved, ref) == pytest.approx(0.10)


def test_nme_needs_the_reference_eyes():
    ref = _face(np.random.default_rng(1))
    ref[45, 2] = 0
    with pytest.raises(ValueError, match="eye corner"):
        face_nme(ref, ref)


def _body() -> np.ndarray:
    kp = np.zeros((18, 3))
    joints = {0: (100, 50), 1: (100, 90), 2: (70, 90), 5: (130, 90), 3: (60, 150), 6: (140, 150),
              8: (90, 250), 11: (110, 250), 14: (95, 45), 15: (105, 45)}
    for j, xy in joints.items():
        kp[j] = (*xy, 1)
    return kp


def test_pck_counts_joints_within_a_fifth_of_head_to_hip():
    ref = _body()
    assert head_to_hip(ref) == pytest.approx(200)  # nose (100, 50) -> mid-hip (100, 250)
    assert pose_pck(ref, ref) == 1
    out = ref.copy()
    out[:, 0] += 30  # every joint 30 px off: inside 0.2 * 200 = 40
    assert pose_pck(out, ref) == 1
    out[[3, 6, 8], 0] += 20  # three joints 50 px off
    assert pose_pck(out, ref) == pytest.approx(7 / 10)
    out[0, 2] = 0  # a joint the output lost is a miss
    assert pose_pck(out, ref) == pytest.approx(6 / 10)
    assert pose_pck(out, ref, threshold=0.3) == pytest.approx(9 / 10)


def test_pck_without_hips_uses_twice_the_shoulder_width():
    ref = _body()
    ref[[8, 11], 2] = 0
    assert head_to_hip(ref) == pytest.approx(120)  # shoulders 60 apart


def _identity(h: int, w: int) -> np.ndarray:
    return np.stack(np.mgrid[0:h, 0:w], axis=-1).astype(np.float32)


def test_identity_map_has_no_folds_and_a_mirrored_region_does():
    pos = _identity(64, 80)
    assert np.allclose(jacobian_determinant(pos), 1)
    assert fold_fraction(pos) == 0
    scaled = pos * (0.5, 2.0)  # any orientation-preserving map: no folds
    assert fold_fraction(scaled) == 0
    a = np.deg2rad(60)
    turned = pos @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]], np.float32)
    assert np.allclose(jacobian_determinant(turned), 1, atol=1e-4) and fold_fraction(turned) == 0
    assert fold_fraction(pos[..., ::-1]) == 1  # rows and columns swapped: a reflection everywhere
    mirrored = pos.copy()
    mirrored[10:40, 20:50, 1] = 20 + 49 - mirrored[10:40, 20:50, 1]  # mirrored in place
    assert fold_fraction(mirrored) == pytest.approx(30 * 30 / (63 * 79), rel=0.1)
    used = np.ones((64, 80), bool)
    used[8:42, 18:52] = False  # the output does not use the map there (filled)
    assert fold_fraction(mirrored, used) == 0
    assert fold_fraction(mirrored, ~used) > 0.5


def test_nearest_patch_search_is_exact():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(3000, 20)).astype(np.float32) @ rng.normal(size=(20, 147)).astype(np.float32)
    queries = np.concatenate([bank[:50] + rng.normal(0, 0.3, (50, 147)),
                              rng.normal(0, 3, (50, 147))]).astype(np.float32)  # near the bank, and not
    search = NearestPatch(bank, dims=6, candidates=4)
    got = search(queries)
    brute = np.sqrt(((queries[:, None].astype(np.float64) - bank[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(got, brute, rtol=1e-5)


@pytest.fixture(scope="module")
def astronaut_coherence() -> PatchCoherence:
    return PatchCoherence(data.astronaut())


def test_patch_coherence_is_one_for_the_exemplar_itself(astronaut_coherence):
    exemplar = data.astronaut()
    assert astronaut_coherence(exemplar[5:, 3:]) == pytest.approx(1.0, abs=0.08)  # slightly shifted


def test_patch_coherence_is_high_for_smears_and_other_pictures(astronaut_coherence):
    exemplar = data.astronaut()
    smeared = cv2.blur(exemplar, (31, 1))  # streaks, like a melted background
    assert astronaut_coherence(smeared) > 1.2
    assert astronaut_coherence(picture("grace_hopper")) > 2.0  # someone else's textures
