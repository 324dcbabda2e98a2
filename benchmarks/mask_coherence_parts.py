"""Where a mask pair's patch-coherence ratio comes from (docs/engine.md, "Masks: where the coherence
ratio comes from").

The ratio (``core.metrics.PatchCoherence``, unchanged) is a mean over the 7x7 query patches of the
output's 160-px square. Split by the input's subject mask: patches wholly on the subject, wholly on the
background, and across its outline; each part's mean and its share of the ratio (the shares add up to
the ratio). ``--ceiling`` scores the exemplar photo itself, re-centred on its person at a few zooms:
what the metric gives the exemplar's own, untouched content at another framing.

    python benchmarks/mask_coherence_parts.py                 # the 5 mask cross pairs (engine v2)
    python benchmarks/mask_coherence_parts.py --ceiling astronaut/zoomed-out  # its own photo re-centred
"""

from __future__ import annotations

import argparse
import json
import math
import time

import cv2
import numpy as np

from core.conditions import extract
from core.eval_pairs import cross_pairs, picture
from core.imageio import fit_image
from core.metrics import OUTPUT_SIDE, PATCH, QUERY_STRIDE, PatchCoherence, _float_rgb, _patches

SIDE = 512
ZOOMS = (1.0, 1.25, 1.5, 2.0)


def patch_ratios(coherence: PatchCoherence, image: np.ndarray) -> np.ndarray:
    """(n, n) each query patch's nearest-patch distance over sqrt(147), over the exemplar's own score:
    their mean is ``coherence(image)``."""
    queries = _patches(fit_image(_float_rgb(image), (OUTPUT_SIDE, OUTPUT_SIDE)), QUERY_STRIDE)
    n = (OUTPUT_SIDE - PATCH) // QUERY_STRIDE + 1
    return (coherence.search(queries) / math.sqrt(queries.shape[1]) / coherence.exemplar_score).reshape(n, n)


def parts(ratios: np.ndarray, subject: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean and share of the ratio of the patches wholly on ``subject`` (H, W) bool, wholly off it, and across
    its outline."""
    small = fit_image(subject.astype(np.float32), (OUTPUT_SIDE, OUTPUT_SIDE))  # as the metric sees the output
    windows = np.lib.stride_tricks.sliding_window_view(small, (PATCH, PATCH))[::QUERY_STRIDE, ::QUERY_STRIDE]
    low, high = windows.min((-1, -2)), windows.max((-1, -2))
    split = {"subject": low > 0.99, "background": high < 0.01, "outline": (low <= 0.99) & (high >= 0.01)}
    return {name: {"mean": round(float(ratios[where].mean()), 3) if where.any() else None,
                   "patches": round(float(where.mean()), 3),
                   "share": round(float(ratios[where].sum() / ratios.size), 3)} for name, where in split.items()}


def ceiling(name: str) -> None:
    """The exemplar's own photo, re-centred on its person at ``ZOOMS``: whole ratio and the person's part."""
    photo = fit_image(picture(name), (SIDE, SIDE))
    coherence = PatchCoherence(picture(name))
    person = extract("mask", photo, (SIDE, SIDE)).subject_mask
    ys, xs = np.nonzero(person)
    for zoom in ZOOMS:
        shift = np.array([[zoom, 0, SIDE / 2 - zoom * xs.mean()], [0, zoom, SIDE / 2 - zoom * ys.mean()]])
        view = cv2.warpAffine(photo, shift, (SIDE, SIDE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        subject = cv2.warpAffine(person.astype(np.uint8), shift, (SIDE, SIDE), flags=cv2.INTER_NEAREST) > 0
        ratios = patch_ratios(coherence, view)
        print(json.dumps({"exemplar": name, "zoom": zoom, "ratio": round(float(ratios.mean()), 3),
                          "parts": parts(ratios, subject)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N mask cross pairs")
    parser.add_argument("--ceiling", metavar="PICTURE", help="score this exemplar's own photo re-centred instead")
    args = parser.parse_args()
    if args.ceiling:
        ceiling(args.ceiling)
        return
    from core.pipeline import Translator

    translator = Translator("mask")
    for pair in cross_pairs("mask", args.limit):
        start, cpu = time.perf_counter(), time.process_time()
        result = translator.translate(pair.input, pair.exemplar, resolution=SIDE)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        ratios = patch_ratios(PatchCoherence(pair.exemplar), result.image)
        subject = extract("mask", pair.input, result.image.shape[:2]).subject_mask
        print(json.dumps({"pair": pair.name, "ratio": round(float(ratios.mean()), 3), "parts": parts(ratios, subject),
                          "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2)}), flush=True)


if __name__ == "__main__":
    main()
