"""Contact sheet of completed backgrounds alone: exemplar | its person's hole dimmed | completed, as engine
v2 completes a mask exemplar's background by default (the selfie silhouette dilated by 3 %, ``compose.complete``
at the engine's work size, ``follow`` and ``perceptual``, no layers; ``--rgb``: a pose exemplar's, without
``perceptual``), with ``--layers`` one more column
completed in layers (the engine's ``completion_layers``), on the evaluation photos and unseen variants of them
(rotated, mirrored, hue-shifted, groot from gradio's media assets), plus the evaluation's zoomed-out astronaut
and Grace Hopper (whose surround the same completion makes).

    PYTHONPATH=. python benchmarks/completion_sheet.py out.png [--side 512] [--only 0,3] [--layers | --face] [--rgb]

Prints each completion's CPU seconds (one thread)."""

from __future__ import annotations

import argparse
import glob
import time

import cv2
import numpy as np
from PIL import Image


def _hue(photo: np.ndarray, degrees: float) -> np.ndarray:
    hsv = cv2.cvtColor(photo, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(int) + round(degrees / 2)) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def exemplars() -> list[tuple[str, np.ndarray]]:

    from core.eval_pairs import picture, rotated

    groot = glob.glob("/work/main/.venv/lib/python*/site-packages/gradio/media_assets/images/groot.jpeg")
    out = [("astronaut", picture("astronaut")),
           ("astronaut rotated -10, hue +60", _hue(rotated(picture("astronaut"), -10), 60)),
           ("astronaut mirrored", picture("astronaut/mirrored")),
           ("cameraman", picture("cameraman")),
           ("cameraman mirrored, rotated 5", rotated(picture("cameraman/mirrored"), 5)),
           ("grace_hopper", picture("grace_hopper")),
           ("grace_hopper rotated, hue +150", _hue(picture("grace_hopper/rotated"), 150))]
    if groot:
        out.append(("groot", np.asarray(Image.open(groot[0]).convert("RGB"))))
    out.append(("astronaut zoomed-out (eval variant)", picture("astronaut/zoomed-out")))
    out.append(("grace_hopper zoomed-out (eval variant)", picture("grace_hopper/zoomed-out")))
    return out


def completed(photo: np.ndarray, follow: bool = True, side: int = 128, layers: bool = False,
              perceptual: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """(hole, completed picture, CPU s of the completion) as engine v2 completes an exemplar's background."""
    from core.compose import complete, sample_votes
    from core.conditions import detectors

    person = detectors.person_mask(np.ascontiguousarray(photo))
    r = max(3, round(0.03 * max(photo.shape[:2])))
    hole = cv2.dilate(person.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0
    c0 = time.thread_time()
    fill = complete(photo, hole, None, side, follow=follow, layers=follow and layers, perceptual=follow and perceptual)
    cpu = time.thread_time() - c0
    out = photo.copy()
    points = np.argwhere(hole).astype(np.float32)
    out[hole] = sample_votes(photo, fill.sources(points), (photo, 1.0), fill.weights(points))
    return hole, out, cpu


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--only", default="")
    parser.add_argument("--face", action="store_true", help="the isotropic guess (faces) instead of follow")
    parser.add_argument("--layers", action="store_true", help="one more column: completed in layers (not with --face)")
    parser.add_argument("--rgb", action="store_true", help="matched in RGB (pose) instead of mask's CIELab")
    args = parser.parse_args(argv)
    if args.face and args.layers:  # compose.complete splits a hole in layers with follow only
        parser.error("--layers needs the follow guess: with --face its column would repeat the plain completion.")
    torch.set_num_threads(1)
    only = {int(i) for i in args.only.split(",") if i}
    rows = []
    for i, (name, photo) in enumerate(exemplars()):
        if only and i not in only:
            continue
        photo = cv2.resize(photo, (512, round(512 * photo.shape[0] / photo.shape[1])), interpolation=cv2.INTER_AREA)
        hole, out, cpu = completed(photo, follow=not args.face, perceptual=not args.rgb)
        print(f"{i} {name}: hole {hole.mean():.0%}, completion CPU {cpu:.2f} s", flush=True)
        dim = photo.copy()
        dim[hole] = dim[hole] // 3
        shown = [photo, dim, out]
        if args.layers:
            shown.append(completed(photo, follow=not args.face, layers=True, perceptual=not args.rgb)[1])
        cells = [cv2.resize(x, (args.side, args.side), interpolation=cv2.INTER_AREA) for x in shown]
        cv2.putText(cells[0], f"{i} {name}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        rows.append(np.concatenate(cells, 1))
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)


if __name__ == "__main__":
    main()
