"""Gradio components whose upload handling leaves every check to ``core.imageio.load_image``.

Gradio's own Image preprocessing opens the upload with Pillow before our code runs, so a
corrupt file would end in a generic "Error". The classes here are stock components whose
``preprocess`` checks what the client sent (the photo inputs pass the uploaded file's path
through untouched: the handlers then load it with the pixel limit and clear messages).

They are subclasses, not patched instances: Gradio rebuilds a component for one session
(``block.__class__(**constructor_args)``) when a handler sends it a property update (an
example click, the "Input is" toggle, the page load's model list), and a patched method
would be gone for the rest of that session. ``is_template`` makes the page draw each with
its stock front end. ``StublessMeta`` keeps Gradio from writing a ``.pyi`` stub next to this
file (it does so for every component class it creates): the app writes nothing outside its
temporary folder.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
import threading
from io import BytesIO
from pathlib import Path

import gradio as gr
from gradio import component_meta, utils
from gradio.components.base import server
from gradio.components.image_editor import EditorDataBlobs
from PIL import Image

from app import settings
from app.engine import client_caused, log

UNREADABLE = "This upload could not be read as a picture. Use a PNG, JPEG or WebP file."


class StublessMeta(type(gr.components.Component)):
    """Gradio's component metaclass without its stub writer. Gradio 6.31's ``ComponentMeta.__new__`` ends with
    ``create_or_modify_pyi`` for every component class it creates, each time its module is imported: it reads the
    module's source, then writes ``<module>.pyi`` beside it (a copy of the source) when missing, or rewrites that
    class's part of it. A failed write is ignored, but a missing source (a ``.pyc``-only install) fails the
    import. The stubs only serve editors' type hints; everything else the metaclass does is kept."""

    def __new__(mcs, name: str, bases: tuple, attrs: dict):
        with _stub_writer_off():
            return super().__new__(mcs, name, bases, attrs)


@contextlib.contextmanager
def _stub_writer_off():
    writer = component_meta.create_or_modify_pyi  # an AttributeError here: Gradio changed, see StublessMeta
    component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = writer


class PhotoInput(gr.Image, metaclass=StublessMeta):
    """A ``gr.Image`` giving handlers the uploaded file's path, undecoded (``photo_input`` makes one)."""

    is_template = True  # drawn by the stock Image front end

    def preprocess(self, payload):
        if payload is None:
            return None
        if (payload.url or "").startswith("data:"):  # a picture sent inline (webcam, clipboard, or any API client)
            return _inline_picture(self, payload.url)
        if payload.path:
            return str(payload.path)
        raise gr.Error(UNREADABLE, title="Unreadable picture", print_exception=False)


INLINE_PICTURES: set[str] = set()  # files _inline_picture wrote; build_demo adds the set to Gradio's cleanup list


def _inline_picture(self: gr.Image, url: str) -> str:
    """A data URL's bytes written, undecoded, to a new file in Gradio's cache, listed in ``INLINE_PICTURES`` (which
    Gradio's scheduled cleanup deletes from: ``build_demo`` registers it): the handlers then read it like any upload
    (pixel limit from the header). Gradio's own preprocessing decoded it whole and re-encoded it as WebP first (a
    450 kB data URL of a 144 MP picture took 7 s of CPU and 430 MB), and no upload limit applied. Not the
    component's ``temp_files``: a copy Gradio rebuilt for a session (an example click) is not in the cleanup list,
    and its files stayed for the server's life."""
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
    INLINE_PICTURES.add(path)
    return path


def photo_input(**kwargs) -> PhotoInput:
    """A ``PhotoInput`` (upload, webcam, clipboard) that gives handlers the uploaded file's path, undecoded."""
    kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
    return PhotoInput(type="filepath", image_mode=None, **kwargs)


MAX_EDITOR_LAYERS = 4  # layers the mask editor takes (the page sends one: ``mask_editor`` has no "add layer" button)
MAX_EDITOR_PICTURES = 3  # the pixels of all an editor value's pictures together: this many pictures at the limit


def _picture_size(part) -> tuple[int, int] | None:
    """An editor part's (width, height) from its header (a FileData's file, or a blob's bytes), or None."""
    if part is None:
        return None
    with Image.open(part.path if hasattr(part, "path") else BytesIO(part)) as picture:
        return picture.size


