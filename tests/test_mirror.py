"""Mirror images (core/charts/mirror.py): relabelling by anatomy, the automatic rule for pose, and the
``mirror`` setting ("auto", "never", "always") through the library, the CLI and the video path. The
face's own mirror tests are in tests/test_engine_v2.py; the app's check in tests/test_app_safety.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from skimage import data

from core.charts.mirror import COCO18_MIRROR, IBUG68_MIRROR, mirror_condition, prefers_mirror, uses_mirror
from core.conditions import extract
from core.conditions.skeleton import COCO18
from core.errors import InputError
from core.imageio import fit_image, load_image
from core.pipeline import Translator, exemplar_condition

SIZE = (256, 256)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return fit_image(data.astronaut(), SIZE)


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator("pose", engine="training-free")


ZOOM = cv2.getRotationMatrix2D((128, 120), 4, 1.1)  # (2, 3) x, y -> x, y


def _mirror_scene(photo: np.ndarray) -> np.ndarray:
    """The photo flipped, slightly zoomed and turned (a flipped pseudo exemplar of the trainer)."""
    return cv2.warpAffine(np.ascontiguousarray(photo[:, ::-1]), ZOOM, SIZE[::-1], borderMode=cv2.BORDER_REFLECT)


def _true_positions() -> np.ndarray:
    """(H, W, 2) (row, col) in ``_mirror_scene``'s picture of every pixel of the photo."""
    ys, xs = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float64)
    at, x, y = ZOOM, SIZE[1] - 1 - xs, ys  # (warpAffine's matrix takes the flipped photo's pixels to the picture's)
    return np.stack([at[1, 0] * x + at[1, 1] * y + at[1, 2], at[0, 0] * x + at[0, 1] * y + at[0, 2]], -1)


def test_mirror_permutations_swap_left_and_right():
    for order in (COCO18_MIRROR, IBUG68_MIRROR):
        order = np.asarray(order)
        assert sorted(order) == list(range(len(order))) and (order[order] == np.arange(len(order))).all()
    for i, j in enumerate(COCO18_MIRROR):  # every joint's mirror is the same joint of the other side
        assert COCO18[j] == COCO18[i].replace("right", "@").replace("left", "right").replace("@", "left")
    ibug = np.asarray(IBUG68_MIRROR)
    assert list(ibug[:17]) == list(range(16, -1, -1)) and ibug[36] == 45 and ibug[48] == 54 and ibug[30] == 30


def test_pose_mirror_condition_is_the_flipped_photo_s_condition(astronaut):
    cond = extract("pose", astronaut, SIZE)
    mirrored = mirror_condition(cond)
    flipped = extract("pose", np.ascontiguousarray(astronaut[:, ::-1]), SIZE)
    both = (mirrored.keypoints[:, 2] > 0) & (flipped.keypoints[:, 2] > 0)
    assert both.sum() >= 8  # head, neck, shoulders, elbows (the hips are below the frame)
    gap = np.linalg.norm(mirrored.keypoints[both, :2] - flipped.keypoints[both, :2], axis=1)
    as_pictured = cond.keypoints[:, :2] * [-1, 1] + [SIZE[1] - 1, 0]  # flipped but not relabelled
    wrong = np.linalg.norm(as_pictured[both] - flipped.keypoints[both, :2], axis=1)
    # the right shoulder is the flipped photo's right shoulder, not its left (MediaPipe itself moves a few px)
    assert np.median(gap) < 8.0 and np.median(gap) < 0.25 * np.median(wrong)
    assert (mirrored.image == flipped.image).all()
    assert (mirrored.subject_mask == flipped.subject_mask).mean() > 0.98
    # the label is drawn again: its colours say left and right (a flipped picture would swap them)
    assert (mirrored.preview != np.ascontiguousarray(cond.preview[:, ::-1])).any(axis=2).mean() > 0.001
    assert mirror_condition(cond) is mirrored  # kept for the next frame of a clip


