"""Gradio components whose upload handling leaves every check to ``core.imageio.load_image``.

Gradio's own Image preprocessing opens the upload with Pillow before our code runs, so a
corrupt file would end in a generic "Error". These factories return stock components whose
``preprocess`` passes the uploaded file's path through untouched (the handlers then load it
with the pixel limit and clear messages). They patch the instance rather than subclass:
Gradio writes a ``.pyi`` stub next to the source of every component subclass, and the app
writes nothing outside its temporary folder.
"""

from __future__ import annotations

import types
from io import BytesIO

import gradio as gr
from PIL import Image

from app import settings


def _path_through(self: gr.Image, payload):
    if payload is None:
        return None
    if payload.path and not (payload.url or "").startswith("data:"):
        return str(payload.path)
    try:  # webcam / clipboard data URLs: Gradio writes them to its cache folder
        return gr.Image.preprocess(self, payload)
    except Exception as exc:
        raise gr.Error("This upload could not be read as a picture. Use a PNG, JPEG or WebP file.",
                       title="Unreadable picture") from exc


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
