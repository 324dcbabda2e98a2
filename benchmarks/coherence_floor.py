"""The patch-coherence ratio of ideal outputs for an enlarged cross pair: what no engine can get under.

    PYTHONPATH=. python benchmarks/coherence_floor.py [--input astronaut/close-up] [--exemplar grace_hopper/zoomed-out]
        [--original grace_hopper] [--out /tmp/floor.png]

Each ideal output is framed like the input (the exemplar's face placed on the input's face by the similarity
closest to their landmarks, 512 px, as eval-warp's outputs): (1) the exemplar's person's original photo, with
more detail than the exemplar shows (an ``--original`` that a variant such as zoomed-out was made from); (2) the
exemplar itself, enlarged as a whole; (3) and (4) the person of (1) or (2) (selfie silhouette, 1.5 px soft edge)
over the exemplar's frame never enlarged (a backdrop at infinity: the most parallax). No fill, seam or
misplaced texture anywhere, so their ratios are the metric's verdict on the scale alone (docs/engine.md,
"The backdrop's person hole closed", ninth session).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from core.conditions import extract
from core.conditions.detectors import person_mask
from core.eval_pairs import picture
from core.imageio import fit_image
from core.metrics import PatchCoherence

SIDE = 512


def framed_like(photo: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, float]:
    """``photo`` warped so its face lands on ``keypoints`` (the input's, at SIDE), and its enlargement."""
    found = extract("face", photo, photo.shape[:2]).keypoints
    affine, _ = cv2.estimateAffinePartial2D(keypoints[:, :2].astype(np.float32), found[:, :2].astype(np.float32))
    out = cv2.warpAffine(photo, affine, (SIDE, SIDE), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT)
    return out, 1 / float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="astronaut/close-up")
    parser.add_argument("--exemplar", default="grace_hopper/zoomed-out")
    parser.add_argument("--original", default="grace_hopper")
    parser.add_argument("--out")
    args = parser.parse_args()
    source = cv2.resize(picture(args.input), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    exemplar = picture(args.exemplar)
    ratio = PatchCoherence(exemplar)
    keypoints = extract("face", source, (SIDE, SIDE)).keypoints
    backdrop = fit_image(exemplar, (SIDE, SIDE))  # the exemplar's frame, never enlarged
    tiles = []
    for name, photo in ((f"{args.original} (original photo)", picture(args.original)), (args.exemplar, exemplar)):
        whole, enlarged = framed_like(photo, keypoints)
        matte = cv2.GaussianBlur(person_mask(whole).astype(np.float32), (0, 0), 1.5)[..., None]
        over = (whole * matte + backdrop * (1 - matte)).round().astype(np.uint8)
        print(f"{name}, enlarged {enlarged:.2f}x: whole {ratio(whole):.3f}, "
              f"its person over the never-enlarged backdrop {ratio(over):.3f}")
        tiles += [whole, over]
    if args.out:
        cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
