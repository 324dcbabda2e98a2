"""The app's only door into ``core``: translators per request (weights cached in core), safe
picture loading, error translation.

``core.pipeline`` (torch, MediaPipe) is imported on first use, not when the app starts.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import struct
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio import processing_utils
from gradio.exceptions import ComponentProcessingError
from PIL import Image

from app import models, settings
from core.budget import BudgetExceeded, Cancelled
from core.errors import CheckpointError, InputError, NoSubjectError, WarpaintError
from core.limits import check_choice
from core.vocabulary import ENGINES, LEARNED, TRAINING_FREE, unknown

log = logging.getLogger("warpaint.app")

_TITLES = {InputError: "Input problem", NoSubjectError: "Nothing found", CheckpointError: "Checkpoint problem",
           BudgetExceeded: "Too long", Cancelled: "Cancelled"}

try:  # Hugging Face Spaces (ZeroGPU): heavy functions borrow a GPU while they run
    import spaces  # type: ignore[import-not-found]

    gpu: Callable = spaces.GPU
except ImportError:  # everywhere else: a no-op decorator

    def gpu(fn: Callable) -> Callable:
        return fn


def friendly_errors(fn: Callable) -> Callable:
    """Turn every ``WarpaintError`` into a ``gr.Error`` with its message (server folders left out);
    anything else into a short generic message with an id that is also in the server log."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except WarpaintError as exc:
            title = next((t for cls, t in _TITLES.items() if isinstance(exc, cls)), "Cannot do that")
            # core's messages name the user's options in the app's words (Advanced accordion)
            message = models.public_text(exc.for_front_end("app"))
            if isinstance(exc, (BudgetExceeded, Cancelled)):
                log.warning("request stopped (%s): %s", type(exc).__name__, exc)
            else:  # the user's mistake, not the server's: one log line, not Gradio's traceback per refusal
                log.info("refused (%s): %s", title, message)
            raise gr.Error(message, title=title, print_exception=False) from exc
        except MemoryError as exc:
            raise gr.Error("Out of memory: choose a smaller resolution in Advanced.", title="Too large") from exc
        except Exception as exc:  # a bug: log it in full under an id, tell the user only the id
            raise server_fault(exc, getattr(fn, "__name__", fn),
                               "Try another picture or a smaller resolution") from exc

    return wrapper


def server_fault(exc: BaseException, where: object, advice: str) -> gr.Error:
    """The answer to a failure that is the server's (a bug, a full disk): logged in full (traceback) under a new id;
    the client reads only the id and ``advice``, nothing about the server."""
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error %s in %s", error_id, where, exc_info=exc)
    return gr.Error(f"Something went wrong on the server (error id {error_id}). {advice}; if it persists, report "
                    "the error id.", title="Internal error", print_exception=False)  # the traceback is in the log


MALFORMED = ("This request's values could not be read: send each value as the page does (a file as an upload, "
             "one value per input; the API page lists them).")
URL_REFUSED = ("Files are not fetched from URLs: upload the file, then send the path the upload returns (the API "
               "page shows how; gradio_client's handle_file does both).")
_URL = re.compile(r"\s*[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# errors of a file the client named (not there, a folder, a name too long): its doing, not the server's
_CLIENT_ERRNOS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP}
# what reading a picture that is not one raises (Pillow's decoders), besides ValueError and errno-less OSError
_UNDECODABLE = (EOFError, SyntaxError, struct.error, zlib.error, Image.DecompressionBombError)


def client_caused(exc: BaseException) -> bool:
    """Whether an exception raised while Gradio read a request's values is the client's doing: a value Gradio cannot
    take (pydantic's ``ValidationError``, ``InvalidPathError``, too few values: ``ValueError``; a wrong type or
    shape), a file it named that is not there, a picture that cannot be decoded. Not: a full disk, a permission,
    no memory, a bug (``RuntimeError``, ``AttributeError``...): the server's. Gradio wraps what a component's
    ``preprocess`` raises in a ``ComponentProcessingError`` (a ``ValueError``): the wrapped exception decides."""
    while isinstance(exc, ComponentProcessingError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, OSError):
        return exc.errno is None or exc.errno in _CLIENT_ERRNOS  # Pillow's "cannot identify image file": no errno
    return isinstance(exc, (ValueError, TypeError, KeyError, IndexError, *_UNDECODABLE))


