"""Gradio components whose upload handling leaves every check to ``core.imageio.load_image``.

Gradio's own Image preprocessing opens the upload with Pillow before our code runs, so a
corrupt file would end in a generic "Error". These factories return stock components whose
``preprocess`` passes the uploaded file's path through untouched (the handlers then load it
with the pixel limit and clear messages). They patch the instance rather than subclass:
Gradio writes a ``.pyi`` stub next to the source of every component subclass, and the app
writes nothing outside its temporary folder.
"""

from __future__ import annotations

import base64
import os
import tempfile
import types
from io import BytesIO
from pathlib import Path

import gradio as gr
from gradio import utils
from PIL import Image

from app import settings

UNREADABLE = "This upload could not be read as a picture. Use a PNG, JPEG or WebP file."


def _path_through(self: gr.Image, payload):
    if payload is None:
        return None
    if (payload.url or "").startswith("data:"):  # a picture sent inline (webcam, clipboard, or any API client)
        return _inline_picture(self, payload.url)
    if payload.path:
        return str(payload.path)
    raise gr.Error(UNREADABLE, title="Unreadable picture", print_exception=False)


def _inline_picture(self: gr.Image, url: str) -> str:
    """A data URL's bytes written, undecoded, to a new file in Gradio's cache (deleted with the component's other
    temporary files): the handlers then read it like any upload (pixel limit from the header). Gradio's own
    preprocessing decoded it whole and re-encoded it as WebP first (a 450 kB data URL of a 144 MP picture took
    7 s of CPU and 430 MB), and no upload limit applied."""
    head, _, data = url.partition(",")
    limit = utils._parse_file_size(settings.MAX_FILE_SIZE)
    if limit is not None and len(data) * 3 // 4 > limit:  # checked before decoding
        raise gr.Error(f"The picture is larger than this server's upload limit ({settings.MAX_FILE_SIZE}). Use a "
                       "smaller file.", title="Too large", print_exception=False)
    try:
        if not head.endswith(";base64"):
            raise ValueError("not base64")
        raw = base64.b64decode(data, validate=True)
    except ValueError as exc:  # binascii.Error included
        raise gr.Error(UNREADABLE, title="Unreadable picture", print_exception=False) from exc
    folder = Path(self.GRADIO_CACHE) / "inline"
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=folder, prefix="picture-")
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    self.temp_files.add(path)
    return path


def photo_input(**kwargs) -> gr.Image:
    """A ``gr.Image`` (upload, webcam, clipboard) that gives handlers the uploaded file's path, undecoded."""
    kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    component.preprocess = types.MethodType(_path_through, component)
    return component


def _editor_pixels(self: gr.ImageEditor, payload) -> int:
    """The largest picture in an editor payload (background, layers, composite), from the headers only."""
    stored = self.blob_storage.get(payload.id) if payload.id is not None else None
    parts = stored if stored is not None else payload
    largest = 0
    for part in [parts.background, parts.composite, *(parts.layers or [])]:
        if part is not None:
            with Image.open(part.path if hasattr(part, "path") else BytesIO(part)) as picture:
                largest = max(largest, picture.size[0] * picture.size[1])
    return largest


def _editor_preprocess(self: gr.ImageEditor, payload):
    try:
        if payload is not None and _editor_pixels(self, payload) > settings.MAX_PIXELS:
            _forget_blobs(self, payload)
            raise gr.Error(f"The mask editor's picture has more than {settings.MAX_PIXELS / 1e6:.0f} MP. Use a "
                           "smaller mask.", title="Too large")  # refused before Gradio decodes it
        return gr.ImageEditor.preprocess(self, payload)
    except gr.Error:
        raise
    except Exception as exc:
        _forget_blobs(self, payload)
        raise gr.Error("The mask editor's picture could not be read. Upload a PNG mask or paint one.",
                       title="Unreadable mask") from exc


def _forget_blobs(self: gr.ImageEditor, payload) -> None:
    """Drop the payload's uploaded blobs: Gradio removes them only at the end of a successful preprocess, so a
    refused or unreadable upload would otherwise stay in memory for the server's life."""
    if payload is not None and getattr(payload, "id", None) is not None:
        self.blob_storage.pop(payload.id, None)


def mask_editor(**kwargs) -> gr.ImageEditor:
    """A ``gr.ImageEditor`` whose preprocessing failures (a corrupt background upload) become a clear error."""
    component = gr.ImageEditor(**kwargs)
    component.preprocess = types.MethodType(_editor_preprocess, component)
    return component


def _untouched(self, payload):
    return payload


def raw(component: gr.components.Component) -> gr.components.Component:
    """``component`` handing the client's value to the handler untouched: the handlers check every
    value (``core.limits``, model names) and refuse a bad one with a message naming what is allowed,
    where Gradio's own preprocessing would fail on a wrong type with a bare "Error"."""
    component.preprocess = types.MethodType(_untouched, component)
    return component


def _example_index(self: gr.Dataset, payload):
    """The example a client clicked: an index of the examples shown, as the page sends; anything else (text, a
    fraction, a negative or too large number, nothing) is refused with a message, where Gradio raised inside
    its handler (a bare error and a traceback in the log per call)."""
    if isinstance(payload, bool) or not isinstance(payload, int) or not 0 <= payload < len(self.raw_samples):
        raise gr.Error("No such example: click one of the examples shown.", title="Unknown example",
                       print_exception=False)
    return gr.Dataset.preprocess(self, payload)


def checked_examples(examples: gr.Examples) -> gr.Examples:
    """``examples`` whose clicks are checked (``_example_index``) before Gradio loads one."""
    examples.dataset.preprocess = types.MethodType(_example_index, examples.dataset)
    return examples


def event_index(event: gr.EventData) -> object:
    """The ``index`` a select event's client sent, whatever it is (the handlers check it). Gradio's ``SelectData``
    raised a KeyError (a traceback in the log) for event data without all its keys, before the handler ran."""
    data = getattr(event, "_data", None)
    return data.get("index") if isinstance(data, dict) else None