def _check_editor_value(self: gr.ImageEditor, payload) -> None:
    """Refuse, from the headers only, an editor value that Gradio would decode at great cost: more layers than
    ``MAX_EDITOR_LAYERS``, one picture over the pixel limit, all of them together over ``MAX_EDITOR_PICTURES``
    times it (one small PNG of many pixels named as every layer was decoded once per layer: 40 layers of 4 MP took
    600 MB), a layer not the size of the background (``palette.editor_to_mask`` skips it anyway)."""
    stored = self.blob_storage.get(payload.id) if payload.id is not None else None
    parts = stored if stored is not None else payload
    layers = list(parts.layers or [])
    if len(layers) > MAX_EDITOR_LAYERS:
        raise gr.Error(f"The mask editor sent {len(layers)} layers; it takes at most {MAX_EDITOR_LAYERS}. Paint on "
                       "one layer.", title="Too many layers", print_exception=False)
    background, composite = _picture_size(parts.background), _picture_size(parts.composite)
    layer_sizes = [size for size in map(_picture_size, layers) if size is not None]
    sizes = [size for size in (background, composite, *layer_sizes) if size is not None]
    if max((w * h for w, h in sizes), default=0) > settings.MAX_PIXELS:
        raise gr.Error(f"The mask editor's picture has more than {settings.MAX_PIXELS / 1e6:.0f} MP. Use a smaller "
                       "mask.", title="Too large", print_exception=False)
    together = MAX_EDITOR_PICTURES * settings.MAX_PIXELS
    if sum(w * h for w, h in sizes) > together:
        raise gr.Error(f"The mask editor's pictures have more than {together / 1e6:.0f} MP together. Use a smaller "
                       "mask.", title="Too large", print_exception=False)
    reference = background or (layer_sizes[0] if layer_sizes else None)
    if any(size != reference for size in layer_sizes):
        raise gr.Error("The mask editor's layers are not the size of its picture. Paint on the picture the editor "
                       "shows.", title="Unreadable mask", print_exception=False)


# editor uploads waiting for their event, all sessions together: the oldest are dropped past either bound
MAX_PENDING_EDITOR_BYTES = 256 * 2**20
MAX_PENDING_EDITOR_UPLOADS = 256
_PENDING_EDITOR_BLOBS: dict[str, EditorDataBlobs] = {}  # upload id -> the pictures the page sent for it, oldest first
_PENDING_LOCK = threading.Lock()  # Gradio runs each upload in a worker thread
_BLOB_TYPES = ("background", "layer", "composite")


def _blob_bytes(blobs: EditorDataBlobs) -> int:
    return sum(len(part) for part in [blobs.background, blobs.composite, *blobs.layers] if part)


class MaskEditor(gr.ImageEditor, metaclass=StublessMeta):
    """A ``gr.ImageEditor`` refusing a costly value (``_check_editor_value``) before Gradio decodes it, and turning its
    preprocessing failures that are the client's (a corrupt background upload) into a clear error."""

    is_template = True  # drawn by the stock ImageEditor front end

    def preprocess(self, payload):
        try:
            if payload is not None:
                _check_editor_value(self, payload)  # before Gradio decodes anything
            return super().preprocess(payload)
        except gr.Error:
            _forget_blobs(self, payload)
            raise
        except Exception as exc:
            _forget_blobs(self, payload)
            if not client_caused(exc):  # the server's failure (a full disk): answered by refuse_malformed_requests
                raise
            raise gr.Error("The mask editor's picture could not be read. Upload a PNG mask or paint one.",
                           title="Unreadable mask", print_exception=False) from exc

    @property
    def blob_storage(self) -> dict[str, EditorDataBlobs]:
        """One store for every mask editor, its copies for sessions included, so that one bound holds for all;
        Gradio's ``__init__`` gives each instance a dict of its own (ignored by the setter). Upload ids are random
        ones the page makes."""
        return _PENDING_EDITOR_BLOBS

    @blob_storage.setter
    def blob_storage(self, value: dict) -> None:
        pass

    @server
    def accept_blobs(self, data):
        """The page uploads the editor's pictures here (``/gradio_api/component_server``) before it sends the event.
        Gradio's own took any layer index (10^10: a list of 80 GB, the server killed) and failed on a missing or
        non-numeric field (a 500 and a traceback per request); such an upload is dropped with one log line (the
        page never sends one), and the oldest uploads still waiting are dropped once all of them together pass
        ``MAX_PENDING_EDITOR_BYTES`` or number ``MAX_PENDING_EDITOR_UPLOADS`` (uploads whose event never came stayed
        for the server's life)."""
        fields = getattr(data, "data", None)
        files = getattr(data, "files", None)
        try:
            kind, upload_id, index = fields["type"], fields["id"], fields.get("index")
            index = None if index in (None, "", "null") else int(index)
            readable = (kind in _BLOB_TYPES and isinstance(upload_id, str) and 0 < len(upload_id) <= 200
                        and bool(files) and (kind != "layer" or (index is not None and 0 <= index < MAX_EDITOR_LAYERS)))
        except (TypeError, KeyError, ValueError, AttributeError):
            readable = False
        if not readable:
            log.info("refused (Malformed request): a mask editor upload the page cannot send")
            return None
        with _PENDING_LOCK:
            result = super().accept_blobs(data)
            _PENDING_EDITOR_BLOBS[upload_id] = _PENDING_EDITOR_BLOBS.pop(upload_id)  # now the newest
            while len(_PENDING_EDITOR_BLOBS) > 1 and (
                    len(_PENDING_EDITOR_BLOBS) > MAX_PENDING_EDITOR_UPLOADS
                    or sum(map(_blob_bytes, list(_PENDING_EDITOR_BLOBS.values()))) > MAX_PENDING_EDITOR_BYTES):
                _PENDING_EDITOR_BLOBS.pop(next(iter(_PENDING_EDITOR_BLOBS)), None)  # the oldest upload first
        return result


