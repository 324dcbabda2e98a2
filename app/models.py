"""The models a client may choose, by name only, and what a message may say about the server.

Names are the folders under the app's checkpoints folder (``settings.CHECKPOINTS``) and the Hub
ids the operator allowed (``WARPAINT_MODELS``), each offered for the task its config says. A
client sends a name; the server maps it to its own folder. A path from a client is never opened,
and text sent to clients names models, never the server's folders.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from app import settings
from core.errors import InputError, WarpaintError
from core.limits import MAX_TEXT
from core.vocabulary import shown

log = logging.getLogger("warpaint.app")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[\w.-]+/)+[\w.-]*")
_hub: dict[str, Path] | None = None
_hub_lock = threading.Lock()


def hub_models() -> dict[str, Path]:
    """The allowed Hub ids -> their folders in the Hugging Face cache. Resolved once (the server calls
    this at start-up): from the Hub when online, from the cache offline; an id that cannot be had is
    logged and not offered."""
    global _hub
    with _hub_lock:
        if _hub is None:
            from core.hub import resolve_model

            found: dict[str, Path] = {}
            for model_id in settings.HUB_MODELS:
                try:
                    found[model_id] = resolve_model(model_id)
                    log.info("model %s ready", model_id)
                except WarpaintError as exc:
                    log.warning("model %s is not offered: %s", model_id, exc)
            _hub = found
        return _hub


def _task_of(folder: Path) -> str | None:
    from core.config import WarpaintConfig

    try:
        return WarpaintConfig.load(folder / "config.json").task
    except (OSError, ValueError, TypeError):
        return None


def names(task: str) -> list[str]:
    """The names of the models for ``task`` the server offers now: its folders (sorted), then Hub ids."""
    from core.pipeline import find_checkpoints

    local = [f.name for f in find_checkpoints(settings.CHECKPOINTS, task)] if settings.CHECKPOINTS.is_dir() else []
    return local + [model_id for model_id, folder in hub_models().items() if _task_of(folder) == task]


def default(task: str) -> Path | None:
    """The folder "auto" / "learned" use when no name is given: the first model offered for ``task``."""
    offered = names(task)
    return resolve(task, offered[0]) if offered else None


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
    return hub_models()[name] if name in hub_models() else settings.CHECKPOINTS / name


def public_text(text: str) -> str:
    """``text`` with the server's folders replaced by what a client may know (model names)."""
    for model_id, folder in (_hub or {}).items():
        text = text.replace(str(folder), model_id)
    for folder, public in ((settings.CHECKPOINTS, "checkpoints"), (settings.TEMP_DIR, "uploads"),
                           (settings.ROOT, ".")):
        text = text.replace(str(folder) + os.sep, public + "/").replace(str(folder), public)
    return _ABSOLUTE_PATH.sub("(a server path)", text)  # a net for anything else
