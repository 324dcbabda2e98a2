"""Rebuild the example pictures in assets/ from files that ship inside installed packages.

Run from the repository root:  ``.venv/bin/python assets/make_assets.py``
Nothing is downloaded: every photo is copied from matplotlib or scikit-image (public domain /
CC0, see assets/README.md), and the oil-paint exemplars are made from them with OpenCV
contrib's ``cv2.xphoto.oilPainting``.
"""

from __future__ import annotations

import shutil
import sys
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

# COCO-18 keypoints (x, y, visible) written by hand at 512x512: an upper body facing the camera,
# its left arm raised (a pose the example exemplars do not have).
RAISED_ARM = np.array([
    [256, 190, 1], [256, 300, 1], [170, 310, 1], [140, 420, 1], [0, 0, 0], [342, 310, 1],
    [420, 230, 1], [440, 130, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0],
    [0, 0, 0], [0, 0, 0], [236, 170, 1], [276, 170, 1], [214, 180, 1], [298, 180, 1]], dtype=np.float64)


def oil_paint(rgb: np.ndarray, size: int = OIL_SIZE, dyn_ratio: int = OIL_DYN_RATIO) -> np.ndarray:
    """An oil-paint look made with OpenCV contrib's xphoto.oilPainting (RGB in, RGB out)."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    return np.ascontiguousarray(cv2.xphoto.oilPainting(bgr, size, dyn_ratio)[..., ::-1])


def condition_pictures() -> None:
    """Ready-made conditions for the app's "Ready condition" examples, drawn by Warpaint's own extractors."""
    sys.path.insert(0, str(HERE.parent))  # run as a script from anywhere
    from core import conditions
    from core.imageio import load_image, save_image

    for task, photo, name in (("face", "grace_hopper.jpg", "sketch_grace_hopper.png"),
                              ("mask", "cameraman.png", "mask_cameraman.png")):
        condition = conditions.extract(task, load_image(HERE / photo), (512, 512))
        save_image(HERE / name, condition.preview)
    skeleton = conditions.from_keypoints("pose", RAISED_ARM, (512, 512))
    save_image(HERE / "skeleton_raised_arm.png", skeleton.preview)


def example_clip() -> None:
    """The Pose video tab's example: the astronaut filmed by a swaying camera (2 s, 320x320, H.264)."""
    sys.path.insert(0, str(HERE.parent))
    from core.imageio import load_image
    from core.video.encode import write_video
    from core.video.samples import moving_photo

    write_video(HERE / "clip_astronaut.mp4", moving_photo(load_image(HERE / "astronaut.jpg"), 20, side=320), 10)


def main() -> None:
    shutil.copyfile(MPL_DATA / "grace_hopper.jpg", HERE / "grace_hopper.jpg")
    shutil.copyfile(SKIMAGE_DATA / "camera.png", HERE / "cameraman.png")
    astronaut = np.asarray(Image.open(SKIMAGE_DATA / "astronaut.png").convert("RGB"))
    Image.fromarray(astronaut).save(HERE / "astronaut.jpg", quality=95)  # re-encoded: 0.8 MB PNG -> JPEG
    for name in ("grace_hopper", "astronaut"):
        photo = np.asarray(Image.open(HERE / f"{name}.jpg").convert("RGB"))
        Image.fromarray(oil_paint(photo)).save(HERE / f"oil_{name}.jpg", quality=92)
    condition_pictures()
    example_clip()
    print("wrote", ", ".join(sorted(p.name for p in HERE.iterdir() if p.suffix in (".jpg", ".png", ".mp4"))))


if __name__ == "__main__":
    main()
