"""Gradio writes each output picture to ``cache/<hash of its bytes>/image.png`` with a plain
``write_bytes``: when two requests produce the same picture (eight users running the same
example), one request truncates the file while another client is downloading it, which then
fails with "peer closed connection ... received 0 bytes" (gradio 6.31). ``install()`` makes that
write atomic (a temporary file renamed into place), as Gradio already does for copied files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils


def _save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    if target.is_file() and target.stat().st_size == len(data):
        os.utime(target)  # same bytes (the name is their hash): keep the file readers may be reading
        return str(target)
    fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return str(target)


def install() -> None:
    """Replace Gradio's output-picture cache write by the atomic one (idempotent)."""
    processing_utils.save_pil_to_cache = _save_pil_to_cache
