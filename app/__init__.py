"""Warpaint's Gradio app: layout, event handlers, examples and API endpoints.

Importing this package only sets the environment (offline, own temporary folder); it
does not import Gradio or torch. ``app.ui.build_demo()`` builds the Blocks and
``app.server.main()`` serves them (``python app.py`` does both).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def _configure_environment() -> Path:
    """Work offline and keep every file the app writes in one temporary folder of its own.

    Must run before ``import gradio``: Gradio reads these variables at import time.
    Values the user already set are kept.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if not os.environ.get("GRADIO_TEMP_DIR"):
        os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="warpaint-app-")
        atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)  # ours: remove at exit
    temp = Path(os.environ["GRADIO_TEMP_DIR"])
    temp.mkdir(parents=True, exist_ok=True)
    return temp


TEMP_DIR = _configure_environment()
