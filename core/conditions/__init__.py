"""Conditions: the one path from a user's photo, picture or keypoints to the model's input label.

    extract(task, photo, size)               photo -> condition (detects a person / face / mask)
    from_user_condition(task, picture, size) ready skeleton picture / edge sketch / painted mask
    from_keypoints(task, keypoints, size)    pose (18, 3) COCO-18 or face (68, 3) iBUG keypoints

``size`` is (H, W). Every result is a ``Condition`` (label for the model, preview for the
UI, ...). User errors raise ``core.errors.InputError`` / ``NoSubjectError`` with advice.
See docs/conditions.md.
"""

from __future__ import annotations

import numpy as np

from core.conditions import face, masks, pose
from core.conditions.condition import Condition
from core.errors import InputError
from core.imageio import undither
from core.vocabulary import TASKS, UNDITHERED, subject_word, unknown

LABEL_CHANNELS: dict[str, int] = {
    "pose": 20,  # exactly the official DeepFashionHD label: RGB skeleton + 17 limb distances
    "face": face.FACE_CHANNELS,  # 10: all edges + 8 part distances + landmark lines
    "mask": masks.MASK_CHANNELS,  # 151: ADE20K one-hot, channel 0 = unlabeled, 13 = person
}


def _task(task: str) -> str:
    if task not in TASKS:
        raise InputError(unknown("task", task, TASKS))
    return task


def extract(task: str, image: np.ndarray, size: tuple[int, int], palette: bool = False) -> Condition:
    """Photo (H0, W0, 3) uint8 -> condition at ``size`` = (H, W); the photo is fitted with ``fit_image``.
    ``palette``: the photo was stored with a colour palette (GIF-style, dithered; ``load_image_and_mode`` says
    "P"): it is smoothed before its subject is looked for, with a note (a painted mask is told apart first)."""
    task = _task(task)
    if task == "mask":
        return masks.extract(image, size, palette)
    photo = undither(image) if palette else image
    cond = pose.extract(photo, size) if task == "pose" else face.extract(photo, size)
    if palette:
        cond.messages.insert(0, UNDITHERED.format(what=subject_word(task)))
    return cond


def from_user_condition(task: str, image: np.ndarray, size: tuple[int, int]) -> Condition:
    """The user's own condition picture: an OpenPose-coloured skeleton, a face sketch / edge map,
    or a mask painted with the ADE20K palette (a 2-D array is taken as an ADE20K index map)."""
    task = _task(task)
    if task == "pose":
        return pose.from_picture(image, size)
    if task == "face":
        return face.from_sketch(image, size)
    return masks.from_picture(image, size)


def from_keypoints(task: str, keypoints: np.ndarray, size: tuple[int, int],
                   image: np.ndarray | None = None) -> Condition:
    """Keypoints in pixels of ``size`` = (H, W): pose (18, 3) COCO-18 (or BODY_25), face (68, 3) iBUG.

    ``image`` (optional) is the photo they belong to, fitted to ``size`` (face: adds its edges).
    """
    task = _task(task)
    if task == "pose":
        return pose.from_keypoints(keypoints, size, image)
    if task == "face":
        return face.from_keypoints(keypoints, size, image)
    raise InputError("Masks have no keypoints: use extract() on a photo or from_user_condition() on a painted mask.")


__all__ = ["LABEL_CHANNELS", "TASKS", "Condition", "extract", "from_keypoints", "from_user_condition"]