def _file_paths(value: object):
    """Every string ``path`` of a FileData-like dict in a request's value (any JSON). Walked without recursion: a
    deeply nested value costs no stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str):
                yield path
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def names_a_url(value: object) -> bool:
    """Whether a request's value (any JSON) holds a file given by URL (``{"path": "https://…"}``), which Gradio
    downloads with no size limit before any check of the app's (``processing_utils.async_ssrf_protected_download``)."""
    return any(_URL.match(path) for path in _file_paths(value))


def names_a_non_file(value: object) -> bool:
    """Whether a request's value names, as a file, something there that is not a regular file: a folder of Gradio's
    upload area (the /upload reply shows it), a link, a device. Gradio took a folder and added it to the
    component's temporary files; the scheduled cleanup's ``os.remove`` then raised IsADirectoryError, which ended
    Gradio's cleanup loop for the server's life. One ``lstat`` per path, nothing opened. A path not there at all
    passes (an expired upload: ``load_upload`` says to upload it again)."""
    return any(os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path))
               for path in _file_paths(value))  # lexists: False for a name with a NUL byte or too long


def malformed(what: str) -> gr.Error:
    """The answer to a request value the page cannot send: one log line (``refused (Malformed request): what``,
    cut to its first line's 200 characters), and the one message, which reveals nothing of the server."""
    log.info("refused (Malformed request): %s", (what.strip().splitlines() or [""])[0][:200])
    return gr.Error(MALFORMED, title="Malformed request", print_exception=False)


