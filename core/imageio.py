"""One safe way to read, fit and write images, and to move them to and from tensors.

Every path that takes a user's picture (app, CLI, trainer) goes through ``load_image``:
it honours EXIF orientation, turns any Pillow mode into 8-bit RGB, refuses decompression
bombs before decoding a single pixel, and turns every failure into a ``core.errors.InputError``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InputError

MIN_SIDE = 16  # smaller pictures carry no usable content for any task


def _open(source: str | Path | bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Open lazily (header only) and return the image and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "the uploaded data"
        if not data:
            raise InputError("The file is empty: choose a picture (PNG, JPEG, WebP...).")
        fp: io.BytesIO | Path = io.BytesIO(data)
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise InputError(f"File not found: {name}. Check the path.")
        if path.is_dir():
            raise InputError(f"{name} is a folder, not an image file.")
        if not path.is_file():  # a pipe would be read forever, a device without end
            raise InputError(f"{name} is not a regular file (a device, pipe or socket): give a picture file.")
        if path.stat().st_size == 0:
            raise InputError(f"{name} is empty (0 bytes): choose a picture (PNG, JPEG, WebP...).")
        fp = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp), name
    except Image.DecompressionBombError as exc:
        # Pillow refuses huge headers itself; say it in the words of our own limit, not Pillow's
        raise InputError(f"{name} is far over the {max_pixels / 1e6:.0f} MP limit. "
                         "Downscale it first (a few megapixels is plenty).") from exc
    except UnidentifiedImageError as exc:
        raise InputError(
            f"{name} is not an image Pillow can read (corrupt, or not a picture at all). "
            "Use a PNG, JPEG, WebP, BMP or TIFF file."
        ) from exc
    except OSError as exc:
        raise InputError(f"Cannot read {name}: {exc}.") from exc


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB; transparency is composited on white."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    mode = im.mode
    if mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if mode == "F" and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0  # float images in [0, 1]
        elif mode.startswith("I;16") or (mode == "I" and arr.size and float(arr.max()) > 255):
            arr = arr / 257.0  # 16-bit range 0..65535 -> 0..255
        gray = np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "L":
        return np.repeat(np.asarray(im)[..., None], 3, axis=2)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def _open_checked(source: str | Path | bytes, max_pixels: int, min_side: int) -> tuple[Image.Image, str]:
    """Open and check the header's size; nothing is decoded yet."""
    im, name = _open(source, max_pixels)
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise InputError(
            f"{name} is {w}x{h} pixels ({w * h / 1e6:.0f} MP), over the {max_pixels / 1e6:.0f} MP limit. "
            "Downscale it first (a few megapixels is plenty)."
        )
    if min(w, h) < min_side:
        im.close()
        raise InputError(
            f"{name} is only {w}x{h} pixels. Use a picture at least {min_side} pixels on each side "
            "(512 or more gives good results)."
        )
    return im, name


