"""The evaluation pairs' pictures (core/eval_pairs.py): the zoomed-out variant is a wider shot with real
texture around the photo and no second person; the blurred first version stays as a named variant."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.conditions import detectors
from core.conditions.face_detect import _boxes
from core.eval_pairs import DEGENERATE, ZOOM_OUT, _shrunk, cross_pairs, picture


def _surround(picture_: np.ndarray, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) bool: the zoomed-out frame's surround and the shrunk photo's place, each 4 px off the seam."""
    h, w = picture_.shape[:2]
    small, top, left = _shrunk(photo, ZOOM_OUT)
    inside = np.zeros((h, w), np.uint8)
    inside[top:, left:left + small.shape[1]] = 1
    kernel = np.ones((9, 9), np.uint8)
    return cv2.erode(1 - inside, kernel) > 0, cv2.erode(inside, kernel) > 0


def _detail(image: np.ndarray, where: np.ndarray) -> float:
    """Mean high-frequency energy (|grey - its Gaussian blur, sigma 1.5|, 0-255) over ``where``."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.5))[where].mean())


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "cameraman"])
def test_zoomed_out_is_a_textured_wider_shot_with_one_person(name):
    """Selfie segmentation finds no person in the surround (a reflected border puts 2-32 % there) and the face
    detector one face; the surround's fine detail is at least half the photo's own background's (the blurred
    first version: 3-6 %)."""
    photo = picture(name)
    wide, blurred = picture(f"{name}/zoomed-out"), picture(f"{name}/zoomed-out-blur")
    assert wide.shape == blurred.shape == photo.shape
    surround, inside = _surround(wide, photo)
    person = detectors.run("selfie", wide).segmentation_mask > 0.5
    assert person[surround].mean() < 0.01, person[surround].mean()
    assert person[inside].mean() > 0.1  # the photo's own person is there
    assert len(_boxes(wide)) == 1
    background = inside & ~person
    detail = {"surround": _detail(wide, surround), "blurred surround": _detail(blurred, surround),
              "background": _detail(wide, background)}
    assert detail["surround"] > 0.2 * detail["background"], detail
    assert detail["surround"] > 6 * detail["blurred surround"], detail
    # the same shrunk photo in the same place (the blurred one's seam blends a few pixels further in)
    assert np.abs(wide[inside].astype(int) - blurred[inside]).max() <= 2


def test_pictures_are_made_once_and_callers_get_their_own_copy():
    first = picture("grace_hopper/zoomed-out")
    first[:] = 0
    assert picture("grace_hopper/zoomed-out").any()


def test_pairs_with_a_degenerate_exemplar_are_flagged():
    """The blurred variant's pairs are measured but flagged (eval-warp reports them outside the summaries)."""
    flagged = {task: [p.name for p in cross_pairs(task) if p.degenerate_exemplar] for task in ("face", "mask")}
    assert flagged == {"face": ["astronaut/close-up -> grace_hopper/zoomed-out-blur"],
                       "mask": ["cameraman -> astronaut/zoomed-out-blur"]}
    assert DEGENERATE == ("zoomed-out-blur",)
