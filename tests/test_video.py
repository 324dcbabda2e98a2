"""Pose video retargeting: clip in, playable video out, one frame per input frame, resumable,
temporally seeded and no less stable than independent frames. Clips are made here from
scikit-image's astronaut (moved and rotated) or from her skeleton with waving arms."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import cbook
from skimage import data

from core.conditions import pose
from core.conditions.openpose_io import write_keypoints_json
from core.errors import InputError, NoSubjectError
from core.imageio import load_image, save_image, to_tensor
from core.pipeline import Translator
from core.video import seeding, stability
from core.video.clip import open_clip
from core.video.encode import read_video_info, write_video
from core.video.retarget import VideoOptions, VideoRetargeter
from core.video.samples import moving_photo, waving_poses
from core.video.track import bridge_gaps, one_euro, smooth_track

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 12


@pytest.fixture(scope="module")
def exemplar() -> np.ndarray:
    return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def photo_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "astronaut.mp4"
    write_video(path, moving_photo(data.astronaut(), FRAMES, side=256), 12)
    return path


@pytest.fixture(scope="module")
def pose_clip(tmp_path_factory) -> Path:
    """The astronaut's skeleton with waving arms, as OpenPose JSON files (one per frame)."""
    folder = tmp_path_factory.mktemp("poses")
    keypoints = pose.detect_keypoints(data.astronaut(), (512, 512))
    for t, kp in enumerate(waving_poses(keypoints, FRAMES)):
        write_keypoints_json(folder / f"{t:03d}.json", (512, 512), pose=kp)
    return folder


# -- keypoints over time ----------------------------------------------------------------------------

def test_one_euro_removes_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    t = np.arange(100) / 25
    truth = np.stack([0.5 + 0.2 * np.sin(2 * np.pi * 0.5 * t), 0.5 + 0.1 * t], -1)[:, None]  # (T, 1, 2)
    noisy = truth + rng.normal(0, 0.004, truth.shape)
    present = np.ones((100, 1), bool)
    both = (one_euro(noisy, present, 25) + one_euro(noisy[::-1], present[::-1], 25)[::-1]) / 2

    def jitter(x):  # frame-to-frame shake: mean |second difference|
        return np.abs(np.diff(x, 2, axis=0)).mean()

    assert np.abs(both - truth).mean() < 0.85 * np.abs(noisy - truth).mean()  # follows the motion
    assert jitter(both) < 0.6 * jitter(noisy)
    still = np.full((50, 1, 2), 0.5) + rng.normal(0, 0.004, (50, 1, 2))
    assert np.abs(one_euro(still, np.ones((50, 1), bool), 25) - 0.5).mean() < 0.5 * np.abs(still - 0.5).mean()


def test_gaps_are_bridged_and_empty_frames_held():
    track = np.zeros((10, 18, 3))
    track[:, :, 0] = np.arange(10)[:, None] * 10.0
    track[:, :, 1] = 100.0
    track[:, :, 2] = 1.0
    track[3:5, 4] = 0.0  # a wrist missing for two frames
    track[7] = 0.0  # nobody in frame 7
    bridged, filled = bridge_gaps(track, max_gap=3)
    assert filled == 2 + 18
    assert np.allclose(bridged[3:5, 4, 0], [30, 40])
    assert bridged[7, 0, 2] > 0
    long_gap = track.copy()
    long_gap[1:9] = 0.0
    out, report = smooth_track(long_gap, 25, (256, 256), max_gap_seconds=0.1)
    assert report.held_frames == 8 and (out[:, :, 2] > 0).all()
    with pytest.raises(ValueError):
        smooth_track(np.zeros((5, 18, 3)), 25, (256, 256))


# -- seeding ----------------------------------------------------------------------------------------

