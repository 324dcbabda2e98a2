"""The app's Pose video tab end to end: the real app, driven with gradio_client; a clip made here."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from skimage import data  # noqa: E402

from app.settings import ASSETS  # noqa: E402
from core.video.encode import read_video_info, write_video  # noqa: E402
from core.video.samples import moving_photo  # noqa: E402
from tests.app_server import running_app  # noqa: E402

MAX_FRAMES = 10  # this server's clip limit (set below)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    (work / "checkpoints").mkdir()
    env = {"WARPAINT_VIDEO_MAX_FRAMES": str(MAX_FRAMES), "WARPAINT_VIDEO_MAX_RESOLUTION": "256",
           "WARPAINT_CHECKPOINTS": str(work / "checkpoints")}
    with running_app(work, env=env) as url:
        yield Client(url, download_files=str(tmp_path_factory.mktemp("downloads")), verbose=False)


def _clip(path, frames):
    write_video(path, moving_photo(data.astronaut(), frames, side=192), 10)
    return handle_file(str(path))


def _video(client, clip, resolution=128, engine="training-free"):
    return client.predict(clip, handle_file(str(ASSETS / "grace_hopper.jpg")), resolution, engine, api_name="/video")


def test_a_clip_becomes_a_video_beside_its_skeletons(client, tmp_path):
    result, skeleton, status = _video(client, _clip(tmp_path / "clip.mp4", 6))
    for video in (result, skeleton):
        path = video["video"] if isinstance(video, dict) else video
        info = read_video_info(path)  # decoded back, every frame
        assert (info.frames, info.width, info.height, info.codec) == (6, 128, 128, "h264")
    assert "6 frames" in status and "training-free" in status


def test_clip_limits_and_bad_values_are_refused_clearly(client, tmp_path):
    with pytest.raises(AppError, match=f"longer than this server takes \\({MAX_FRAMES} frames"):
        _video(client, _clip(tmp_path / "long.mp4", MAX_FRAMES + 2))
    clip = _clip(tmp_path / "ok.mp4", 3)
    with pytest.raises(AppError, match="(greater than maximum value 256|out of range: use 128 to 256)"):
        _video(client, clip, resolution=1024)
    with pytest.raises(AppError, match="(Unknown engine|not in the list of choices)"):
        _video(client, clip, engine="../../etc")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(AppError, match="cannot be read as a video") as err:
        _video(client, handle_file(str(text)))
    assert str(tmp_path) not in str(err.value) and "/tmp" not in str(err.value)  # no server paths
    result, _, _ = _video(client, clip)  # still serving
    assert read_video_info(result["video"] if isinstance(result, dict) else result).frames == 3


def test_a_picture_given_as_the_clip_is_refused_in_the_apps_words():
    """An upload cannot be a folder: the refusal names the video formats, not core's "give their folder"."""
    from app.video import check_clip
    from core.errors import InputError

    with pytest.raises(InputError, match=r"The clip \(\.jpg\) is not a video file: upload an MP4") as err:
        check_clip(ASSETS / "grace_hopper.jpg")
    assert "folder" not in str(err.value) and str(ASSETS) not in str(err.value)
