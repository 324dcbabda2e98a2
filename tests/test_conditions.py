"""core.conditions: public API, pose (pinned to the official label), no-subject errors, the extract CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core.conditions import LABEL_CHANNELS, TASKS, Condition, extract, from_keypoints, from_user_condition
from core.conditions.openpose_io import read_candidate_subset
from core.conditions.skeleton import COCO18, COLORS, LIMBS
from core.errors import InputError, NoSubjectError
from core.imageio import fit_points, load_image

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(os.environ.get("WARPAINT_OFFICIAL_FIXTURE", ROOT.parent / "shared/fixtures/cocosnet2_official"))
NOSE, NECK, R_SHOULDER, L_SHOULDER, R_EYE, L_EYE = 0, 1, 2, 5, 14, 15


def grace_path() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    import skimage.data

    return {"grace": load_image(grace_path()), "astronaut": skimage.data.astronaut()}


@pytest.fixture(scope="module")
def poses(photos) -> dict[str, Condition]:
    return {name: extract("pose", image, (512, 512)) for name, image in photos.items()}


def no_person_picture() -> np.ndarray:
    """A synthetic scene: gradient sky, a box and a disc; no person, no face."""
    y, x = np.mgrid[0:384, 0:384]
    img = np.stack([x * 0.5 + 40, y * 0.4 + 60, 200 - y * 0.3], axis=-1).astype(np.uint8)
    img[250:330, 60:180] = (120, 90, 60)
    img[((x - 280) ** 2 + (y - 120) ** 2) < 40**2] = (230, 220, 90)
    return img


# -- public API ---------------------------------------------------------------------------------

def test_public_constants():
    assert TASKS == ("pose", "face", "mask")
    assert LABEL_CHANNELS == {"pose": 20, "face": 10, "mask": 151}
    with pytest.raises(InputError, match="Unknown task"):
        extract("depth", np.zeros((64, 64, 3), np.uint8), (64, 64))


# -- pose: the official label, pinned ---------------------------------------------------------

def _write_candidate_subset(folder: Path, points: list[list[float]]) -> Path:
    """The released DeepFashionHD layout: candidate rows x, y, score, id; subset = 18 indices + score, count."""
    cand = np.array([[x, y, 1.0, i] for i, (x, y) in enumerate(points)])
    subset = np.concatenate([np.arange(18, dtype=float), [18.0, 18.0]])[None]
    np.savetxt(folder / "person_candidate.txt", cand)
    np.savetxt(folder / "person_subset.txt", subset)
    return folder / "person_{}.txt"


@pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"official fixture not found at {FIXTURE}")
@pytest.mark.parametrize("points_key, tensor_key", [("seg_map_keypoints", "seg_map"),
                                                     ("ref_seg_map_keypoints", "ref_seg_map")])
def test_pose_label_matches_official_exactly(tmp_path, points_key, tensor_key):
    """keypoints.json (1024x1024 frame) -> candidate/subset files -> our reader -> 512 label == official."""
    points = json.loads((FIXTURE / "keypoints.json").read_text())[points_key]
    official = torch.load(FIXTURE / "inputs.pt")[tensor_key][0]
    found = read_candidate_subset(_write_candidate_subset(tmp_path, points))
    assert found.frame == (1024, 1024)
    kp = found.pose.copy()
    kp[:, :2] = fit_points(kp[:, :2], found.frame, (512, 512))
    cond = from_keypoints("pose", kp, (512, 512))
    assert cond.label.shape == official.shape == (20, 512, 512)
    diff = float((cond.label - official).abs().max())
    print(f"{tensor_key}: max abs difference to the official label = {diff}")
    assert diff == 0.0  # bit-exact: same OpenCV drawing, same Pillow resizes, same k/255
    np.testing.assert_array_equal(cond.preview, (official[:3].permute(1, 2, 0) * 255).round().byte().numpy())


def test_pose_label_channels_meaning():
    kp = np.zeros((18, 3))
    kp[[NECK, R_SHOULDER]] = [[256, 200, 1], [200, 205, 1]]
    cond = from_keypoints("pose", kp, (512, 512))
    assert cond.label.dtype == torch.float32 and float(cond.label.min()) >= 0 and float(cond.label.max()) <= 1
    limb = LIMBS.index((1, 2))
    assert float(cond.label[3 + limb, 202, 228]) == 0.0  # on the neck-shoulder limb
    assert torch.all(cond.label[3 + LIMBS.index((3, 4))] == 1.0)  # a missing limb is "far" everywhere
    assert cond.parts.shape == (17, 512, 512) and float(cond.parts[limb].max()) == 1.0
    assert cond.subject_mask[202, 228] and not cond.subject_mask[10, 10]
    assert any("missing" in m and "the hips and legs" in m for m in cond.messages)


def test_pose_sizes_scale_the_drawing():
    kp = np.zeros((18, 3))
    kp[[NECK, R_SHOULDER]] = [[0.5, 0.4, 1], [0.39, 0.4, 1]]
    areas = []
    for h, w in ((256, 256), (512, 512), (384, 256)):
        pts = kp.copy()
        pts[:, 0] *= w
        pts[:, 1] *= h
        cond = from_keypoints("pose", pts, (h, w))
        assert cond.label.shape == (20, h, w) and cond.preview.shape == (h, w, 3)
        areas.append(cond.subject_mask.mean())
    assert abs(areas[0] - areas[1]) < 0.2 * areas[1]  # same relative thickness at every size


# -- pose from photos ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["grace", "astronaut"])
def test_pose_found_on_real_photos(poses, name):
    cond = poses[name]
    kp = cond.keypoints
    assert cond.task == "pose" and cond.label.shape == (20, 512, 512)
    assert cond.image.shape == (512, 512, 3) and cond.preview.shape == (512, 512, 3)
    for j in (NOSE, NECK, R_SHOULDER, L_SHOULDER, R_EYE, L_EYE):
        assert kp[j, 2] > 0, f"{COCO18[j]} not found"
    assert kp[NOSE, 1] < kp[NECK, 1]  # nose above neck
    assert kp[R_SHOULDER, 0] < kp[NECK, 0] < kp[L_SHOULDER, 0]  # facing the camera: subject's right on the left
    assert kp[R_EYE, 0] < kp[L_EYE, 0]
    assert ((kp[kp[:, 2] > 0, :2] >= 0) & (kp[kp[:, 2] > 0, :2] < 512)).all()
    assert cond.subject_mask.dtype == bool and cond.subject_mask[int(kp[NOSE, 1]), int(kp[NOSE, 0])]
    assert any("missing" in m for m in cond.messages)  # portraits: legs are reported missing


def test_no_person_raises():
    with pytest.raises(NoSubjectError, match="No person"):
        extract("pose", no_person_picture(), (256, 256))


def test_too_few_joints_and_tiny_photo():
    with pytest.raises(NoSubjectError):
        from_keypoints("pose", np.zeros((18, 3)), (256, 256))
    with pytest.raises(InputError, match="too small"):
        extract("pose", np.zeros((40, 40, 3), np.uint8), (256, 256))
    with pytest.raises(InputError, match="out of range"):
        from_keypoints("pose", np.ones((18, 3)), (8, 8))


def test_detectors_are_shared_between_threads(photos, poses):
    results: list[np.ndarray] = []

    def work():
        results.append(extract("pose", photos["astronaut"], (512, 512)).keypoints)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for kp in results:
        np.testing.assert_allclose(kp, poses["astronaut"].keypoints, atol=1e-4)


def test_skeleton_picture_round_trip(poses):
    """The official preview (BGR-ordered colours) and a plain-RGB drawing both read back."""
    source = poses["astronaut"]
    back = from_user_condition("pose", source.preview, (512, 512))
    present = source.keypoints[:, 2] > 0
    np.testing.assert_array_equal(back.keypoints[:, 2] > 0, present)
    err = np.abs(back.keypoints[present, :2] - np.floor(source.keypoints[present, :2])).max(axis=1)
    assert np.median(err) <= 1.5 and err.max() <= 10  # hub joints under many limbs are the hardest
    assert float((back.label - source.label).abs().mean()) < 0.01
    rgb_order = from_user_condition("pose", np.ascontiguousarray(source.preview[..., ::-1]), (512, 512))
    assert any("RGB" in m for m in rgb_order.messages)
    with pytest.raises(InputError, match="No OpenPose skeleton"):
        from_user_condition("pose", no_person_picture(), (256, 256))


def test_body25_keypoints_are_accepted():
    body25 = np.zeros((25, 3))
    body25[[1, 2, 5, 0]] = [[100, 100, 1], [80, 100, 1], [120, 100, 1], [100, 70, 1]]
    body25[9] = [90, 160, 1]  # BODY_25 right hip -> COCO 8
    cond = from_keypoints("pose", body25, (256, 256))
    assert cond.keypoints[8, 2] > 0 and cond.keypoints[8, 0] == 90


def test_colours_are_the_openpose_eighteen():
    assert len(COLORS) == 18 == len(COCO18) and len(LIMBS) == 17 == LABEL_CHANNELS["pose"] - 3


# -- the CLI -------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLOG_minloglevel": "2"}
    return subprocess.run([sys.executable, "-m", "core", "extract", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_pose_end_to_end(tmp_path):
    out, label, kp_json = tmp_path / "pose.png", tmp_path / "pose.npy", tmp_path / "pose.json"
    run = _cli("--task", "pose", "--input", str(grace_path()), "--output", str(out),
               "--label-out", str(label), "--keypoints-out", str(kp_json), "--resolution", "256")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "note: Only part of the body" in run.stderr
    picture = load_image(out)
    assert picture.shape == (256, 256, 3) and picture.any()
    assert np.load(label).shape == (20, 256, 256)
    # The written keypoints drive the same drawing without the photo (no detection).
    again = tmp_path / "again.png"
    run = _cli("--task", "pose", "--keypoints-json", str(kp_json), "--output", str(again), "--resolution", "256")
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(load_image(again), picture)


def test_cli_bad_input_exits_cleanly(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    out = tmp_path / "out.png"
    run = _cli("--task", "face", "--input", str(bad), "--output", str(out))
    assert run.returncode == 1
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg"]
    run = _cli("--task", "pose", "--input", str(grace_path()), "--output", str(tmp_path / "no" / "x.png"))
    assert run.returncode == 1 and "does not exist" in run.stderr and "Traceback" not in run.stderr


def test_cli_help_documents_keypoint_flags():
    run = _cli("--help")
    assert run.returncode == 0
    assert "--keypoints-json" in run.stdout and "--keypoints-out" in run.stdout and "candidate" in run.stdout


def test_pose_label_and_parts_are_drawn_when_first_read_and_equal_the_full_drawing():
    """The 17 limb-distance channels (most of a pose extraction's cost; engine v2 never reads them) are
    computed on the first read of ``label`` or ``parts``, once, and equal ``render_pose``'s."""
    from core.conditions.skeleton import render_pose
    from core.utils.deferred import Deferred, raw

    kp = np.zeros((18, 3))
    kp[[NECK, R_SHOULDER]] = [[60, 50, 1], [45, 52, 1]]
    cond = from_keypoints("pose", kp, (96, 80))
    assert isinstance(raw(cond, "label"), Deferred) and isinstance(raw(cond, "parts"), Deferred)
    assert cond.size == (96, 80)  # known without drawing
    label, picture, dists = render_pose(cond.keypoints, (96, 80))
    assert np.array_equal(cond.preview, picture)
    assert torch.equal(cond.label, label)
    assert np.array_equal(cond.parts, 1.0 - dists.astype(np.float32) / 255.0)
    assert cond.label is cond.label and not isinstance(raw(cond, "label"), Deferred)  # kept once made


def test_missing_joints_are_named_by_group_when_a_whole_group_is_missing():
    from core.conditions.pose import _missing_names

    kp = np.ones((18, 3))
    kp[[8, 9, 10, 11, 12, 13, 4, 6], 2] = 0  # a waist-up photo with one wrist and one elbow hidden
    assert _missing_names(kp) == ["the hips and legs", "right wrist", "left elbow"]
    kp[8, 2] = 1  # one hip seen: the knees and ankles are named together, the left hip alone
    assert _missing_names(kp) == ["the knees and ankles", "right wrist", "left elbow", "left hip"]
    assert _missing_names(np.ones((18, 3))) == []