def _decode(im: Image.Image, name: str) -> Image.Image:
    """Decode the first frame and apply EXIF orientation, mapping failures to ``InputError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.seek(0)  # first frame of animations and multi-page files
            im.load()
            return ImageOps.exif_transpose(im) or im
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name} is far too large to decode safely. Use a smaller picture.") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"{name} is corrupt or truncated ({exc}). Re-export or re-download it.") from exc


def load_image(source: str | Path | bytes, max_pixels: int = 40_000_000, *, min_side: int = MIN_SIDE) -> np.ndarray:
    """Read a picture from a path or bytes as (H, W, 3) uint8 RGB, safely.

    The size is checked from the header before decoding (decompression bombs), EXIF
    orientation is applied, and any failure raises ``InputError`` with advice.
    """
    return load_image_and_mode(source, max_pixels, min_side=min_side)[0]


def load_image_and_mode(source: str | Path | bytes, max_pixels: int = 40_000_000, *, min_side: int = MIN_SIDE
                        ) -> tuple[np.ndarray, str]:
    """``load_image``, and the Pillow mode the picture was stored in ("P": with a colour palette, GIF-style)."""
    im, name = _open_checked(source, max_pixels, min_side)
    with im:
        return _to_rgb(_decode(im, name)), im.mode


def load_label_map(source: str | Path | bytes, max_pixels: int = 40_000_000) -> np.ndarray | None:
    """Raw values of a grey picture (8 or 16 bit) as (H, W) int64, e.g. an ADE20K annotation PNG.

    Returns None for colour and palette ("P") pictures, whose meaning is their colours:
    read those with ``load_image``. Same safety checks as ``load_image``.
    """
    im, name = _open_checked(source, max_pixels, 1)
    with im:
        if im.mode not in ("L", "I", "I;16", "I;16L", "I;16B"):
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.seek(0)
                im.load()
                return np.asarray(im).astype(np.int64)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InputError(f"{name} is corrupt or truncated ({exc}).") from exc


def fit_geometry(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[int, int, int, int, float, float]:
    """Centre crop (top, left, height, width) of ``src_hw`` with the aspect of ``dst_hw``, and x/y scales.

    A point (x, y) of the source (continuous pixel coordinates) lands at
    ((x - left) * sx, (y - top) * sy) in the fitted picture.
    """
    sh, sw = int(src_hw[0]), int(src_hw[1])
    dh, dw = int(dst_hw[0]), int(dst_hw[1])
    if min(sh, sw, dh, dw) <= 0:
        raise InputError(f"Cannot fit a {sw}x{sh} picture to {dw}x{dh}.")
    if sw * dh > sh * dw:  # source wider than target: crop the sides
        ch, cw = sh, max(1, round(sh * dw / dh))
    else:
        ch, cw = max(1, round(sw * dh / dw)), sw
    top, left = (sh - ch) // 2, (sw - cw) // 2
    return top, left, ch, cw, dw / cw, dh / ch


def fit_points(points: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Map (N, 2+) points (x, y, ...) from a source picture into its ``fit_image`` result."""
    top, left, _, _, sx, sy = fit_geometry(src_hw, dst_hw)
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, 0] = (out[:, 0] - left) * sx
    out[:, 1] = (out[:, 1] - top) * sy
    return out


def fit_image(image: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Centre-crop to the aspect of ``size`` = (H, W), then resize (area down, cubic up).

    ``nearest`` resizes with nearest neighbour instead, for label and index maps.
    """
    top, left, ch, cw, _, _ = fit_geometry(image.shape[:2], size)
    crop = image[top : top + ch, left : left + cw]
    h, w = int(size[0]), int(size[1])
    if (ch, cw) == (h, w):
        return np.ascontiguousarray(crop)
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if ch * cw > h * w else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp)


def oil_paint(picture: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB with OpenCV contrib's oil-paint filter (``size``: its neighbourhood in pixels)."""
    bgr = np.ascontiguousarray(picture[..., ::-1])
    return np.ascontiguousarray(cv2.xphoto.oilPainting(bgr, size, 1)[..., ::-1])


PALETTE_MODES = ("P", "PA")  # Pillow modes of a picture stored with a colour palette (GIF-style)
UNDITHER_SIGMA = 1.0  # px: a dithered copy of grace_hopper.jpg hid its person from MediaPipe's pose; sigma 1 shows it


def undither(picture: np.ndarray) -> np.ndarray:
    """A photo stored with a colour palette (GIF-style, dithered), smoothed so detectors see its shapes, not the
    dither's dots (for finding a subject only: the output never shows these pixels)."""
    return cv2.GaussianBlur(picture, (0, 0), UNDITHER_SIGMA)


_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}


def disc(radius: int) -> np.ndarray:
    """A (2r+1, 2r+1) elliptic structuring element: the disc that masks are grown and shrunk by."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def save_image(path: str | Path, array: np.ndarray) -> None:
    """Write (H, W, 3) RGB or (H, W) grey uint8 to ``path``; the format follows the extension."""
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"Cannot write {path}: use one of {', '.join(sorted(_SAVE_FORMATS))}.")
    if not path.parent.is_dir():
        raise InputError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise InputError(f"save_image expects uint8 pixels, got {arr.dtype}.")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise InputError(f"save_image expects (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}.")
    try:
        Image.fromarray(np.ascontiguousarray(arr)).save(path, format=fmt)
    except OSError as exc:
        raise InputError(f"Cannot write {path}: {exc}.") from exc


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [-1, 1] (same arithmetic as ToTensor + Normalize(0.5, 0.5))."""
    # np.asarray(PIL image) is read-only: torch would warn on sharing it, so such arrays are copied
    t = torch.from_numpy(np.require(image, requirements=("C", "W"))).permute(2, 0, 1).float().div(255)
    return t.sub(0.5).div(0.5).unsqueeze(0)


def from_tensor(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [-1, 1] -> (H, W, 3) uint8."""
    t = tensor.detach().to("cpu", torch.float32)
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"from_tensor takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    arr = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(1, 2, 0).contiguous().numpy()
