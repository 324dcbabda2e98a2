"""Process-wide settings that the entry points (``python -m core``, ``python app.py``) apply
before torch is first imported. Importing a library module never changes the environment."""

from __future__ import annotations

import ctypes
import os
import platform

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


def set_malloc(mode: str) -> bool:
    """Apply one of ``MALLOC_SETTINGS`` to this process's glibc malloc (``core.precision.
    configure_allocator`` says what each mode does); "system" leaves glibc as it is. False where
    nothing was changed (that mode, or not glibc)."""
    if mode not in MALLOC_SETTINGS or platform.system() != "Linux":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(_MALLOPT[name], value) == 1 for name, value in MALLOC_SETTINGS[mode].items())


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
