"""Process-wide settings that the entry points (``python -m core``, ``python app.py``) apply
before torch is first imported. Importing a library module never changes the environment."""

from __future__ import annotations

import os


def set_process_defaults() -> None:
    """OpenMP threads that spin while waiting fight MediaPipe's threads (and other processes) for
    the cores: on a busy 2-core machine a 512x512 translation took ~5 s instead of ~1.4 s. Passive
    waiting only takes effect before torch is loaded; a value the user set wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