def test_matches_are_carried_by_the_pose_change():
    size, h = (256, 256), 64
    previous = np.zeros((18, 3))
    previous[:, 0] = np.linspace(60, 200, 18)
    previous[:, 1] = np.linspace(40, 220, 18) ** 1.01 % 200 + 20
    previous[:, 2] = 1.0
    current = previous.copy()
    current[:, 0] += 16.0  # the person moved 16 px right = 4 pixels of the 64x64 level
    rows, cols = torch.meshgrid(torch.arange(h).float(), torch.arange(h).float(), indexing="ij")
    positions = torch.stack([rows, cols * 0.5]).view(1, 1, 2, h, h).repeat(1, 9, 1, 1, 1)
    carried = seeding.carry_matches(positions, previous, current, size)
    # pixel (r, c) now shows what pixel (r, c - 4) showed: its matches
    assert torch.allclose(carried[0, :, :, 10:50, 20:60], positions[0, :, :, 10:50, 16:56])
    assert seeding.pose_motion(previous, current, size) == pytest.approx(16 / 256)
    assert seeding.iterations_for(0.0, 2) == 0 and seeding.iterations_for(0.01, 2) == 1
    assert seeding.iterations_for(0.1, 2) == 2


def test_engine_seeded_with_its_own_matches_keeps_them(exemplar):
    translator = Translator("pose", engine="training-free", version=1)
    size = (128, 128)
    src, ex = translator.prepare(data.astronaut(), exemplar, size)
    from core.imageio import to_tensor

    first = translator.engine([src], to_tensor(ex.image), [ex])
    again = translator.engine([src], to_tensor(ex.image), [ex], init=first.levels[-1].positions, iterations=0)
    assert len(again.levels) == 1  # only the finest matched level ran
    assert torch.equal(again.levels[0].positions, first.levels[-1].positions)
    assert (again.image - first.image).abs().max() < 1e-4


# -- the whole clip -----------------------------------------------------------------------------------

