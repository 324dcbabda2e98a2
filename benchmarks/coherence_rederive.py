"""Issue 13's patch-coherence ratio re-derived from the issue's text alone, against ``core.metrics``
(docs/engine.md, "The zoomed-out variant").

Own centre crop, own patch loops, a brute-force float64 nearest neighbour over the whole bank (scales 2
and 1.5 bicubic every 2nd position, 1, 0.75, 0.5 area every position) for 400 sampled query patches of
the 160-px square (every 2nd position); prints the largest per-query difference from
``PatchCoherence``'s search. Slow on purpose (minutes).

    python benchmarks/coherence_rederive.py
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from core.eval_pairs import picture
from core.imageio import fit_image
from core.metrics import PatchCoherence, _float_rgb, _patches

PAIRS = (("grace_hopper/zoomed-out-blur", "astronaut/close-up"), ("astronaut/zoomed-out", "cameraman"))
SCALES = ((2, cv2.INTER_CUBIC, 2), (1.5, cv2.INTER_CUBIC, 2), (1, cv2.INTER_AREA, 1), (0.75, cv2.INTER_AREA, 1),
          (0.5, cv2.INTER_AREA, 1))


def centre_square(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = image[top:top + s, left:left + s].astype(np.float64) / 255
    return cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA if s > side else cv2.INTER_CUBIC)


def patches(image: np.ndarray, stride: int) -> np.ndarray:
    h, w = image.shape[:2]
    return np.array([image[y:y + 7, x:x + 7].ravel() for y in range(0, h - 6, stride) for x in range(0, w - 6, stride)])


def bank_of(exemplar: np.ndarray) -> np.ndarray:
    square = centre_square(exemplar, 240)
    out = []
    for scale, interpolation, stride in SCALES:
        side = round(240 * scale)
        scaled = square if side == 240 else np.clip(cv2.resize(square, (side, side), interpolation=interpolation), 0, 1)
        out.append(patches(scaled, stride))
    return np.concatenate(out)


def main(queries: int = 400) -> None:
    rng = np.random.default_rng(0)
    for exemplar_name, output_name in PAIRS:
        exemplar, output = picture(exemplar_name), picture(output_name)
        bank = bank_of(exemplar)
        coherence = PatchCoherence(exemplar)
        for image, role in ((output, "output"), (exemplar, "exemplar")):
            all_queries = patches(centre_square(image, 160), 2)
            pick = rng.choice(len(all_queries), queries, replace=False)
            mine = np.array([math.sqrt(((bank - q) ** 2).sum(1).min()) for q in all_queries[pick]]) / math.sqrt(147)
            theirs = coherence.search(_patches(fit_image(_float_rgb(image), (160, 160)), 2)[pick]) / math.sqrt(147)
            print(f"{exemplar_name} {role}: bank {bank.shape}, max |difference| per query "
                  f"{np.abs(mine - theirs).max():.2g}, mean {mine.mean():.6f} vs {theirs.mean():.6f}", flush=True)


if __name__ == "__main__":
    main()
