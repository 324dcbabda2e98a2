"""Engine v2's person layer on the exemplar's backdrop, face task: which of the input's person pixels show the
exemplar's backdrop rather than a fill (beside its outline; what the person holds past the exemplar's frame), and
the matte along the exemplar's own outline (docs/engine.md, "Face: the person where the exemplar does not show
it")."""

from __future__ import annotations

import cv2
import numpy as np

from core.charts.body import HELD_MIN, back_to_the_body, off_body_pieces
from core.conditions.pose import detect_body
from core.errors import NoSubjectError
from core.imageio import disc

# Face: next to the exemplar's person the output's outline is the exemplar's own (its silhouette carried by the
# map), set this far inside the selfie silhouette (x the exemplar's longer side: the model's edge reaches ~3 px past
# a shoulder onto the backdrop at 512) and softened by this much (x the same side), so enlarged with the picture.
MATTE_INSET, MATTE_SOFT = 0.006, 0.002
# Face: the input's person past the exemplar's frame is looked at with the pose model's body segmentation when it
# is this share of the person or more; a piece off that body from HELD_MIN of the person is something held.
HELD_FILL = 0.05


def outline_background(person: np.ndarray, off_person: np.ndarray, past_frame: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pieces of ``off_person`` (input person pixels the map sends onto the exemplar's
    background, inside its frame) that reach the input person's outline. The exemplar shows background
    there, beside its person (a narrower head, no hair hanging down): the output shows it too, rather than
    a patchwork of the exemplar's clothes, skin and collar copied in. Pieces enclosed by the person (a part
    the exemplar hides) or touching ``past_frame`` (the body going on past the exemplar's frame, filled from
    its texture: one body, not a body cut by the backdrop) stay to be filled."""
    if not off_person.any():
        return off_person
    grow = np.ones((3, 3), np.uint8)
    outline = cv2.dilate((~person).astype(np.uint8), grow) > 0
    count, labels = cv2.connectedComponents(off_person.astype(np.uint8), connectivity=8)
    reach = np.setdiff1d(labels[off_person & outline], labels[off_person & (cv2.dilate(past_frame.astype(np.uint8),
                                                                                       grow) > 0)])
    return np.isin(labels, reach[reach > 0])


def held_past_frame(photo: np.ndarray, person: np.ndarray, past_frame: np.ndarray, rim: int) -> np.ndarray:
    """Face: (H, W) bool, what the input's person holds (a helmet) reaching past the exemplar's frame (into
    ``past_frame``, to be filled from its clothing): pieces of the person the pose model's body segmentation
    leaves out, beyond ``rim`` of its body, from HELD_MIN of the person. Asked only when that fill is HELD_FILL of the
    person or more (the pose model costs time), so the exemplar's jacket goes on where a body would be and
    its background shows where the input shows an object."""
    held = np.zeros(person.shape, bool)
    if not past_frame.any() or past_frame.sum() < HELD_FILL * person.sum():
        return held
    try:
        _, body = detect_body(photo, person.shape)
    except NoSubjectError:  # no body for the pose model (a face alone): nothing is taken for held
        return held
    if body is None or not body.any():
        return held
    _, labels, stats = off_body_pieces(person, body, rim)
    big = [k for k in np.unique(labels[past_frame & (labels > 0)])
           if k and stats[k, cv2.CC_STAT_AREA] >= HELD_MIN * person.sum()]
    if not big:
        return held
    return back_to_the_body(np.isin(labels, big), person, body, rim)


def exemplar_outline(alpha: np.ndarray, ex_person: np.ndarray, positions: np.ndarray, mapped: np.ndarray,
                      reach: np.ndarray) -> np.ndarray:
    """Face: the person's matte (H, W) where the map shows the exemplar (``mapped``) within ``reach`` of the
    input's person: the exemplar's own silhouette (MATTE_INSET, MATTE_SOFT) carried over by the map, so a hat
    keeps its crown and brim and its edge is as soft as the picture's, instead of cut along the input's hair;
    ``alpha`` (the input's layer) elsewhere. The caller feathers the whole matte once (no step where the two
    meet)."""
    side = max(ex_person.shape)
    inner = cv2.erode(ex_person.astype(np.uint8), disc(max(1, round(MATTE_INSET * side))))
    matte = cv2.GaussianBlur(inner.astype(np.float32), (0, 0), MATTE_SOFT * side)
    cols, rows = (np.ascontiguousarray(positions[..., k], dtype=np.float32) for k in (1, 0))  # (row, col) -> x, y
    carried = cv2.remap(matte, cols, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.where(mapped & reach, carried, alpha)
