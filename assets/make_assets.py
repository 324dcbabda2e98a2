"""Rebuild the example pictures in assets/ from files that ship inside installed packages.

Run from the repository root:  ``.venv/bin/python assets/make_assets.py``
Nothing is downloaded: every photo is copied from matplotlib or scikit-image (public domain /
CC0, see assets/README.md), and the oil-paint exemplars are made from them with OpenCV
contrib's ``cv2.xphoto.oilPainting``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import skimage
from PIL import Image

HERE = Path(__file__).resolve().parent
MPL_DATA = Path(matplotlib.get_data_path()) / "sample_data"
SKIMAGE_DATA = Path(skimage.__file__).resolve().parent / "data"

OIL_SIZE = 4  # neighbourhood of the oil-paint filter (pixels at 512)
OIL_DYN_RATIO = 1  # colour quantisation of the filter (1 = finest)


def oil_paint(rgb: np.ndarray, size: int = OIL_SIZE, dyn_ratio: int = OIL_DYN_RATIO) -> np.ndarray:
    """An oil-paint look made with OpenCV contrib's xphoto.oilPainting (RGB in, RGB out)."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    return np.ascontiguousarray(cv2.xphoto.oilPainting(bgr, size, dyn_ratio)[..., ::-1])


def main() -> None:
    shutil.copyfile(MPL_DATA / "grace_hopper.jpg", HERE / "grace_hopper.jpg")
    shutil.copyfile(SKIMAGE_DATA / "camera.png", HERE / "cameraman.png")
    astronaut = np.asarray(Image.open(SKIMAGE_DATA / "astronaut.png").convert("RGB"))
    Image.fromarray(astronaut).save(HERE / "astronaut.jpg", quality=95)  # re-encoded: 0.8 MB PNG -> JPEG
    for name in ("grace_hopper", "astronaut"):
        photo = np.asarray(Image.open(HERE / f"{name}.jpg").convert("RGB"))
        Image.fromarray(oil_paint(photo)).save(HERE / f"oil_{name}.jpg", quality=92)
    print("wrote", ", ".join(sorted(p.name for p in HERE.iterdir() if p.suffix in (".jpg", ".png"))))


if __name__ == "__main__":
    main()
