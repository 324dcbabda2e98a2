"""A clip to retarget: a video file, a folder of frames, or a folder of OpenPose JSON poses.

    clip = open_clip("dance.mp4", max_frames=240)    # or "frames/" (pictures) or "poses/" (*.json)
    clip.kind, clip.count, clip.fps
    for frame in clip.frames(): ...                  # (H, W, 3) uint8 RGB, decoded as it streams
    for keypoints, frame_hw in clip.poses(): ...     # poses folders: (18, 3) COCO-18 and its canvas

A video is decoded twice (pose pass, render pass) rather than held in memory; frames are never
resized here (the callers fit them to the output size with ``fit_image``, as for one picture).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_FPS = 25.0  # frames and poses folders carry no rate
MAX_FRAME_PIXELS = 4096 * 4096  # per decoded frame (a 4K video is 8.3 M)
KINDS = ("video", "frames", "poses")


@dataclass
class Clip:
    """What will be retargeted, frame by frame, in order."""

    kind: str  # one of KINDS
    path: Path
    count: int  # frames that will be read (after --max-frames)
    fps: float
    files: list[Path] = field(default_factory=list)  # frames / poses folders, sorted by name

    def frames(self) -> Iterator[np.ndarray]:
        """The frames as (H, W, 3) uint8 RGB (video and frames folders)."""
        if self.kind == "video":
            yield from _decode(self.path, self.count)
        elif self.kind == "frames":
            from core.imageio import load_image

            for path in self.files[: self.count]:
                yield load_image(path)
        else:
            raise ValueError("a poses folder has no frames")

    def poses(self) -> Iterator[tuple[np.ndarray, tuple[int, int] | None]]:
        """(18, 3) COCO-18 keypoints in the file's pixels and the canvas (H, W) they refer to, or None
        when the file does not say (then they are taken as pixels of the output)."""
        from core.conditions.openpose_io import read_openpose_json

        for path in self.files[: self.count]:
            found = read_openpose_json(path)
            if found.pose is None:
                yield np.zeros((18, 3)), found.frame
                continue
            kp = np.array(found.pose, np.float64)
            frame = found.frame
            if found.normalized:  # fractions of the canvas (of a square one when the file names none)
                frame = frame or (1, 1)
                kp[:, 0] *= frame[1]
                kp[:, 1] *= frame[0]
            yield kp, frame


def open_clip(path: str | Path, max_frames: int | None = None, fps: float | None = None) -> Clip:
    """Look at ``path`` (video file, folder of pictures, or folder of OpenPose JSON) and count its frames."""
    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise InputError("--max-frames must be at least 1.")
    if fps is not None and not (0 < fps <= 240):
        raise InputError(f"--fps {fps} is out of range: use a rate between 1 and 240.")
    limit = max_frames or 10**9
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        poses = [p for p in files if p.suffix.lower() == ".json"]
        pictures = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if poses and pictures:
            raise InputError(f"{path} holds both pictures and JSON files: put frames and poses in separate folders.")
        if not poses and not pictures:
            raise InputError(f"{path} holds no frames ({', '.join(IMAGE_SUFFIXES)}) and no OpenPose JSON files.")
        kind, chosen = ("poses", poses) if poses else ("frames", pictures)
        return Clip(kind, path, min(len(chosen), limit), fps or DEFAULT_FPS, chosen)
    if not path.is_file():
        raise InputError(f"Input not found: {path}. Give a video file, a folder of frames or of OpenPose JSON.")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"{path.name}: not a video this reads ({', '.join(VIDEO_SUFFIXES)}); "
                         "for pictures give their folder.")
    count, rate = _probe(path, limit)
    return Clip("video", path, count, fps or rate)


def _open_video(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"{path.name} cannot be read as a video ({type(exc).__name__}): "
                         "use an MP4, WebM, MOV, MKV, AVI or GIF file.") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"{path.name} has no video stream.")
    stream = container.streams.video[0]
    if stream.codec_context.width * stream.codec_context.height > MAX_FRAME_PIXELS:
        container.close()
        raise InputError(f"{path.name} is {stream.codec_context.width}x{stream.codec_context.height}: "
                         "frames over 4096x4096 are refused; scale the video down first.")
    stream.thread_type = "AUTO"
    return container, stream


def _probe(path: Path, limit: int) -> tuple[int, float]:
    """(frames, frames per second): frames counted from the packets (no decoding)."""
    import av

    container, stream = _open_video(path)
    try:
        rate = stream.average_rate or stream.guessed_rate or Fraction(DEFAULT_FPS)
        count = 0
        for packet in container.demux(stream):
            if packet.size:
                count += 1
                if count >= limit:
                    break
    except av.FFmpegError as exc:
        raise InputError(f"{path.name} is corrupt ({type(exc).__name__}): re-encode it or give its frames.") from exc
    finally:
        container.close()
    if count == 0:
        raise InputError(f"{path.name} holds no video frames.")
    return count, float(rate)


def _decode(path: Path, count: int) -> Iterator[np.ndarray]:
    """Up to ``count`` decoded frames as RGB arrays."""
    import av

    container, stream = _open_video(path)
    try:
        done = 0
        for frame in container.decode(stream):
            picture = frame.to_ndarray(format="rgb24")
            turns = round(frame.rotation / 90) % 4  # phones store portrait clips sideways plus a display rotation
            yield np.ascontiguousarray(np.rot90(picture, turns)) if turns else picture
            done += 1
            if done >= count:
                return
    except av.FFmpegError as exc:
        raise InputError(f"{path.name} is corrupt after {done} frames ({type(exc).__name__}).") from exc
    finally:
        container.close()
