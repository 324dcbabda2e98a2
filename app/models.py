"""The models a client may choose, by name only, and what a message may say about the server.

Names are the folders under the app's checkpoints folder (``settings.CHECKPOINTS``) whose
config says the task. A client sends a name; the server maps it to its own folder. A path from
a client is never opened, and text sent to clients names models, never the server's folders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from app import settings
from core.errors import InputError
from core.limits import MAX_TEXT
from core.vocabulary import shown

_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[\w.-]+/)+[\w.-]*")


def names(task: str) -> list[str]:
    """The names of the models for ``task`` the server offers now, sorted."""
    from core.pipeline import find_checkpoints

    if not settings.CHECKPOINTS.is_dir():
        return []
    return [folder.name for folder in find_checkpoints(settings.CHECKPOINTS, task)]


def resolve(task: str, name: object) -> Path | None:
    """A client's model name -> the server's folder for it; "" or None -> None (the engine decides)."""
    if name is None or name == "":
        return None
    offered = names(task)
    if not isinstance(name, str) or len(name) > MAX_TEXT or name not in offered:
        choices = ", ".join(repr(n) for n in offered)
        where = f"choose one of {choices}" if offered else "this server has none"
        raise InputError(f"No model named {shown(name)} for the {task} task: {where}, or leave checkpoint empty "
                         "(auto). Models are chosen by name; paths are not accepted.")
    return settings.CHECKPOINTS / name


def public_text(text: str) -> str:
    """``text`` with the server's folders replaced by what a client may know (model names)."""
    for folder, public in ((settings.CHECKPOINTS, "checkpoints"), (settings.TEMP_DIR, "uploads"),
                           (settings.ROOT, ".")):
        text = text.replace(str(folder) + os.sep, public + "/").replace(str(folder), public)
    return _ABSOLUTE_PATH.sub("(a server path)", text)  # a net for anything else
