"""Process-wide settings that the entry points (``python -m core``, ``python app.py``) apply
before torch is first imported. Importing a library module never changes the environment."""

from __future__ import annotations

import os

# The entry points set this before torch is imported: torch then backs every allocation >= 2 MiB
# with transparent huge pages, ~4x fewer page faults for the default allocator mode.
HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"


def set_process_defaults() -> None:
    """OpenMP threads that spin while waiting fight MediaPipe's threads (and other processes) for
    the cores: on a busy 2-core machine a 512x512 translation took ~5 s instead of ~1.4 s. Passive
    waiting only takes effect before torch is loaded; a value the user set wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault(HUGE_PAGES_ENV, "1")  # torch reads it once, at import (see above)
