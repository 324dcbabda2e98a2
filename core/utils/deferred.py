"""Values computed when first read: a result's or a condition's costly parts that many callers never use
(a pose's limb-distance channels, a translation's per-level views)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Deferred:
    """A value made by ``make()`` on first use, then kept. ``shape`` (optional) is known before."""

    def __init__(self, make: Callable[[], Any], shape: tuple[int, ...] | None = None):
        self._make = make
        self.shape = shape
        self._value: Any = None
        self._done = False

    def __call__(self) -> Any:
        if not self._done:
            self._value, self._done = self._make(), True
        return self._value


def deferred_field(cls: type, name: str) -> None:
    """Make the dataclass field ``name`` of ``cls`` accept a ``Deferred``: reading it gives the value,
    computed on the first read. Call after the class is made (its __init__ assigns through this)."""
    key = "_" + name

    def read(self: Any) -> Any:
        value = self.__dict__.get(key)
        if isinstance(value, Deferred):
            value = self.__dict__[key] = value()
        return value

    def write(self: Any, value: Any) -> None:
        self.__dict__[key] = value

    setattr(cls, name, property(read, write, doc=f"``{name}`` (computed on first read when given as a Deferred)"))


def raw(obj: Any, name: str) -> Any:
    """A ``deferred_field``'s stored value, not computed (a ``Deferred`` stays one)."""
    return obj.__dict__.get("_" + name)
