"""ADE20K masks: the class table, palette <-> index <-> one-hot round trips, painted masks, photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from core.conditions import LABEL_CHANNELS, ade20k, extract, from_user_condition, masks
from core.errors import InputError, NoSubjectError
from core.imageio import load_label_map


def blocks(seed: int = 0, cells: int = 8, cell: int = 32) -> np.ndarray:
    """A random ADE20K index map of square cells (road, not skyscraper, for the shared grey)."""
    idx = np.kron(np.random.default_rng(seed).integers(1, 151, (cells, cells)), np.ones((cell, cell), int))
    idx[idx == ade20k.class_index("skyscraper")] = ade20k.class_index("road")
    return idx.astype(np.uint8)


def test_class_table():
    assert len(ade20k.NAMES) == ade20k.NUM_INDICES == LABEL_CHANNELS["mask"] == 151
    assert ade20k.NAMES[0] == "unlabeled" and ade20k.PALETTE[0].tolist() == [0, 0, 0]
    assert ade20k.PERSON == 13 == ade20k.class_index("Person")
    assert ade20k.PALETTE[13].tolist() == [150, 5, 61] and ade20k.PALETTE[1].tolist() == [120, 120, 120]
    assert ade20k.NAMES[150] == "flag" and ade20k.PALETTE.shape == (151, 3)


def test_palette_index_round_trip_every_class():
    index = np.arange(151, dtype=np.uint8).reshape(1, 151).repeat(3, axis=0)
    back, fraction = masks.palette_to_index(masks.index_to_palette(index), snap=False)
    expected = index.copy()
    expected[expected == 49] = 7  # skyscraper shares road's colour in the standard palette
    np.testing.assert_array_equal(back, expected)
    assert fraction == 1.0
    idx = blocks()
    np.testing.assert_array_equal(masks.palette_to_index(masks.index_to_palette(idx))[0], idx)


def test_onehot_round_trip():
    idx = blocks(1)
    label = masks.index_to_onehot(idx)
    assert label.shape == (151, 256, 256) and label.dtype == torch.float32
    assert torch.equal(label.sum(0), torch.ones(256, 256))
    np.testing.assert_array_equal(masks.onehot_to_index(label), idx)


@pytest.mark.parametrize("damage", ["antialiased", "jpeg"])
def test_painted_mask_snaps_without_stray_classes(damage):
    idx = blocks(2)
    picture = masks.index_to_palette(idx)
    if damage == "antialiased":
        picture = cv2.GaussianBlur(picture.astype(np.float32), (5, 5), 1.2).round().astype(np.uint8)
    else:
        ok, buf = cv2.imencode(".jpg", picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        picture = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    back, _ = masks.palette_to_index(picture)
    near = np.zeros_like(back, dtype=bool)  # a label is fine if that class is within 3 pixels
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            near |= back == np.roll(idx, (dy, dx), axis=(0, 1))
    assert (back == idx).mean() > 0.97 and (~near).mean() < 0.01


def test_user_mask_picture_and_index_map():
    idx = blocks(3)
    cond = from_user_condition("mask", masks.index_to_palette(idx), (128, 128))
    assert cond.task == "mask" and cond.label.shape == (151, 128, 128)
    assert set(np.unique(masks.onehot_to_index(cond.label))) <= set(np.unique(idx))
    assert cond.preview.shape == (128, 128, 3) and cond.parts.shape == (151, 128, 128)
    # An ADE20K annotation PNG: as a 2-D array, or read as grey RGB.
    for given in (idx, np.repeat(idx[..., None], 3, axis=2)):
        c = from_user_condition("mask", given, (256, 256))
        np.testing.assert_array_equal(masks.onehot_to_index(c.label), idx)
    with pytest.raises(InputError, match="0..150"):
        from_user_condition("mask", np.full((64, 64), 200, np.uint8), (64, 64))


def test_annotation_png_file_round_trip(tmp_path):
    idx = blocks(4)
    path = tmp_path / "ADE_val_x.png"
    Image.fromarray(idx, "L").save(path)
    cond = from_user_condition("mask", load_label_map(path), (256, 256))
    np.testing.assert_array_equal(masks.onehot_to_index(cond.label), idx)
    assert cond.subject_mask.all()  # every pixel labelled


def test_photo_is_not_a_painted_mask():
    import skimage.data

    with pytest.raises(InputError, match="does not look like a painted mask"):
        from_user_condition("mask", skimage.data.coffee(), (256, 256))


def test_person_mask_from_photo():
    import skimage.data

    cond = extract("mask", skimage.data.astronaut(), (256, 256))
    index = masks.onehot_to_index(cond.label)
    assert set(np.unique(index)) == {0, 13}
    assert 0.2 < (index == 13).mean() < 0.9
    assert index[100, 110] == 13  # the astronaut's face
    np.testing.assert_array_equal(cond.subject_mask, index == 13)
    assert cond.image.shape == (256, 256, 3)


def test_a_painted_mask_given_as_a_photo_is_read_as_one():
    """`extract` (the CLI's extract, the translator's input) reads a painted mask as the mask it is, with a note,
    rather than segmenting a person out of flat colours (the cameraman's silhouette had no person at all)."""
    from pathlib import Path

    from core.imageio import load_image

    painted = load_image(Path(__file__).parent.parent / "assets" / "mask_cameraman.png")
    cond = extract("mask", painted, (256, 256))
    ready = from_user_condition("mask", painted, (256, 256))
    np.testing.assert_array_equal(masks.onehot_to_index(cond.label), masks.onehot_to_index(ready.label))
    assert cond.messages[0].startswith("This picture is painted in ADE20K colours, so it was read as a painted mask")


def test_painted_or_photo_is_decided_before_a_palette_photo_is_smoothed():
    """A palette-stored (GIF-style) input is smoothed before its person is looked for, but only once it is known to
    be a photo: a painted mask stored with a palette reads exactly as its RGB copy, and a dithered grey photo's
    person is segmented as from the photo itself (IoU 0.79 without the smoothing, 0.98 with it)."""
    import io
    from pathlib import Path

    from PIL import Image

    from core.imageio import load_image

    painted = load_image(Path(__file__).parent.parent / "assets" / "mask_cameraman.png")
    stored = io.BytesIO()
    Image.fromarray(painted).quantize(colors=64, dither=Image.Dither.NONE).save(stored, "PNG")
    from_palette = extract("mask", np.asarray(Image.open(stored).convert("RGB")), (256, 256), palette=True)
    ready = from_user_condition("mask", painted, (256, 256))
    np.testing.assert_array_equal(masks.onehot_to_index(from_palette.label), masks.onehot_to_index(ready.label))
    assert not any("palette" in m for m in from_palette.messages)

    import skimage.data

    grey = np.dstack([skimage.data.camera()] * 3)
    stored = io.BytesIO()
    Image.fromarray(grey).convert("P").save(stored, "PNG")  # Pillow's default: the web palette, dithered
    dithered = np.asarray(Image.open(stored).convert("RGB"))
    truth = extract("mask", grey, (512, 512)).subject_mask  # at its own size: nothing averages the dither out
    smoothed = extract("mask", dithered, (512, 512), palette=True)
    assert smoothed.messages[0].startswith("This picture is stored with a colour palette")

    def iou(cond):
        return (cond.subject_mask & truth).sum() / (cond.subject_mask | truth).sum()

    assert iou(smoothed) > 0.95 > iou(extract("mask", dithered, (512, 512)))


def test_no_person_for_mask():
    y, x = np.mgrid[0:256, 0:256]
    with pytest.raises(NoSubjectError, match="No person"):
        extract("mask", np.stack([x, y, 255 - y], axis=-1).astype(np.uint8), (256, 256))
