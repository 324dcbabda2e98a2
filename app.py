"""Warpaint app entry point (Hugging Face Spaces runs this file): ``python app.py``.

The app itself lives in the ``app/`` package; this file only builds and serves it.
Settings come from the environment: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default
127.0.0.1:7860), WARPAINT_MAX_FILE_SIZE, WARPAINT_MAX_PIXELS, WARPAINT_CONCURRENCY...
(see docs/app.md).
"""

import sys

from core.environment import set_process_defaults

set_process_defaults()  # before anything loads torch

from app.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
