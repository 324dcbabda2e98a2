"""Gradio components whose upload handling leaves every check to ``core.imageio.load_image``.

Gradio's own Image preprocessing opens the upload with Pillow before our code runs, so a
corrupt file would end in a generic "Error". These subclasses pass the uploaded file's
path through untouched; the handlers then load it with the pixel limit and clear messages.
"""

from __future__ import annotations

import gradio as gr


class PhotoInput(gr.Image):
    """``gr.Image`` (same front end) that hands the handler the uploaded file's path, undecoded."""

    is_template = True  # Gradio: render with the parent's front-end component ("image")

    def __init__(self, **kwargs):
        kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
        super().__init__(type="filepath", image_mode=None, **kwargs)

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        try:  # webcam / clipboard data URLs: Gradio writes them to its cache folder
            return super().preprocess(payload)
        except Exception as exc:
            raise gr.Error(f"This upload could not be read as a picture ({exc}). Use a PNG, JPEG or WebP file.",
                           title="Unreadable picture") from exc


class MaskEditor(gr.ImageEditor):
    """``gr.ImageEditor`` whose preprocessing failures (corrupt background upload) become a clear error."""

    is_template = True

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(f"The mask editor's picture could not be read ({exc}). Upload a PNG mask or paint one.",
                           title="Unreadable mask") from exc
