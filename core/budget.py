"""A time budget for one request: long work stops at the next check once it is spent or cancelled.

    with time_budget(300, cancelled=lambda: client_gone):
        translator.translate(...)      # matching calls budget.check() between levels and iterations

Without an active budget ``check()`` does nothing, so the CLI, the trainer and the tests run
unbounded. The budget lives in a context variable: it follows the thread (or task) that set it
and never leaks into another request.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.errors import WarpaintError


class BudgetExceeded(WarpaintError):
    """The request ran past its time budget and was stopped."""


class Cancelled(WarpaintError):
    """The client cancelled the request or went away; the work was stopped."""


@dataclass
class Budget:
    seconds: float
    cancelled: Callable[[], bool] | None = None
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled("The request was cancelled.")
        if self.elapsed() > self.seconds:
            raise BudgetExceeded(
                f"The request took longer than {self.seconds:g} s, this server's limit per request, and was "
                "stopped: choose a smaller resolution or fewer iterations (or run it locally with the CLI).")


_active: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("warpaint_budget", default=None)


@contextmanager
def time_budget(seconds: float, cancelled: Callable[[], bool] | None = None) -> Iterator[Budget]:
    """Make ``check()`` raise once ``seconds`` have passed or ``cancelled()`` says so."""
    budget = Budget(float(seconds), cancelled)
    token = _active.set(budget)
    try:
        yield budget
    finally:
        _active.reset(token)


def check() -> None:
    """Raise BudgetExceeded / Cancelled when the active budget is spent; a no-op without one."""
    budget = _active.get()
    if budget is not None:
        budget.check()
