"""Process-wide settings that the entry points (``python -m core``, ``python app.py``) apply
before torch is first imported. Importing a library module never changes the environment."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import threading
from collections.abc import Iterator

# The entry points set this before torch is imported: torch then backs every allocation >= 2 MiB
# with transparent huge pages, ~4x fewer page faults for the default allocator mode.
HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"

_MALLOPT = {"trim_threshold": -1, "mmap_threshold": -3, "mmap_max": -4}  # glibc's parameter numbers
# every block >= 128 KiB is its own mapping, returned when freed: RSS = live tensors
_OWN_MAPPINGS = {"mmap_max": 1 << 16, "mmap_threshold": 1 << 17, "trim_threshold": 1 << 17}
MALLOC_SETTINGS = {
    "default": _OWN_MAPPINGS,
    "lean": _OWN_MAPPINGS,  # the former name of the default
    # big blocks come from the heap and stay there: no page faults on reuse, higher peak RSS
    "fast": {"mmap_max": 0, "trim_threshold": 2**31 - 1},
}


# inside ``reuse_heap``: blocks up to glibc's largest threshold (32 MiB on 64-bit) come from the heap
_HEAP_REUSE = {"mmap_threshold": 32 << 20}
_state = {"mode": None, "depth": 0}  # the mode set_malloc applied last; open reuse_heap scopes
_lock = threading.Lock()


@functools.cache
def _libc():
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def _apply(settings: dict[str, int]) -> bool:
    libc = _libc()
    return libc is not None and all(libc.mallopt(_MALLOPT[name], value) == 1 for name, value in settings.items())


def set_malloc(mode: str) -> bool:
    """Apply one of ``MALLOC_SETTINGS`` to this process's glibc malloc (``core.precision.
    configure_allocator`` says what each mode does); "system" leaves glibc as it is. False where
    nothing was changed (that mode, or not glibc)."""
    if mode not in MALLOC_SETTINGS or not _apply(MALLOC_SETTINGS[mode]):
        _state["mode"] = None
        return False
    _state["mode"] = mode
    return True


@contextlib.contextmanager
def reuse_heap() -> Iterator[bool]:
    """In the default mode ("own mappings"), a loop whose steps allocate and free the same sizes
    again and again (bands of rows): inside it, blocks up to 32 MiB come from glibc's heap, so a
    band reuses the pages the band before freed instead of mapping and faulting in fresh ones (the
    default mode's system time); on leaving the outermost scope, own mappings again and the heap's
    free pages are handed back (``malloc_trim``), so resident memory is the live tensors again.
    Keep it to such loops: around a whole PatchMatch level (tensors that outlive their step) the
    heap's holes raised the 512 peak by 0.07 GiB (docs/performance.md); engine v2 wraps its whole
    call, whose temporaries are mostly same-sized maps (+50 MiB peak for half its CPU time,
    docs/engine.md). The thresholds are process-wide: other threads' requests share the scope while
    it is open. Yields whether it applies (not in another mode, nor outside glibc)."""
    with _lock:
        active = _state["mode"] in ("default", "lean")
        if active:
            if _state["depth"] == 0:
                active = _apply(_HEAP_REUSE)
            _state["depth"] += active
    try:
        yield active
    finally:
        if active:
            with _lock:
                _state["depth"] -= 1
                if _state["depth"] == 0 and _state["mode"] in ("default", "lean"):
                    _apply(MALLOC_SETTINGS[_state["mode"]])
                    _libc().malloc_trim(0)


def release_heap() -> bool:
    """Hand the heap's free pages back now (``malloc_trim``; default mode, outside ``reuse_heap``).
    After a ``reuse_heap`` scope its freed blocks stay in glibc's bins and serve later big requests,
    which leave them resident when freed: call this before a stretch that sets the process peak."""
    with _lock:
        if _state["mode"] not in ("default", "lean") or _state["depth"] or _libc() is None:
            return False
        _libc().malloc_trim(0)
        return True


def set_process_defaults(allocator: str | None = "default") -> None:
    """OpenMP threads that spin while waiting fight MediaPipe's threads (and other processes) for
    the cores: on a busy 2-core machine a 512x512 translation took ~5 s instead of ~1.4 s. Passive
    waiting only takes effect before torch is loaded; a value the user set wins.

    ``allocator``: the allocator mode, set before anything big is allocated (a model built under
    glibc's own dynamic threshold leaves its construction temporaries in a fragmented heap: 54 MiB
    resident for nothing with the official preset; docs/performance.md). None: not now (the
    command line sets it once it has read ``--allocator``)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault(HUGE_PAGES_ENV, "1")  # torch reads it once, at import (see above)
    if allocator is not None:
        set_malloc(allocator)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads for the calling thread, ``count`` inside the scope and as before after
    it. With torch's OpenMP backend the setting is the calling thread's own (threads already running
    keep theirs, MKL's too); a thread that first uses torch while the scope is open starts with it
    and keeps it after. For work on small tensors that already runs beside other threads (engine v2:
    its two completions and MediaPipe on 2 cores), where a team per thread only adds waiting:
    ~0.1-0.5 CPU s per translation (docs/engine.md)."""
    import torch

    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
