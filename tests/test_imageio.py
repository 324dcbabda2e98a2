"""core.imageio: every kind of picture people upload, good and bad, and the fit / tensor helpers."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import InputError
from core.imageio import (
    fit_image,
    fit_points,
    from_tensor,
    load_image,
    load_label_map,
    save_image,
    to_tensor,
)


def _png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_rgb_from_path_and_bytes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for source in (path, str(path), path.read_bytes()):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
        np.testing.assert_array_equal(out, rgb)


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=95)
    out = load_image(buf.getvalue())
    assert out.shape == (40, 20, 3)  # portrait after rotation
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60  # the red half is now on top
    assert out[35, 10, 2] > 200


def test_rgba_and_la_composite_on_white():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :8, 3] = 0  # transparent left half
    rgba[:, 8:, 3] = 255
    out = load_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 12].tolist() == [255, 0, 0]
    la = Image.fromarray(np.stack([np.zeros((16, 16), np.uint8), np.full((16, 16), 128, np.uint8)], -1), "LA")
    out = load_image(_png_bytes(la))
    assert abs(int(out[0, 0, 0]) - 127) <= 1  # black at half alpha over white


def test_palette_with_transparency_and_bilevel():
    p = Image.new("P", (16, 16), 0)
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.paste(1, (8, 0, 16, 16))
    out = load_image(_png_bytes(p, transparency=0))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 12].tolist() == [0, 255, 0]
    bilevel = Image.new("1", (16, 16), 1)
    assert load_image(_png_bytes(bilevel))[0, 0].tolist() == [255, 255, 255]


def test_sixteen_bit_grey_is_scaled():
    values = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    out = load_image(_png_bytes(Image.fromarray(values)))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert abs(int(out[16, 0, 0]) - 128) <= 2
    rgb16 = np.zeros((16, 16, 3), np.uint16)
    rgb16[..., 2], rgb16[..., 1] = 65535, 32768  # OpenCV writes BGR: red full, green half
    ok, buf = cv2.imencode(".png", rgb16)
    assert load_image(buf.tobytes())[0, 0].tolist() == [255, 128, 0]


def test_float_and_grey_and_cmyk():
    f = Image.fromarray(np.full((16, 16), 0.5, np.float32), "F")
    buf = io.BytesIO()
    f.save(buf, format="TIFF")
    assert abs(int(load_image(buf.getvalue())[0, 0, 0]) - 128) <= 1
    grey = load_image(_png_bytes(Image.new("L", (16, 16), 77)))
    assert grey.shape == (16, 16, 3) and grey[0, 0].tolist() == [77, 77, 77]
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG", quality=95)
    out = load_image(buf.getvalue())
    assert out.shape == (16, 16, 3) and out[8, 8, 0] > 200 and out[8, 8, 1] < 60


@pytest.mark.parametrize("data, words", [
    (b"this is a text file, not a picture\n", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),
    (b"", "empty"),
])
def test_non_images_are_refused(data, words):
    with pytest.raises(InputError, match=words):
        load_image(data)


def test_truncated_image_is_refused():
    data = _png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_text_file_missing_file_and_folder(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an image"):
        load_image(text)
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_or_device_is_not_a_picture(tmp_path):
    """Neither is read (a pipe would block for ever) nor called empty: the message says what it is."""
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    for path in (pipe, Path("/dev/zero")):
        with pytest.raises(InputError, match="not a regular file"):
            load_image(path)


def test_tiny_image_is_refused():
    with pytest.raises(InputError, match="only 1x1"):
        load_image(_png_bytes(Image.new("RGB", (1, 1))))


def test_pixel_limit_checked_before_decoding():
    # 8000 x 6000 = 48 MP over the default 40 MP limit; the data is bogus, so a decode would fail
    # with "corrupt": the pixel-limit message proves we refused from the header alone.
    with pytest.raises(InputError, match="over the 40 MP limit"):
        load_image(_png_header_only(8000, 6000))
    # A header claiming 100000 x 100000 (a classic bomb, which Pillow itself refuses to open) is refused
    # in the same words, without Pillow's own text ("could be decompression bomb DOS attack").
    with pytest.raises(InputError, match="over the 40 MP limit. Downscale it first") as refused:
        load_image(_png_header_only(100_000, 100_000))
    assert "DOS" not in str(refused.value) and "178956970" not in str(refused.value)
    with pytest.raises(InputError, match="limit"):
        load_image(_png_bytes(Image.new("RGB", (64, 64))), max_pixels=1000)


def test_label_map_reads_raw_grey_values(tmp_path):
    index = (np.arange(40 * 40).reshape(40, 40) % 151).astype(np.uint8)
    path = tmp_path / "ade.png"
    Image.fromarray(index, "L").save(path)
    np.testing.assert_array_equal(load_label_map(path), index)
    Image.new("RGB", (8, 8)).save(tmp_path / "rgb.png")
    assert load_label_map(tmp_path / "rgb.png") is None


def test_fit_image_crops_to_aspect_and_points_follow():
    image = np.zeros((300, 600, 3), np.uint8)
    image[140:160, 340:360] = 255  # a dot centred at (350, 150) (continuous coordinates)
    out = fit_image(image, (128, 128))
    assert out.shape == (128, 128, 3)
    x, y = fit_points(np.array([[350.0, 150.0]]), image.shape[:2], (128, 128))[0]
    ys, xs = np.nonzero(out[..., 0] > 100)
    assert abs(xs.mean() + 0.5 - x) < 0.5 and abs(ys.mean() + 0.5 - y) < 0.5
    up = fit_image(np.zeros((40, 30, 3), np.uint8), (100, 200))
    assert up.shape == (100, 200, 3)
    labels = (np.arange(64 * 64).reshape(64, 64) % 7).astype(np.uint8)
    assert set(np.unique(fit_image(labels, (100, 50), nearest=True))) <= set(range(7))


def test_save_image_round_trip_and_errors(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    save_image(tmp_path / "x.png", rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "x.png"), rgb)
    with pytest.raises(InputError, match="does not exist"):
        save_image(tmp_path / "missing" / "x.png", rgb)
    with pytest.raises(InputError, match="use one of"):
        save_image(tmp_path / "x.xyz", rgb)


def test_tensor_round_trip_matches_official_normalisation():
    rgb = np.random.default_rng(3).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    t = to_tensor(rgb)
    assert t.shape == (1, 3, 8, 9) and t.dtype == torch.float32
    expected = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    assert torch.equal(t[0], expected)
    np.testing.assert_array_equal(from_tensor(t), rgb)
    np.testing.assert_array_equal(from_tensor(t[0]), rgb)


def test_to_tensor_takes_read_only_arrays_without_a_warning():
    """np.asarray of a PIL image is read-only; torch warns (once per process, so a fresh one) on sharing it."""
    import subprocess
    import sys

    code = ("import warnings, numpy as np; from core.imageio import to_tensor; "
            "a = np.zeros((4, 4, 3), np.uint8); a.flags.writeable = False; warnings.simplefilter('error'); "
            "t = to_tensor(a); assert t.shape == (1, 3, 4, 4) and float(t.min()) == -1.0")
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(root))
    assert run.returncode == 0, run.stderr[-500:]
