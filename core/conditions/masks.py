"""Segmentation-mask conditions (ADE20K): palette pictures <-> index maps <-> 151-channel one-hot labels.

Index 0 is unlabeled, 1..150 the ADE20K classes (see ``ade20k``). Painted masks are
snapped to the palette: pixels close to a palette colour take it; pixels in between
(anti-aliased brush edges, JPEG noise) take the label of the nearest confidently
coloured pixel, so no stray third class appears along an edge. From a photo, only
person / background can be segmented offline (MediaPipe selfie segmentation).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from core.conditions import detectors
from core.conditions.ade20k import NUM_INDICES, PALETTE, PERSON, UNLABELED, packed
from core.conditions.condition import Condition
from core.conditions.framing import check_photo, check_size
from core.errors import InputError, NoSubjectError
from core.imageio import fit_image, undither
from core.vocabulary import PAINTED_INPUT, UNDITHERED

MASK_CHANNELS = NUM_INDICES  # 151
SNAP_DISTANCE = 10  # RGB distance within which a pixel counts as that palette colour
FLAT_RANGE = 12  # max channel range in a 3x3 patch for a "flat" (not an edge) pixel
MIN_PALETTE_FRACTION = 0.5  # below this share of palette-coloured pixels it is not a painted mask


_COLOUR_TO_INDEX: dict[int, int] = {}
for _i, _colour in enumerate(packed(PALETTE).tolist()):
    _COLOUR_TO_INDEX.setdefault(_colour, _i)  # duplicate colours map to the first index
_TREE = cKDTree(PALETTE.astype(np.float64))
_FIRST_OF_COLOUR = np.array([_COLOUR_TO_INDEX[c] for c in packed(PALETTE).tolist()])


def index_to_palette(index: np.ndarray) -> np.ndarray:
    """(H, W) int index map -> (H, W, 3) uint8 ADE20K palette picture."""
    idx = np.asarray(index)
    if idx.size and (idx.min() < 0 or idx.max() >= NUM_INDICES):
        raise InputError(f"ADE20K indices must be 0..{NUM_INDICES - 1}; got {idx.min()}..{idx.max()}.")
    return PALETTE[idx.astype(np.int64)]


def palette_to_index(picture: np.ndarray, snap: bool = True) -> tuple[np.ndarray, float]:
    """(H, W, 3) palette picture -> (H, W) uint8 index map and the share of pixels near a palette colour.

    Pixels ``read_palette`` does not trust (anti-aliased edges, whose blends can sit near an unrelated
    third colour: palette colours are as close as 7 apart) take the label of the nearest trusted pixel.
    With ``snap`` off, only exact colours are accepted and anything else raises ``InputError``.
    """
    if not snap:
        colours, inverse = np.unique(packed(picture).reshape(-1), return_inverse=True)
        exact = np.array([_COLOUR_TO_INDEX.get(int(c), -1) for c in colours])
        if (exact < 0).any():
            raise InputError(f"{int((exact < 0).sum())} colours in the mask are not ADE20K palette colours.")
        return exact[inverse].reshape(np.shape(picture)[:2]).astype(np.uint8), 1.0
    index, sure, close = read_palette(picture)
    if sure.any() and not sure.all():
        _, (iy, ix) = ndimage.distance_transform_edt(~sure, return_indices=True)
        index = index[iy, ix]
    return index.astype(np.uint8), float(close.mean()) if close.size else 0.0


def read_palette(picture: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) picture -> each pixel's nearest palette index (H, W), whether it is trusted (exactly a
    palette colour, or close to one, ``SNAP_DISTANCE``, inside a flat 3x3 patch) and whether it is close."""
    rgb8 = np.ascontiguousarray(np.asarray(picture)[..., :3], dtype=np.uint8)
    colours, inverse = np.unique(packed(rgb8).reshape(-1), return_inverse=True)
    inverse = inverse.reshape(rgb8.shape[:2])
    exact = np.array([_COLOUR_TO_INDEX.get(int(c), -1) for c in colours])
    cols = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1).astype(np.float64)
    distance, nearest = _TREE.query(cols)
    nearest = np.where(exact >= 0, exact, _FIRST_OF_COLOUR[nearest])
    close = (distance <= SNAP_DISTANCE)[inverse]
    kernel = np.ones((3, 3), np.uint8)
    flat = (cv2.dilate(rgb8, kernel) - cv2.erode(rgb8, kernel)).max(axis=2) <= FLAT_RANGE
    return nearest[inverse], (exact >= 0)[inverse] | (close & flat), close


