"""The app's limits and defaults, each overridable by an environment variable (Spaces secrets/variables)."""

from __future__ import annotations

import os
from pathlib import Path

from app import TEMP_DIR as TEMP_DIR  # re-exported: the app's own temporary folder
from core import hub, limits

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
CHECKPOINTS = Path(os.environ.get("WARPAINT_CHECKPOINTS", ROOT / "checkpoints"))


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise SystemExit(f"{name}={value!r} is not a whole number") from exc


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        seconds = float(value) if value.strip() else default
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise SystemExit(f"{name}={value!r} is not a positive number of seconds")
    return seconds


SERVER_NAME = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
SERVER_PORT = _int("GRADIO_SERVER_PORT", 7860)
SHARE = os.environ.get("WARPAINT_SHARE", "").lower() in ("1", "true", "yes")  # a public link only when asked

MAX_FILE_SIZE = os.environ.get("WARPAINT_MAX_FILE_SIZE", "20mb")  # per upload, enforced by Gradio
MAX_PIXELS = _int("WARPAINT_MAX_PIXELS", 25_000_000)  # per picture, checked from the header before decoding
CONCURRENCY = _int("WARPAINT_CONCURRENCY", 1)  # heavy events (extraction, translation) running at once
QUEUE_SIZE = _int("WARPAINT_QUEUE_SIZE", 32)  # waiting requests beyond which new ones are refused
CACHE_SECONDS = _int("WARPAINT_CACHE_SECONDS", 3600)  # uploads and results older than this are deleted
# Each request's heavy work stops after this long ("took longer than N s"); a 1024 learned run takes
# about 2 minutes on 2 CPU cores (docs/performance.md), so the default leaves room for it and a queue.
REQUEST_SECONDS = _seconds("WARPAINT_REQUEST_SECONDS", 300)

# Hugging Face Hub models the operator allows (WARPAINT_MODELS=org/a,org/b@rev): fetched at start-up
# when online, else read from the Hugging Face cache; offered to clients by id, beside CHECKPOINTS' folders.
HUB_MODELS = tuple(dict.fromkeys(m.strip() for m in os.environ.get("WARPAINT_MODELS", "").split(",") if m.strip()))
if not all(hub.looks_like_hub_id(m) for m in HUB_MODELS):
    raise SystemExit(f"WARPAINT_MODELS={os.environ['WARPAINT_MODELS']!r}: give Hub ids org/name[@revision], "
                     "separated by commas")

# What clients may set (UI sliders and API checks alike): core.limits, narrowed by the operator.
RESOLUTION = limits.RESOLUTION.narrowed(minimum=128, maximum=_int("WARPAINT_MAX_RESOLUTION", 1024), step=64)
ITERATIONS = limits.ITERATIONS.narrowed(minimum=1, maximum=16)
TEMPERATURE = limits.TEMPERATURE
SEED = limits.SEED

# Pose video tab: per clip (the CLI has no such limits)
VIDEO_MAX_MB = _int("WARPAINT_VIDEO_MAX_MB", 20)
VIDEO_MAX_FRAMES = _int("WARPAINT_VIDEO_MAX_FRAMES", 150)
VIDEO_MAX_SECONDS = _int("WARPAINT_VIDEO_MAX_SECONDS", 10)
VIDEO_MAX_RESOLUTION = _int("WARPAINT_VIDEO_MAX_RESOLUTION", 512)
VIDEO_RESOLUTION = RESOLUTION.narrowed(maximum=VIDEO_MAX_RESOLUTION)