def refuse_malformed_requests(demo: gr.Blocks) -> gr.Blocks:
    """Wrap Gradio's reading of every request's values (``Blocks.preprocess_data``, before any handler):

    - a file given by URL is refused before Gradio fetches anything (``names_a_url``);
    - a "file" that is a folder (or a link, a device) is refused before Gradio adds it to the files its cleanup
      deletes (``names_a_non_file``);
    - values Gradio itself cannot take (not a file where a file goes, a path the client did not upload, too few
      values) failed inside it with its own exception, a traceback in the log per request (a hostile client could
      flood a Space's log): they become a message and one log line (``refused (Malformed request)``);
    - a failure that is the server's (``client_caused`` false: a full disk, a bug) is logged in full under an error
      id, and the client reads only the id.

    The app's own preprocessing (``app.components``) raises ``gr.Error`` for what it refuses. A select event's data
    (``event_data``) is read the same way (``_check_event_data``)."""
    original = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, *args, **kwargs):
        if names_a_url(inputs):
            log.info("refused (URL given): a file given by URL")
            raise gr.Error(URL_REFUSED, title="Upload the file", print_exception=False)
        if names_a_non_file(inputs):
            raise malformed("a value names a folder or other non-file as a file")
        try:
            return await original(block_fn, inputs, *args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            if not client_caused(exc):
                raise server_fault(exc, f"reading the values of {getattr(block_fn, 'name', block_fn)}",
                                   "Try again in a moment") from exc
            log.debug("malformed request", exc_info=True)
            raise malformed(f"{type(exc).__name__}: {str(exc).strip()}") from exc

    demo.preprocess_data = preprocess_data
    original_process_api = demo.process_api

    async def process_api(*args, **kwargs):
        _check_event_data(kwargs.get("event_data"))  # Gradio passes it by name (route_utils.call_process_api)
        return await original_process_api(*args, **kwargs)

    demo.process_api = process_api
    return demo


def _check_event_data(event_data: object) -> None:
    """A select event's data naming a file outside Gradio's cache (``{"index": 1, "value": {"path": "/etc/x"}}``):
    Gradio refused it before the handler (``processing_utils.check_all_files_in_cache``) with a ``gr.Error`` that
    prints a traceback, or an ``OSError`` for a 5,000-character name: a traceback in the log per request. It is
    refused here first, with the same message and log line as any malformed value."""
    data = getattr(event_data, "_data", None)
    if data is None:
        return
    try:
        processing_utils.check_all_files_in_cache(data)
    except Exception as exc:
        if not isinstance(exc, gr.Error) and not client_caused(exc):
            raise server_fault(exc, "reading an event's data", "Try again in a moment") from exc
        raise malformed(f"event data: {str(exc).strip()}") from exc


def load_picture(source: str | Path | np.ndarray | None, what: str) -> np.ndarray:
    """A path (an upload in Gradio's cache) or an array -> (H, W, 3) uint8 RGB, with the app's pixel limit."""
    return load_upload(source, what)[0]


def load_upload(source: str | Path | np.ndarray | None, what: str) -> tuple[np.ndarray, bool]:
    """``load_picture``, and whether the upload was stored with a colour palette (GIF-style, mode P: a photo
    saved so is dithered); the file is opened once. A path that is not a file (an upload deleted by the cache
    cleanup, a folder) is "could not be read: upload it again", as ``video.check_clip`` says: core's "File not
    found: … Check the path." named the upload root's folder."""
    if source is None:
        raise InputError(f"No {what} given: upload a picture or pick an example.")
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise InputError(f"The {what} must be an RGB picture; got an array of shape {source.shape}.")
        if source.shape[0] * source.shape[1] > settings.MAX_PIXELS:
            raise InputError(f"The {what} has more than {settings.MAX_PIXELS / 1e6:.0f} MP. Use a smaller picture.")
        return source, False
    from core.imageio import PALETTE_MODES, load_image_and_mode

    path = str(source)
    if not Path(path).is_file():  # an expired upload, a folder: core's message would name the server's path
        raise InputError(f"The {what} could not be read: upload it again.")
    try:
        picture, mode = load_image_and_mode(path, max_pixels=settings.MAX_PIXELS)
    except InputError as exc:  # name the upload, not the server's temporary path
        raise InputError(str(exc).replace(path, f"The {what} ({Path(path).name})")) from exc
    return picture, mode in PALETTE_MODES


def engine_plan(task: str, engine: object, checkpoint: object) -> str:
    """What will run, in words, before anything is loaded (``checkpoint``: a model name the server offers, or ""
    / None). Both come from the client: an engine or a name the page cannot send is refused, never shown as the
    plan; the refusal quotes it cut short (``shown``: the first 40 characters of its repr)."""
    engine = check_choice("engine", engine, ENGINES)
    models.resolve(task, checkpoint)  # a name the server offers, or nothing
    if engine == TRAINING_FREE:
        return f"{TRAINING_FREE} (hand-made descriptors, no weights)"
    found = [checkpoint] if checkpoint else models.names(task)
    if engine == LEARNED:
        return f"{LEARNED} ({found[0]})" if found else f"{LEARNED}: no checkpoint found (the run will fail)"
    if found:
        return f"auto: {LEARNED} ({found[0]})"
    return f"auto: {TRAINING_FREE} (no checkpoint for this task under checkpoints/)"


def translator_for(task: str, engine: str, checkpoint: Path | None) -> Any:
    """A ``core.pipeline.Translator`` for ``checkpoint``, a folder the server chose (``models.resolve``),
    never a client's. Cheap to build: the weights live in core's one per-process model cache."""
    if engine not in ENGINES:
        raise InputError(unknown("engine", engine, ENGINES))
    from core.pipeline import Translator

    return Translator(task, engine=engine, checkpoint=checkpoint or None, checkpoints_root=settings.CHECKPOINTS,
                      front_end="app")  # its messages name the app's controls