# Measured (docs/app.md, R's section): photos 0-45 % close to a palette colour and 0-38 % trusted (the skeleton and
# sketch conditions 96 %, but one region); painted masks 86-100 % close and 73-100 % trusted, resized and saved as
# JPEG (quality 60) included.
PAINTED_SHARE = 0.8  # pixels close to a palette colour
FLAT_SHARE = 0.6  # pixels trusted (exact, or close inside a flat patch): no photo-like texture
REGION_SHARE = 0.01  # a class counts as a painted region from this share of the picture
MASK_COLOUR_SHARE = 0.1  # of the labelled pixels: painted masks 0.65-1, flat graphics in plain colours 0-0.05


def _plain_colour(rgb: np.ndarray) -> bool:
    """A colour a graphic is likely to use as it is: a grey, or every channel a web-safe step (0, 51, ..., 255;
    pure red, blue, yellow...). Some ADE20K classes have such colours; the others are telling."""
    return len(set(rgb.tolist())) == 1 or all(c % 51 == 0 for c in rgb.tolist())


_MASK_COLOURS = np.array([not _plain_colour(c) for c in PALETTE])  # (151,) bool: colours of painted masks only


def looks_painted(picture: np.ndarray) -> bool:
    """True for a painted ADE20K mask, also resized or saved as JPEG: nearly every pixel reads as a palette colour
    (as ``core.conditions.masks`` reads them), two regions at least (a plain black picture is no mask), and at
    least a tenth of the labelled area in colours no flat graphic uses by chance. A logo, poster or cartoon in
    black, pure red, blue and yellow (ADE20K colours too) is not a mask. The mask task reads a painted mask as
    such even when it was given as a photo: segmenting a person out of flat colours is never what was meant."""
    rgb = np.asarray(picture)[..., :3]

    def sample(pixels: int) -> np.ndarray:  # every n-th row and column: flat areas survive it
        step = max(1, int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / pixels))))
        return rgb[::step, ::step]

    if read_palette(sample(10_000))[2].mean() < PAINTED_SHARE - 0.1:  # a photo, told in a few ms (0-45 % close)
        return False
    index, trusted, close = read_palette(sample(100_000))
    counts = np.bincount(index[close], minlength=len(PALETTE))
    regions = counts >= REGION_SHARE * close.size
    labelled = counts[UNLABELED + 1:].sum()
    telling = counts[regions & _MASK_COLOURS].sum()
    return (close.mean() >= PAINTED_SHARE and trusted.mean() >= FLAT_SHARE and regions.sum() >= 2
            and telling >= MASK_COLOUR_SHARE * max(1, labelled))


def index_to_onehot(index: np.ndarray) -> torch.Tensor:
    """(H, W) index map -> (151, H, W) float32 one-hot label (channel k = ADE20K index k)."""
    idx = torch.from_numpy(np.asarray(index).astype(np.int64))
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= NUM_INDICES):
        raise InputError(f"ADE20K indices must be 0..{NUM_INDICES - 1}.")
    label = torch.zeros((NUM_INDICES, *idx.shape), dtype=torch.float32)
    label.scatter_(0, idx[None], 1.0)
    return label


def onehot_to_index(label: torch.Tensor) -> np.ndarray:
    """(151, H, W) label (one-hot or scores) -> (H, W) uint8 index map."""
    return label.argmax(dim=0).to(torch.uint8).cpu().numpy()


