"""Write frames as a video browsers play: H.264 in MP4 (or VP9 in WebM), through PyAV.

PyAV's wheels bundle FFmpeg with libx264 and libvpx, so nothing is downloaded or installed
beside it. The file appears only when complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import InputError

CODECS = {".mp4": "libx264", ".webm": "libvpx-vp9"}  # what every current browser decodes


def check_output(path: Path) -> None:
    """Refuse an output this cannot write, before any work is done."""
    if path.suffix.lower() not in CODECS:
        raise InputError(f"--output {path.name}: write .mp4 (H.264) or .webm (VP9), which browsers play.")
    if not path.parent.is_dir():
        raise InputError(f"Cannot write {path}: the folder {path.parent} does not exist.")


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, quality: int = 20) -> int:
    """Encode (H, W, 3) uint8 RGB frames (even sides) to ``path``; returns the number written.
    ``quality`` is the constant rate factor (lower = better, 18-23 is visually lossless to good)."""
    import av

    path = Path(path)
    check_output(path)
    codec = CODECS[path.suffix.lower()]
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    written = 0
    options = {"movflags": "+faststart"} if codec == "libx264" else {}
    try:
        with av.open(str(tmp), mode="w", options=options) as container:
            stream = None
            for frame in frames:
                if stream is None:
                    h, w = frame.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"video frames need even sides, got {w}x{h}")
                    stream = container.add_stream(codec, rate=rate)
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                    stream.options = ({"crf": str(quality), "preset": "veryfast"} if codec == "libx264"
                                      else {"crf": str(quality + 11), "b": "0", "deadline": "realtime",
                                            "cpu-used": "8", "row-mt": "1"})
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(picture):
                    container.mux(packet)
                written += 1
            if stream is None:
                raise ValueError("no frames to write")
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return written


@dataclass
class VideoInfo:
    """What a decoder finds in a video file (tests and the app check outputs with it)."""

    frames: int
    width: int
    height: int
    codec: str
    fps: float


def read_video_info(path: str | Path) -> VideoInfo:
    """Decode the whole file (not just its header) and count the frames."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return VideoInfo(frames, stream.codec_context.width, stream.codec_context.height, stream.codec_context.name,
                         float(stream.average_rate or 0))