def _forget_blobs(self: gr.ImageEditor, payload) -> None:
    """Drop the payload's uploaded blobs: Gradio removes them only at the end of a successful preprocess, so a
    refused or unreadable upload would otherwise stay in memory for the server's life."""
    if payload is not None and getattr(payload, "id", None) is not None:
        self.blob_storage.pop(payload.id, None)


def mask_editor(**kwargs) -> MaskEditor:
    """A ``MaskEditor``: Gradio's image editor with the app's checks, and one layer to paint on (no "add layer"
    button: a mask needs one, and the editor then takes at most ``MAX_EDITOR_LAYERS``)."""
    kwargs.setdefault("layers", gr.LayerOptions(allow_additional_layers=False))
    return MaskEditor(**kwargs)


def _untouched(self, payload):
    """The client's value, untouched: the handlers check every value (``core.limits``, model names) and refuse a
    bad one with a message naming what is allowed, where Gradio's own preprocessing would fail on a wrong type
    with a bare "Error" (or echo the value)."""
    return payload


def _raw(stock: type) -> type:
    """A subclass of the stock input ``stock`` handing the client's value to the handler untouched
    (``_untouched``); a class, so Gradio's per-session rebuild keeps it."""
    name = f"Raw{stock.__name__}"
    return StublessMeta(name, (stock,), {"__module__": __name__, "__qualname__": name, "is_template": True,
                                         "preprocess": _untouched, "__doc__": f"A ``gr.{stock.__name__}`` "
                                         "handing the client's value to the handler untouched (``_untouched``)."})


RawRadio, RawCheckbox, RawSlider, RawDropdown, RawNumber, RawTextbox = (
    _raw(stock) for stock in (gr.Radio, gr.Checkbox, gr.Slider, gr.Dropdown, gr.Number, gr.Textbox))


class ExampleClicks(gr.Dataset, metaclass=StublessMeta):
    """The dataset of a ``gr.Examples``, checking the example a client clicked before Gradio loads it."""

    is_template = True

    def preprocess(self, payload):
        """An index of the examples shown, as the page sends; anything else (text, a fraction, a negative or too
        large number, nothing) is refused with a message, where Gradio raised inside its handler (a bare error
        and a traceback in the log per call)."""
        if isinstance(payload, bool) or not isinstance(payload, int) or not 0 <= payload < len(self.raw_samples):
            raise gr.Error("No such example: click one of the examples shown.", title="Unknown example",
                           print_exception=False)
        return super().preprocess(payload)


def checked_examples(examples: gr.Examples) -> gr.Examples:
    """``examples`` whose clicks are checked (``ExampleClicks``) before Gradio loads one. ``gr.Examples`` builds its
    ``gr.Dataset`` itself: the instance becomes an ``ExampleClicks`` (a subclass adding no state), so a copy Gradio
    rebuilds for a session is one too."""
    examples.dataset.__class__ = ExampleClicks
    return examples


def event_index(event: gr.EventData) -> object:
    """The ``index`` a select event's client sent, whatever it is (the handlers check it). Gradio's ``SelectData``
    raised a KeyError (a traceback in the log) for event data without all its keys, before the handler ran."""
    data = getattr(event, "_data", None)
    return data.get("index") if isinstance(data, dict) else None
