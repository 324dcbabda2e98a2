"""Pseudo-exemplar labels re-drawn from transformed keypoints, as the extractor would draw them.

Warping a pose or face label with the augmentation's grid scales its limb widths and distance
values with the zoom and the elastic warp, so training would see conditions that the extractor
never produces at test time. Instead the keypoints of x are moved to where T(x) shows them (the
pair's inverse grid) and the label is drawn again at the same size. A joint keeps its name when
T mirrors the picture: the warp and correspondence losses say x's right wrist matches the pixel
of T(x) that shows that same wrist, so the labels must call both the same (swapping the names,
as a detector would on a mirrored photo, would teach right-to-left matches on half the flips).
Masks have no keypoints: they are warped with nearest sampling (``TrainingSet.label_mode``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.augment import PseudoPair, apply_grid


def transform_keypoints(keypoints: np.ndarray, pair: PseudoPair, index: int = 0) -> np.ndarray:
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
    return out


def redraw_label(task: str, keypoints: np.ndarray, pair: PseudoPair, index: int = 0,
                 region: np.ndarray | None = None) -> torch.Tensor:
    """The (C, H, W) label of T(x) drawn from x's keypoints moved by T. Face: ``region`` (H, W) is
    x's face region (its photo edges inside are left out), and T(x)'s photo gives the outer edges."""
    from core.conditions.face import render_face
    from core.conditions.skeleton import render_pose

    size = tuple(pair.image.shape[-2:])
    kp = transform_keypoints(keypoints, pair, index)
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
