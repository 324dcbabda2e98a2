"""Output paths checked before any work, so a wrong name fails at once and nothing is overwritten or lost."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.errors import InputError

PICTURE_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # what core.imageio.save_image writes


def check_writable(path: Path, formats: Iterable[str], flag: str, inputs: Iterable[Path | None] = ()) -> None:
    """``path`` (given as ``flag``) can be written: a known suffix, an existing folder, not a folder itself, and
    not one of the ``inputs`` (which it would overwrite)."""
    formats = tuple(formats)
    if path.suffix.lower() not in formats:
        raise InputError(f"{flag} {path}: use one of {', '.join(formats)}.")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {path}: the folder {path.parent} does not exist.")
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name.")
    if path.resolve() in {p.resolve() for p in inputs if p is not None}:
        raise InputError(f"{flag} {path} would overwrite an input file; choose another name.")


def check_apart(outputs: dict[str, Path | None], inputs: Iterable[Path | None]) -> None:
    """No output (``outputs``: flag -> path, files or folders) is one of the ``inputs`` (files or a folder of
    frames), and no two outputs are one path: else the user's clip, photo or frames, or one result, would be
    overwritten by another."""
    protected = {p.resolve() for p in inputs if p is not None}
    taken: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        where = path.resolve()
        if where in protected:
            raise InputError(f"{flag} {path} would overwrite an input; choose another name.")
        if where in taken:
            raise InputError(f"{flag} {path} is also given as {taken[where]}; give each its own name.")
        taken[where] = flag