def looks_like_index_map(picture: np.ndarray) -> bool:
    """True for an ADE20K annotation PNG read as RGB: grey (R = G = B), values <= 150, not palette greys."""
    rgb = np.asarray(picture)
    if rgb.ndim == 2:
        return True
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        return False
    values = np.unique(rgb[..., 0])
    palette_greys = {int(c[0]) for c in PALETTE if c[0] == c[1] == c[2]}
    return int(values.max()) < NUM_INDICES and not set(values.tolist()) <= palette_greys


def from_index(index: np.ndarray, size: tuple[int, int], image: np.ndarray | None = None,
               messages: list[str] | None = None) -> Condition:
    """An index map (any size; resized with nearest neighbour) -> mask condition at ``size``."""
    size = check_size(size)
    idx = np.asarray(index)
    if idx.ndim != 2:
        raise InputError(f"An index map must be 2-D (H, W); got shape {idx.shape}.")
    if idx.size and (idx.min() < 0 or idx.max() >= NUM_INDICES):
        raise InputError(f"This mask has values up to {idx.max()}: ADE20K indices are 0..{NUM_INDICES - 1} "
                         "(0 = unlabeled). Paint it with the ADE20K palette instead.")
    idx = fit_image(idx.astype(np.uint8), size, nearest=True)
    label = index_to_onehot(idx)
    photo = fit_image(check_photo(image, "scene"), size) if image is not None else None
    return Condition(task="mask", label=label, preview=index_to_palette(idx), image=photo, keypoints=None,
                     subject_mask=idx != UNLABELED, parts=label.numpy(), messages=list(messages or []))


def from_picture(picture: np.ndarray, size: tuple[int, int]) -> Condition:
    """A painted ADE20K-palette mask (or an annotation index PNG) -> mask condition."""
    arr = np.asarray(picture)
    if arr.dtype != np.uint8 and arr.ndim == 3:
        raise InputError("A painted mask must be an 8-bit RGB picture.")
    if looks_like_index_map(arr):
        index = arr if arr.ndim == 2 else arr[..., 0]
        return from_index(index, size, messages=["Read as an ADE20K index map (grey values = class indices)."])
    index, fraction = palette_to_index(arr)
    if fraction < MIN_PALETTE_FRACTION:
        raise InputError(f"Only {fraction:.0%} of this picture uses ADE20K palette colours: it does not look "
                         "like a painted mask. Paint regions with the ADE20K colours$palette_help"
                         "$or_extract_from_photo.")
    messages = [] if fraction > 0.99 else [f"{1 - fraction:.1%} of the pixels were between palette colours "
                                           "and were snapped to their neighbours."]
    return from_index(index, size, messages=messages)


def extract(image: np.ndarray, size: tuple[int, int], palette: bool = False) -> Condition:
    """Photo -> person / unlabeled mask (MediaPipe selfie segmentation; the person is ADE20K index 13). A painted
    mask given as the photo is read as the painted mask it is, with a note: segmenting a person out of flat
    colours is never what was meant. This is the one place that decides it, on the picture as given; only then
    is a photo stored with a colour palette (``palette``, dithered) smoothed for the segmentation, with a note."""
    size = check_size(size)
    if looks_painted(image):
        cond = from_picture(image, size)
        cond.messages.insert(0, PAINTED_INPUT)
        return cond
    notes = [UNDITHERED.format(what="person")] if palette else []
    photo = check_photo(image, "person")
    photo = fit_image(undither(photo) if palette else photo, size)
    person = detectors.person_mask(photo)
    if person.mean() < 0.002:
        raise NoSubjectError("No person found to segment. Offline, only people can be segmented from a photo; "
                             "paint the mask with the ADE20K palette$give_as_condition.")
    person = cv2.morphologyEx(person.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    index = np.where(person, PERSON, UNLABELED).astype(np.uint8)
    cond = from_index(index, size, messages=[*notes, "Only person / background is segmented automatically; "
                                                       "paint the other regions with the ADE20K palette."])
    cond.image = photo
    return cond
