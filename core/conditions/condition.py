"""The one object every extractor returns: the model's label plus what the UI and evaluation need."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from core.utils.deferred import deferred_field, raw


@dataclass
class Condition:
    """A condition (pose / face edges / mask) at one size (H, W).

    ``label`` is what the model consumes; ``preview`` is a picture of it for people.
    ``parts`` are soft per-part maps in [0, 1] (1 on the part, falling to 0 far away,
    all 0 for a part that is missing), used by the training-free matcher.
    Either may be given as a ``Deferred``: it is computed when first read, then kept.
    """

    task: str
    label: torch.Tensor  # (C, H, W) float32 (may be given as a core.utils.deferred.Deferred)
    preview: np.ndarray  # (H, W, 3) uint8 RGB
    image: np.ndarray | None = None  # (H, W, 3) uint8: the photo it came from, fitted to (H, W)
    keypoints: np.ndarray | None = None  # pose (18, 3) / face (68, 3): x, y, confidence (0 = missing)
    subject_mask: np.ndarray | None = None  # (H, W) bool
    body_mask: np.ndarray | None = None  # pose from a photo: (H, W) bool, the pose model's own segmentation of
    # the body (unlike ``subject_mask``, the selfie one, it leaves out what the person holds); None: not made
    hands: np.ndarray | None = None  # pose from a photo: (2, 21, 3) MediaPipe hand points, subject's right
    # then left, x, y in pixels and confidence (0 = that hand not found); None when no hand was found
    parts: np.ndarray | None = None  # (P, H, W) float32 in [0, 1]
    mesh: np.ndarray | None = None  # face: (478, 3) FaceMesh points with irises, x, y, z in pixels (smaller z = nearer)
    photo: np.ndarray | None = None  # the ORIGINAL photo (any size) ``image`` was fitted from, for full-resolution
    # sampling; ``core.imageio.fit_geometry(photo.shape[:2], size)`` relates the two
    messages: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        shape = raw(self, "label").shape  # a Deferred label's too, without computing it
        return int(shape[1]), int(shape[2])


# Set after the dataclass is made: its __init__ assigns through them (defaults stay in its signature).
deferred_field(Condition, "label")
deferred_field(Condition, "parts")
