"""Pseudo-exemplar labels re-drawn from transformed keypoints, as the extractor would draw them.

Warping a pose or face label with the augmentation's grid scales its limb widths and distance
values with the zoom and the elastic warp, so training would see conditions that the extractor
never produces at test time. Instead the keypoints of x are moved to where T(x) shows them (the
pair's inverse grid), left and right swap names when T mirrors the picture (a detector names
a mirrored person's parts by how they look), and the label is drawn again at the same size.
Masks have no keypoints: they are warped with nearest sampling (``TrainingSet.label_mode``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.augment import PseudoPair, apply_grid

# COCO-18: each joint's mirror-image partner (nose and neck are their own)
COCO18_MIRROR = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)
# iBUG-68: jaw reversed, brows / eyes / nostrils / lip corners swapped (core.conditions.ibug68's order)
IBUG68_MIRROR = (
    tuple(range(16, -1, -1)) + tuple(range(26, 16, -1)) + (27, 28, 29, 30) + (35, 34, 33, 32, 31)
    + (45, 44, 43, 42, 47, 46) + (39, 38, 37, 36, 41, 40)
    + (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55) + (64, 63, 62, 61, 60, 67, 66, 65))
MIRROR = {"pose": COCO18_MIRROR, "face": IBUG68_MIRROR}


def transform_keypoints(keypoints: np.ndarray, pair: PseudoPair, index: int = 0, mirror=None) -> np.ndarray:
    """(N, 3) x, y, confidence in x's pixels -> the same points in T(x)'s pixels. A point that T(x)
    does not show (cropped out, or outside x) becomes missing (all 0), as the extractor drops it."""
    kp = np.asarray(keypoints, dtype=np.float64)
    h, w = pair.inverse.shape[1:3]
    out = np.zeros_like(kp)
    present = kp[:, 2] > 0
    inside = present & (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
    if inside.any():
        at = torch.from_numpy(kp[inside, :2]).float()
        norm = (at + 0.5) / torch.tensor([w, h]) * 2 - 1  # pixel -> grid_sample units (align_corners=False)
        where = norm.view(1, 1, -1, 2)
        inverse = pair.inverse[index:index + 1].permute(0, 3, 1, 2).float()  # (1, 2, H, W)
        moved = F.grid_sample(inverse, where, mode="bilinear", align_corners=False)[0, :, 0].T  # (n, 2)
        seen = F.grid_sample(pair.visible[index:index + 1].float(), where, mode="nearest",
                             align_corners=False)[0, 0, 0] > 0.5
        pixels = ((moved + 1) / 2 * torch.tensor([w, h]) - 0.5).double().numpy()
        rows = np.flatnonzero(inside)
        out[rows, :2] = pixels
        out[rows, 2] = kp[rows, 2]
        out[rows[~seen.numpy()]] = 0.0
    if mirror is not None and bool(pair.mirrored[index]):
        out = out[list(mirror)]
    return out


def redraw_label(task: str, keypoints: np.ndarray, pair: PseudoPair, index: int = 0,
                 region: np.ndarray | None = None) -> torch.Tensor:
    """The (C, H, W) label of T(x) drawn from x's keypoints moved by T. Face: ``region`` (H, W) is
    x's face region (its photo edges inside are left out), and T(x)'s photo gives the outer edges."""
    from core.conditions.face import render_face
    from core.conditions.skeleton import render_pose

    size = tuple(pair.image.shape[-2:])
    kp = transform_keypoints(keypoints, pair, index, MIRROR[task])
    if task == "pose":
        return render_pose(kp, size)[0]
    if task == "face":
        photo = ((pair.image[index].permute(1, 2, 0).float() + 1) * 127.5).round().clamp(0, 255)
        outline = None
        if region is not None:  # T(x)'s face region: x's, moved by the same grid (nearest)
            moved = apply_grid(torch.from_numpy(np.asarray(region, np.float32))[None, None],
                               pair.grid[index:index + 1], mode="nearest")[0, 0] > 0.5
            points = np.argwhere(moved.numpy())[:, ::-1]
            outline = points if len(points) >= 3 else None
        return render_face(kp, size, photo.to(torch.uint8).numpy(), outline)[0]
    raise ValueError(f"{task} labels have no keypoints to redraw")
