"""A small synthetic mask dataset (textured shapes + ADE20K index masks) for smoke runs and tests.

    python -c "from core.train.synthetic import make_mask_dataset; make_mask_dataset('toy', 8)"
    python -m core train --config tiny --task mask --data toy --out runs/toy

Each photo is a few overlapping ellipses and rectangles; each class has its own colour and
texture (stripes at a class-specific angle plus noise), so the correspondence has something
to learn. ``DATA/masks/<name>.png`` holds the grey ADE20K index map the trainer reads.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = (2, 3, 5, 13, 22, 7)  # ADE20K indices: building, sky, tree, person, water, road


def _texture(cls: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = cls * 0.7
    period = 4 + (cls % 5) * 2
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    base = np.array([(cls * 67) % 256, (cls * 131) % 256, (cls * 199) % 256], np.float32)
    pic = base * (0.6 + 0.4 * stripes[..., None]) + rng.normal(0, 8, (h, w, 3))
    return np.clip(pic, 0, 255).astype(np.uint8)


def make_mask_photo(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (H, W, 3) uint8 picture and its (H, W) uint8 ADE20K index map."""
    h, w = size
    index = np.full((h, w), CLASSES[0], np.uint8)
    for _ in range(int(rng.integers(3, 6))):
        cls = int(rng.choice(CLASSES[1:]))
        shape = np.zeros((h, w), np.uint8)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            axes = (int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 8, h // 3)))
            cv2.ellipse(shape, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            dx, dy = int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 8, h // 3))
            cv2.rectangle(shape, (cx - dx, cy - dy), (cx + dx, cy + dy), 1, -1)
        index[shape > 0] = cls
    photo = np.zeros((h, w, 3), np.uint8)
    for cls in np.unique(index):
        region = index == cls
        photo[region] = _texture(int(cls), (h, w), rng)[region]
    return photo, index


def make_mask_dataset(folder: str | Path, count: int = 8, size: tuple[int, int] = (96, 96), seed: int = 0) -> Path:
    """Write ``count`` photos to ``folder/images`` and their index masks to ``folder/masks``."""
    from core.imageio import save_image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        photo, index = make_mask_photo(size, rng)
        save_image(folder / "images" / f"{i:04d}.png", photo)
        save_image(folder / "masks" / f"{i:04d}.png", index)
    return folder
