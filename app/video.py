"""The "Pose video" tab: upload a clip, pick an exemplar, get the retargeted video beside the skeletons.

The handler (``retarget``) takes plain values and returns file paths, so the tab, its API event and
the tests share it. Every value from the client is checked here before any work starts; the
clip's limits (file size, frames, seconds, resolution) are the app's (``settings``), each
overridable by an environment variable.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from app import models, settings
from app.components import RawRadio, RawSlider, checked_examples, photo_input
from app.engine import friendly_errors, gpu, load_picture, translator_for
from app.jobs import run_heavy
from core.errors import InputError
from core.limits import check_choice
from core.vocabulary import ENGINES, TRAINING_FREE

Progress = Callable[[float, str], None]
PROGRESS = gr.Progress()  # marks the handler's progress parameter; Gradio gives each call its own tracker
STAGES = {"poses": (0.0, 0.2, "finding the pose in frame"), "frames": (0.2, 0.95, "rendering frame"),
          "encoding": (0.95, 1.0, "encoding the video")}

INTRO = """### Pose video: one exemplar person through a whole clip
Upload a short clip of a person moving (a dance, a wave) and a photo of another person: every frame's pose
is found and smoothed over time, and the exemplar person is drawn in it, frame after frame, limb by limb
(an arm the photo does not show is drawn with its sleeve's texture, and the status says so). The skeleton
video shows the poses that were used. Limits on this server: {limits}. Longer clips: `python -m core video`
(docs/video.md)."""


def limits_text() -> str:
    return (f"{settings.VIDEO_MAX_MB} MB, {settings.VIDEO_MAX_FRAMES} frames and {settings.VIDEO_MAX_SECONDS} s "
            f"per clip, up to {settings.VIDEO_MAX_RESOLUTION} pixels")


def check_clip(path: str | Path | None):
    """The uploaded clip, opened and within the app's limits (else InputError naming the limit)."""
    from core.video.clip import VIDEO_SUFFIXES, open_clip

    if path is None:
        raise InputError("No clip given: upload a video (MP4, WebM, MOV, GIF...).")
    path = Path(str(path))
    if not path.is_file():
        raise InputError("The clip could not be read: upload it again.")
    if path.suffix.lower() not in VIDEO_SUFFIXES:  # core's own message advises a folder, which no upload is
        raise InputError(f"The clip ({path.suffix or 'no extension'}) is not a video file: upload an MP4, "
                         "WebM, MOV, MKV, AVI or GIF clip.")
    megabytes = path.stat().st_size / 2**20
    if megabytes > settings.VIDEO_MAX_MB:
        raise InputError(f"The clip is {megabytes:.0f} MB: this server takes up to {settings.VIDEO_MAX_MB} MB. "
                         "Trim or shrink it first.")
    try:
        clip = open_clip(path, max_frames=settings.VIDEO_MAX_FRAMES + 1)
    except InputError as exc:  # name the upload, not the server's temporary path
        raise InputError(str(exc).replace(str(path), "the clip").replace(path.name, "the clip")) from exc
    if clip.count > settings.VIDEO_MAX_FRAMES or clip.count / clip.fps > settings.VIDEO_MAX_SECONDS:
        raise InputError(f"The clip is longer than this server takes ({settings.VIDEO_MAX_FRAMES} frames, "
                         f"{settings.VIDEO_MAX_SECONDS} s): trim it, or run `python -m core video` locally.")
    return clip


def check_video_resolution(resolution: object) -> int:
    """The app's resolution limit for videos (``settings.VIDEO_RESOLUTION``, from core.limits)."""
    return settings.VIDEO_RESOLUTION.check(resolution)


@gpu
@friendly_errors
def retarget(clip_path, exemplar, resolution: float = 256, engine: str = TRAINING_FREE,
             progress: Progress | None = None) -> tuple[str, str, str]:
    """(result video, skeleton video, status markdown) for one clip and one exemplar photo."""
    from core.video.retarget import VideoOptions, VideoRetargeter

    engine = check_choice("engine", engine, ENGINES)
    res = check_video_resolution(resolution)
    clip = check_clip(clip_path)
    picture = load_picture(exemplar, "exemplar")
    report = progress or (lambda fraction, text: None)

    def on_progress(stage: str, done: int, total: int) -> None:
        start, end, words = STAGES[stage]
        text = words if stage == "encoding" else f"{words} {min(done + 1, total)}/{total}"
        report(start + (end - start) * done / max(total, 1), text)

    translator = translator_for("pose", engine, None)
    folder = Path(tempfile.mkdtemp(prefix="video-", dir=settings.TEMP_DIR))
    t0 = time.perf_counter()
    try:
        result = VideoRetargeter(translator).run(
            clip, picture, folder / "result.mp4",
            VideoOptions(resolution=res, skeleton_video=folder / "skeleton.mp4"), on_progress)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    notes = "".join(f"\n- {m}" for m in result.messages)
    status = (f"**{result.frames} frames**, {result.size[1]}x{result.size[0]} at {result.fps:g} fps, "
              f"{result.engine}, {seconds:.1f} s ({seconds / max(result.frames, 1):.2f} s per frame).{notes}")
    return str(result.output), str(result.skeleton_video), models.public_text(status)  # a model by name, no folder


def build_video_tab(heavy: dict) -> None:
    """The tab's layout and its one heavy event (``heavy``: the app's shared concurrency settings)."""
    gr.Markdown(INTRO.format(limits=limits_text()))
    with gr.Row():
        clip = gr.Video(label="Clip (a person moving)", sources=["upload"], include_audio=True, format=None,
                        elem_id="video-clip", height=320)  # its path, untouched (Gradio converts nothing)
        exemplar = photo_input(label="Exemplar (the person to show)", sources=["upload", "clipboard"],
                               elem_id="video-exemplar", height=320)  # read by the handler, with the pixel limit
    checked_examples(gr.Examples(
        [[str(settings.ASSETS / "clip_astronaut.mp4"), str(settings.ASSETS / "grace_hopper.jpg")]],
        inputs=[clip, exemplar], label="Example: a swaying camera films the astronaut (public domain, offline)",
        cache_examples=False))
    with gr.Row():
        limit = settings.VIDEO_RESOLUTION
        # Raw: the handler checks both and refuses a bad value with what is allowed
        resolution = RawSlider(limit.minimum, limit.maximum, value=min(256, limit.maximum), step=limit.step,
                               label="Resolution (output side, pixels)", elem_id="video-resolution")
        engine = RawRadio(list(ENGINES), value=TRAINING_FREE, label="Engine",
                          info="training-free (engine v2: per-limb charts) needs no trained model")
    run = gr.Button("Make the video", variant="primary", elem_id="video-run")
    with gr.Row():
        result = gr.Video(label="Result", interactive=False, format=None, elem_id="video-result", height=384)
        skeleton = gr.Video(label="Skeletons (smoothed poses)", interactive=False, format=None,
                            elem_id="video-skeleton", height=384)
    status = gr.Markdown(elem_id="video-status")

    async def run_video(clip_value, exemplar_value, res, engine_name, progress=PROGRESS):
        # within the request's time budget; stopped when the client cancels or leaves (app/jobs.py)
        return await run_heavy(retarget, clip_value, exemplar_value, res, engine_name,
                               lambda f, text: progress(f, desc=text))

    run.click(run_video, [clip, exemplar, resolution, engine], [result, skeleton, status], api_name="video",
              **heavy)
