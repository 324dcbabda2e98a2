"""Per-stage wall-clock timing (encoders, each correspondence level, generator).

The model marks its stages with ``stage(name)``; that costs nothing unless a caller collects
them with ``record_stages()`` (the bench command, the app's timing line). GPU work is
synchronised at stage boundaries only while recording, so plain inference stays asynchronous.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

import torch

_ACTIVE: ContextVar[dict[str, float] | None] = ContextVar("warpaint_stage_times", default=None)


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is not None and device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def record_stages() -> Iterator[dict[str, float]]:
    """Collect ``{stage: seconds}`` for everything run inside (times of a repeated name add up)."""
    times: dict[str, float] = {}
    token = _ACTIVE.set(times)
    try:
        yield times
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def stage(name: str, device: torch.device | None = None) -> Iterator[None]:
    """Time the enclosed block under ``name`` when a recorder is active; otherwise do nothing."""
    times = _ACTIVE.get()
    if times is None:
        yield
        return
    _sync(device)
    start = time.perf_counter()
    try:
        yield
    finally:
        _sync(device)
        times[name] = times.get(name, 0.0) + time.perf_counter() - start