def test_a_mirror_image_pose_exemplar_is_used_mirrored(translator, astronaut, grace):
    """A mirror image of the input's own scene maps by picture side, so the output is the input again (not
    its mirror image); "never" keeps it as given; another person's photo is not mirrored unless asked."""
    src = extract("pose", astronaut, SIZE)
    ex = exemplar_condition("pose", _mirror_scene(astronaut), SIZE[0])
    assert prefers_mirror(src, ex)
    assert not prefers_mirror(src, exemplar_condition("pose", _mirror_scene(astronaut)[:, ::-1].copy(), SIZE[0]))
    other = exemplar_condition("pose", grace, SIZE[0])
    assert not prefers_mirror(src, other)
    assert uses_mirror("always", src, other) and not uses_mirror("never", src, ex)

    auto = translator.translate(src, ex, resolution=SIZE[0])
    kept = translator.translate(src, ex, resolution=SIZE[0], mirror="never")
    assert auto.mirrored and not kept.mirrored
    assert any("mirrored" in m and "never" in m for m in auto.messages)
    assert not any("mirrored" in m for m in kept.messages)
    person, truth = src.subject_mask, _true_positions()

    def error(result) -> float:  # the map's median distance from the true one on the person, pixels
        return float(np.median(np.linalg.norm(result.positions - truth, axis=-1)[person]))

    assert error(auto) < 0.3 * error(kept)
    forced = translator.translate(src, other, resolution=SIZE[0], mirror="always")
    assert forced.mirrored and any("mirrored, as asked" in m for m in forced.messages)


def test_a_bad_mirror_setting_is_refused_by_name(translator, astronaut):
    for value in ("sideways", None, 1, ["never"]):
        with pytest.raises(InputError, match="Unknown mirror setting .*'auto', 'never', 'always'"):
            translator.translate(astronaut, astronaut, resolution=128, mirror=value)


def test_cli_mirror_flag_reaches_the_engine(tmp_path, astronaut, monkeypatch):
    from core.__main__ import main
    from core.imageio import save_image
    from core.pipeline import Translator as RealTranslator

    seen = []
    real = RealTranslator.translate

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("mirror"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RealTranslator, "translate", spy)
    save_image(tmp_path / "in.png", astronaut)
    save_image(tmp_path / "ex.png", _mirror_scene(astronaut))
    args = ["translate", "--task", "pose", "--engine", "training-free", "--input", str(tmp_path / "in.png"),
            "--exemplar", str(tmp_path / "ex.png"), "--resolution", "128"]
    assert main([*args, "--output", str(tmp_path / "a.png"), "--mirror", "never"]) == 0
    assert main([*args, "--output", str(tmp_path / "b.png")]) == 0
    assert seen == ["never", "auto"]
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main([*args, "--output", str(tmp_path / "c.png"), "--mirror", "sideways"])


def test_a_clip_decides_the_mirror_once(tmp_path, translator, monkeypatch):
    """A clip's frames share one decision (taken on its first frame), so no frame flips alone; "never"
    keeps the exemplar as given and the run's settings tell the two apart (a resumed run does not mix them)."""
    from core.charts import mirror as mirror_module
    from core.video import retarget
    from core.video.clip import open_clip
    from core.video.encode import write_video
    from core.video.retarget import VideoOptions, VideoRetargeter
    from core.video.samples import moving_photo

    path = tmp_path / "astronaut.mp4"
    write_video(path, moving_photo(data.astronaut(), 3, side=256), 12)
    exemplar = np.ascontiguousarray(data.astronaut()[:, ::-1])  # the clip's scene, mirrored
    calls = []
    monkeypatch.setattr(retarget, "prefers_mirror", lambda *a: calls.append(1) or mirror_module.prefers_mirror(*a))
    runner = VideoRetargeter(translator)
    auto = runner.run(open_clip(path), exemplar, tmp_path / "auto.mp4", VideoOptions(resolution=128))
    assert len(calls) == 1
    assert [m for m in auto.messages if "used mirrored" in m]  # said once (notes are de-duplicated)
    kept = runner.run(open_clip(path), exemplar, tmp_path / "kept.mp4", VideoOptions(resolution=128, mirror="never"))
    assert len(calls) == 1 and not [m for m in kept.messages if "used mirrored" in m]
    with pytest.raises(InputError, match="mirror setting"):
        runner.run(open_clip(path), exemplar, tmp_path / "bad.mp4", VideoOptions(resolution=128, mirror="no"))