def test_cli_video_from_a_video_file(tmp_path, photo_clip, exemplar):
    ex_path = tmp_path / "exemplar.png"
    save_image(ex_path, exemplar)
    out, skeleton = tmp_path / "out.mp4", tmp_path / "skeleton.webm"
    cmd = [sys.executable, "-m", "core", "video", "--task", "pose", "--input", str(photo_clip), "--exemplar",
           str(ex_path), "--output", str(out), "--resolution", "128", "--engine", "training-free",
           "--skeleton-video", str(skeleton), "--frames-dir", str(tmp_path / "frames"),
           "--skeletons-dir", str(tmp_path / "skeletons"), "--stats", str(tmp_path / "stats.json")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "frame/s" in run.stderr or "s/frame" in run.stderr  # the progress bar's rate (and ETA)
    info = read_video_info(out)  # decoded back, every frame
    assert (info.frames, info.width, info.height, info.codec) == (FRAMES, 128, 128, "h264")
    assert info.fps == pytest.approx(12)
    skel = read_video_info(skeleton)
    assert (skel.frames, skel.codec) == (FRAMES, "vp9")
    assert len(list((tmp_path / "frames").glob("*.png"))) == FRAMES
    assert len(list((tmp_path / "skeletons").glob("*.json"))) == FRAMES
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert len(stats["flicker"]) == FRAMES - 1 and len(stats["pck"]) == FRAMES
    assert stats["iterations"] == [-1] * FRAMES  # engine v2, the default: charts, nothing to seed
    assert not (tmp_path / ".out.mp4.partial").exists()

    short = subprocess.run(cmd[:12] + ["--max-frames", "5", "--fps", "10"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert short.returncode == 0, short.stderr[-2000:]
    info = read_video_info(out)
    assert (info.frames, info.fps) == (5, 10)


def test_cli_refuses_bad_arguments_clearly(tmp_path, photo_clip):
    base = [sys.executable, "-m", "core", "video", "--task", "pose", "--exemplar", str(tmp_path / "none.jpg")]
    bad_output = subprocess.run(base + ["--input", str(photo_clip), "--output", str(tmp_path / "out.avi")],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad_output.returncode == 1 and ".mp4 (H.264) or .webm" in bad_output.stderr
    missing = subprocess.run(base + ["--input", str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "o.mp4")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "Input not found" in missing.stderr
    assert "Traceback" not in bad_output.stderr + missing.stderr
    # an output over the clip, the exemplar or another output: refused before any work, the clip left as it was
    clip = tmp_path / "clip.mp4"
    shutil.copy(photo_clip, clip)
    before = clip.read_bytes()
    base = [sys.executable, "-m", "core", "video", "--task", "pose", "--input", str(clip), "--exemplar",
            str(ROOT / "assets" / "grace_hopper.jpg"), "--max-frames", "1", "--resolution", "64"]
    for extra, words in ((["--output", str(clip)], "--output " + str(clip) + " would overwrite an input"),
                         (["--output", str(tmp_path / "o.mp4"), "--stats", str(clip)], "--stats"),
                         (["--output", str(tmp_path / "o.mp4"), "--skeleton-video", str(tmp_path / "o.mp4")],
                          "is also given as --output"),
                         (["--output", str(tmp_path / "o.mp4"), "--stats", str(ROOT / "assets" / "grace_hopper.jpg")],
                          "would overwrite an input")):
        refused = subprocess.run(base + extra, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and words in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert clip.read_bytes() == before and not (tmp_path / "o.mp4").exists()


def test_a_phone_clip_is_read_upright(tmp_path):
    import av

    picture = np.zeros((64, 96, 3), np.uint8)
    picture[:8, :8] = 255  # stored sideways, a white top-left corner
    with av.open(str(tmp_path / "phone.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.set_display_rotation(90)  # what a phone writes: "show it turned a quarter counter-clockwise"
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")), *stream.encode()]:
            container.mux(packet)
    (frame,) = open_clip(tmp_path / "phone.mp4").frames()
    assert frame.shape == (96, 64, 3) and frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 50


def test_clip_without_a_person_is_refused(tmp_path, exemplar):
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        save_image(frames / f"{t}.png", np.full((128, 128, 3), 40 * t, np.uint8))
    retargeter = VideoRetargeter(Translator("pose", engine="training-free"))
    with pytest.raises(NoSubjectError, match="No person was found in any frame"):
        retargeter.run(open_clip(frames), exemplar, tmp_path / "out.mp4", VideoOptions(resolution=128))
    with pytest.raises(InputError, match="both pictures and JSON"):
        (frames / "x.json").write_text("{}")
        open_clip(frames)


def test_a_killed_run_continues_where_it_stopped(tmp_path, pose_clip, exemplar):
    retargeter = VideoRetargeter(Translator("pose", engine="training-free"))
    out = tmp_path / "out.mp4"

    class Killed(Exception):
        pass

    def kill_after_five(stage, done, total):
        if stage == "frames" and done == 5:
            raise Killed

    with pytest.raises(Killed):
        retargeter.run(open_clip(pose_clip), exemplar, out, VideoOptions(resolution=128), kill_after_five)
    partial = tmp_path / ".out.mp4.partial"
    assert len(list((partial / "frames").glob("*.png"))) == 5 and not out.exists()
    result = retargeter.run(open_clip(pose_clip), exemplar, out, VideoOptions(resolution=128))
    assert result.resumed == 5 and result.seconds["rendered_frames"] == FRAMES - 5
    assert read_video_info(out).frames == FRAMES and not partial.exists()
    # other settings: the old frames are not reused
    with pytest.raises(Killed):
        retargeter.run(open_clip(pose_clip), exemplar, out, VideoOptions(resolution=128), kill_after_five)
    again = retargeter.run(open_clip(pose_clip), exemplar, out, VideoOptions(resolution=128, seed=1))
    assert again.resumed == 0


def test_cli_killed_with_sigkill_continues_where_it_stopped(tmp_path, pose_clip, exemplar):
    ex_path = tmp_path / "exemplar.png"
    save_image(ex_path, exemplar)
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "core", "video", "--task", "pose", "--input", str(pose_clip), "--exemplar",
           str(ex_path), "--output", str(out), "--resolution", "128"]
    frames = tmp_path / ".out.mp4.partial" / "frames"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and len(list(frames.glob("0?????.png"))) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = len(list(frames.glob("0?????.png")))
    assert 3 <= done < FRAMES and not out.exists()
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{done} reused from the interrupted run" in again.stdout
    assert read_video_info(out).frames == FRAMES


def test_a_time_budget_stops_a_clip_between_frames(tmp_path, pose_clip, exemplar):
    from core.budget import BudgetExceeded, time_budget

    retargeter = VideoRetargeter(Translator("pose", engine="training-free"))
    with pytest.raises(BudgetExceeded), time_budget(0.0):
        retargeter.run(open_clip(pose_clip), exemplar, tmp_path / "out.mp4", VideoOptions(resolution=64))
    assert not (tmp_path / "out.mp4").exists()


def test_seeded_frames_are_no_less_stable_than_independent(tmp_path, pose_clip, exemplar):
    retargeter = VideoRetargeter(Translator("pose", engine="training-free", version=1))  # v1's seeding
    runs = {}
    for seeded in (False, True):
        result = retargeter.run(open_clip(pose_clip), exemplar, tmp_path / f"{seeded}.mp4",
                                VideoOptions(resolution=256, seeding=seeded, measure=True))
        assert len(result.flicker) == FRAMES - 1
        runs[seeded] = result
    assert all(i == -1 for i in runs[False].iterations)
    assert runs[True].iterations[0] == -1 and min(runs[True].iterations[1:]) >= 0
    independent, seeded = np.mean(runs[False].flicker), np.mean(runs[True].flicker)
    assert seeded <= independent + 0.05, (seeded, independent)
    assert np.mean(runs[True].pck) >= np.mean(runs[False].pck) - 0.05  # the pose is still the one asked for


def test_flicker_is_zero_for_a_still_picture_and_grows_with_noise():
    rng = np.random.default_rng(0)
    frame = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    flow = np.zeros((64, 64, 2), np.float32)
    region = np.ones((64, 64), bool)
    assert stability.flicker(frame, frame, flow, region) == 0.0
    noisy = np.clip(frame + rng.normal(0, 10, frame.shape), 0, 255).astype(np.uint8)
    assert stability.flicker(frame, noisy, flow, region) > 5
    shifted = np.roll(frame, 3, axis=1)  # moved 3 px right: the backward flow points 3 px left
    flow[..., 0] = -3
    assert stability.flicker(frame, shifted, flow, region[:, :] & (np.arange(64) >= 3)[None]) == 0.0
    ref = np.zeros((18, 3))
    ref[[0, 2, 5, 8, 11]] = [[50, 10, 1], [40, 30, 1], [60, 30, 1], [45, 90, 1], [55, 90, 1]]
    assert stability.pck(ref, ref) == 1.0 and stability.pck(None, ref) == 0.0
    moved = ref.copy()
    moved[0, 0] += 30  # the nose 30 px off: beyond 0.2 x head-to-hip (80 px)
    assert stability.pck(moved, ref) == pytest.approx(0.8)


def test_a_learned_model_renders_every_frame_too(tmp_path, pose_clip, exemplar):
    from core.config import get_preset
    from core.model import Warpaint

    torch.manual_seed(0)
    folder = tmp_path / "tiny-pose"
    Warpaint(get_preset("tiny", task="pose", label_channels=20)).save_pretrained(folder)
    translator = Translator("pose", engine="learned", checkpoint=folder)
    clip = open_clip(pose_clip, max_frames=5)
    one = VideoRetargeter(translator).run(clip, exemplar, tmp_path / "one.webm", VideoOptions(resolution=64))
    assert one.engine.startswith("learned") and all(i == -1 for i in one.iterations)  # no seeding there
    info = read_video_info(tmp_path / "one.webm")
    assert (info.frames, info.width, info.codec) == (5, 64, "vp9")
    batched = VideoRetargeter(translator).run(clip, exemplar, tmp_path / "batched.mp4",
                                              VideoOptions(resolution=64, batch_size=2, frames_dir=tmp_path / "b"))
    assert batched.seconds["rendered_frames"] == 5 and read_video_info(tmp_path / "batched.mp4").frames == 5
    partial = tmp_path / ".resumed.mp4.partial" / "frames"  # resumed with the last frame already done:
    interrupted = VideoRetargeter(translator)  # the batch still flushes before it

    def stop_at_four(stage, done, total):
        if stage == "frames" and done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted.run(clip, exemplar, tmp_path / "resumed.mp4", VideoOptions(resolution=64, batch_size=4),
                        stop_at_four)
    (partial / "000001.png").unlink()  # frames 1-2 to redo, 0, 3 and (say) 4 done
    (partial / "000002.png").unlink()
    shutil.copyfile(partial / "000003.png", partial / "000004.png")
    again = interrupted.run(clip, exemplar, tmp_path / "resumed.mp4", VideoOptions(resolution=64, batch_size=4))
    assert again.resumed == 3 and read_video_info(tmp_path / "resumed.mp4").frames == 5
    assert len(list((tmp_path / "b").glob("*.png"))) == 5

    # the exemplar's features, computed once, give the very frames the per-call encoder gives
    engine, size = translator.engine, (64, 64)
    ex_cond = translator.prepare_exemplar(exemplar, size)
    ex = to_tensor(ex_cond.image)
    frames = [pose.from_keypoints(k * [0.125, 0.125, 1], size) for k in waving_poses(
        pose.detect_keypoints(data.astronaut(), (512, 512)), 2)]
    plain = engine(frames, ex.expand(2, -1, -1, -1), [ex_cond] * 2)
    cached = engine(frames, ex.expand(2, -1, -1, -1), [ex_cond] * 2,
                    exemplar_features=engine.encode_exemplar(ex, ex_cond))
    assert torch.allclose(plain.image, cached.image, atol=1e-5)
    encoder = engine.model.correspondence.exemplar_encoder
    calls = []
    handle = encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        VideoRetargeter(translator).run(clip, exemplar, tmp_path / "once.mp4", VideoOptions(resolution=64))
    finally:
        handle.remove()
    assert len(calls) == 1  # once for the clip's 5 frames


def test_openpose_files_fit_the_output_like_a_photo(tmp_path):
    from core.video.retarget import _fitted_pose

    kp = np.zeros((18, 3))
    kp[:4] = [[0.5, 0.25, 1], [0.5, 0.5, 1], [0.25, 0.5, 1], [0.75, 0.5, 1]]
    doc = {"people": [{"pose_keypoints_2d": kp.ravel().tolist()}]}  # normalised, no canvas
    (tmp_path / "a.json").write_text(json.dumps(doc))
    doc.update(canvas_width=400, canvas_height=200)  # a wide canvas: its centre square is kept
    doc["people"][0]["pose_keypoints_2d"] = (kp * [400, 200, 1]).ravel().tolist()
    (tmp_path / "b.json").write_text(json.dumps(doc))
    clip = open_clip(tmp_path)
    assert clip.kind == "poses" and clip.count == 2 and clip.fps == 25
    plain, wide = (_fitted_pose(item, (100, 100)) for item in clip.poses())
    assert np.allclose(plain[:4, :2], [[50, 25], [50, 50], [25, 50], [75, 50]])
    assert np.allclose(wide[:4, :2], [[50, 25], [50, 50], [0, 50], [100, 50]])
    assert (wide[4:] == 0).all()


def test_engine_v2_is_the_default_and_renders_every_frame(tmp_path, pose_clip, exemplar, monkeypatch):
    """Grace Hopper's portrait shows no elbows: her sleeves stand in for the waving arms (no refusal);
    the charts are not matched iteratively (nothing to seed), and the exemplar's background is completed
    once for the clip."""
    from core import engine_v2
    from core.engine_v2 import TrainingFreeEngineV2

    translator = Translator("pose", engine="training-free")
    assert isinstance(translator.engine, TrainingFreeEngineV2)
    pictures = []  # every picture a completion was run on (kept alive: compared by identity)

    def counting(image, *args, **kwargs):
        pictures.append(image)
        return complete(image, *args, **kwargs)

    complete = engine_v2.complete
    monkeypatch.setattr(engine_v2, "complete", counting)
    clip = open_clip(pose_clip, max_frames=3)
    result = VideoRetargeter(translator).run(clip, exemplar, tmp_path / "v2.mp4", VideoOptions(resolution=128))
    assert result.iterations == [-1, -1, -1]
    stand_ins = [m for m in result.messages if "stands in" in m or "drawn with the texture" in m]
    assert stand_ins and len(stand_ins) == len(set(stand_ins))  # said once per clip, not once per frame
    info = read_video_info(tmp_path / "v2.mp4")
    assert (info.frames, info.width) == (3, 128)
    exemplar_pictures = [p for p in pictures if p.shape[:2] != (128, 128)]  # the exemplar's own frame (437x512)
    assert len(exemplar_pictures) == 1  # its background: completed once for the clip
