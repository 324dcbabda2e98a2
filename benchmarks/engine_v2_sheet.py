"""Training-free engine v1 vs v2 on face pairs of different framing: a contact sheet and the figures.

    .venv/bin/python benchmarks/engine_v2_sheet.py [--out docs/engine_v2_sheet.png] [--size 512]

Rows: input | exemplar | v1 | v2. Photos: skimage's astronaut and matplotlib's grace_hopper.jpg,
with mirrored, rotated, cropped (closer), zoomed-out (wider, reflected border) and oil-filtered
variants, so the two sides' framings differ. Figures per pair and engine: face NME (the output's
68 landmarks re-extracted at the output size vs the input's, over the outer-eye-corner distance),
the patch-coherence ratio when ``core.metrics`` provides it (issue 13's definition), v2's fold-over
fraction before and after regularisation, and seconds (wall and process CPU, extraction included).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.conditions import extract  # noqa: E402
from core.errors import WarpaintError  # noqa: E402
from core.imageio import fit_image, save_image  # noqa: E402
from core.pipeline import Translator  # noqa: E402


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    from PIL import Image
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = np.array(Image.open(f).convert("RGB"))
    return {"astronaut": data.astronaut(), "grace": grace}


def mirrored(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, ::-1])


def rotated(a: np.ndarray, degrees: float) -> np.ndarray:
    h, w = a.shape[:2]
    return cv2.warpAffine(a, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)


def cropped(a: np.ndarray, side: float = 0.6, centre_y: float = 0.35) -> np.ndarray:
    h, w = a.shape[:2]
    s = int(min(h, w) * side)
    y = min(max(0, int(h * centre_y - s / 2)), h - s)
    return np.ascontiguousarray(a[y:y + s, (w - s) // 2:(w - s) // 2 + s])


def zoomed_out(a: np.ndarray, factor: float = 1.8) -> np.ndarray:
    h, w = a.shape[:2]
    dh, dw = int(h * (factor - 1) / 2), int(w * (factor - 1) / 2)
    return cv2.copyMakeBorder(a, dh, dh, dw, dw, cv2.BORDER_REFLECT)


def oil(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.xphoto.oilPainting(np.ascontiguousarray(a[..., ::-1]), 7, 1)[..., ::-1])


def pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    p = photos()
    a, g = p["astronaut"], p["grace"]
    return {
        "astronaut <- grace": (a, g),
        "grace <- astronaut": (g, a),
        "astronaut <- grace mirrored, rotated 15": (a, rotated(mirrored(g), 15)),
        "grace mirrored <- astronaut rotated -12": (mirrored(g), rotated(a, -12)),
        "grace close-up <- astronaut": (cropped(g), a),
        "astronaut zoomed out <- grace": (zoomed_out(a), g),
        "astronaut <- grace cropped": (a, cropped(g, 0.7, 0.4)),
        "astronaut <- oil grace": (a, oil(g)),
    }


def face_nme(output: np.ndarray, reference: np.ndarray) -> float:
    """Mean landmark distance over the reference's outer-eye-corner distance (68 iBUG points)."""
    iod = float(np.linalg.norm(reference[36, :2] - reference[45, :2]))
    return float(np.linalg.norm(output[:, :2] - reference[:, :2], axis=1).mean() / iod)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "engine_v2_sheet.png")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--sheet-side", type=int, default=160, help="side of each picture in the sheet")
    args = parser.parse_args()
    try:
        from core.metrics import PatchCoherence
    except ImportError:  # the evaluation's metrics module is not there: no patch-coherence column
        PatchCoherence = None
    size = (args.size, args.size)
    engines = {"v1": Translator("face", engine="training-free", version=1),
               "v2": Translator("face", engine="training-free", version=2)}
    rows, table = [], []
    for name, (source, exemplar) in pairs().items():
        reference = extract("face", source, size).keypoints
        coherence = PatchCoherence(exemplar) if PatchCoherence is not None else None
        row = [fit_image(source, size), fit_image(exemplar, size)]
        for version, translator in engines.items():
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                result = translator.translate(source, exemplar, resolution=args.size)
            except WarpaintError as exc:
                print(f"{name} {version}: {exc}")
                row.append(np.full((*size, 3), 128, np.uint8))
                continue
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            try:
                nme = face_nme(extract("face", result.image, size).keypoints, reference)
            except WarpaintError:
                nme = float("nan")
            pcr = coherence(result.image) if coherence is not None else float("nan")
            folds = [m for m in result.messages if "folded" in m]
            table.append((name, version, nme, pcr, wall, cpu, folds[0] if folds else ""))
            print(f"| {name} | {version} | {nme:.3f} | {pcr:.2f} | {wall:.2f} | {cpu:.2f} | {table[-1][-1]}",
                  flush=True)
            row.append(result.image)
        rows.append(np.concatenate([cv2.resize(r, (args.sheet_side, args.sheet_side), interpolation=cv2.INTER_AREA)
                                    for r in row], axis=1))
    save_image(args.out, np.concatenate(rows, axis=0))
    for version in engines:
        got = [t for t in table if t[1] == version]
        nmes = [t[2] for t in got]
        pcrs = [t[3] for t in got]
        print(f"{version}: NME max {np.nanmax(nmes):.3f} mean {np.nanmean(nmes):.3f}; "
              f"PCR max {np.nanmax(pcrs) if PatchCoherence else float('nan'):.2f} "
              f"mean {np.nanmean(pcrs) if PatchCoherence else float('nan'):.2f}; "
              f"wall mean {np.mean([t[4] for t in got]):.2f} s, CPU mean {np.mean([t[5] for t in got]):.2f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
