"""Heavy work of one request: in a worker thread, under the request's time budget, stopped when
the client cancels or goes away, so the queue's slot is free again within one level/iteration.

Gradio runs a plain function in a thread it cannot stop: a cancelled or abandoned job would keep
its slot (and the CPU) to the end. ``run_heavy`` is awaited by the event instead; it tells the
work to stop (``core.budget``) when its task is cancelled (/cancel) or the client's connection
is gone, and waits for the work to end before the slot is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import anyio

from app import settings
from core.budget import time_budget


def _client_gone() -> Callable[[], bool]:
    """Whether this event's client disconnected (Gradio marks its queue event not alive). Best
    effort: it reads Gradio's queue, so if that ever changes only the time budget applies."""
    try:
        from gradio.context import LocalContext

        blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
        event = blocks._queue.event_ids_to_events.get(event_id) if blocks is not None and event_id else None
    except Exception:
        event = None
    return (lambda: not getattr(event, "alive", True)) if event is not None else (lambda: False)


def _warm_up() -> None:
    """Import torch / MediaPipe once (seconds, on the first request), before any budget starts."""
    import core.pipeline  # noqa: F401


async def run_heavy(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a worker thread within ``settings.REQUEST_SECONDS``."""
    stop = threading.Event()
    gone = _client_gone()

    def work() -> Any:
        _warm_up()
        with time_budget(settings.REQUEST_SECONDS, cancelled=lambda: stop.is_set() or gone()):
            return fn(*args, **kwargs)

    task = asyncio.ensure_future(anyio.to_thread.run_sync(work))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()  # the work raises at its next check; keep the slot until it has
        with contextlib.suppress(BaseException):
            await task
        raise
