"""Face landmarks on stylised pictures: success rate and accuracy per photo x stylisation.

Each photo the tests may use (skimage astronaut, matplotlib grace_hopper, gradio's groot) is
stylised (oil paint, cv2 stylisation, pencil sketch, sepia, posterise, JPEG, hue shift,
rotation) and ``find_face`` runs on it. Accuracy: the stylised copy's 68 points against the
original's (rotated with it), mean distance over the original's inter-ocular distance (NME).

    PYTHONPATH=. python benchmarks/face_robustness.py [--markdown]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import matplotlib.cbook as cbook
import numpy as np
from PIL import Image
from skimage import data

from core.conditions.face_detect import find_face
from core.errors import NoSubjectError

GROOT = Path(cv2.__file__).parents[1] / "gradio/media_assets/images/groot.jpeg"


def photos() -> dict[str, np.ndarray]:
    found = {"astronaut": data.astronaut(),
             "grace_hopper": np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))}
    if GROOT.exists():
        found["groot"] = np.asarray(Image.open(GROOT).convert("RGB"))
    return found


def _bgr(fn):
    return lambda img: cv2.cvtColor(fn(cv2.cvtColor(img, cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)


def sepia(img: np.ndarray) -> np.ndarray:
    k = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
    return np.clip(img.astype(float) @ k.T, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int = 8) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def hue(img: np.ndarray, shift: int = 60) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + shift) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def rotation(deg: float):
    def apply(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT), m
    return apply


STYLES = {
    **{f"oil {s}": _bgr(lambda im, s=s: cv2.xphoto.oilPainting(im, s, 1)) for s in (5, 7, 9)},
    "stylization": _bgr(lambda im: cv2.stylization(im, sigma_s=60, sigma_r=0.45)),
    "edge-preserving": _bgr(lambda im: cv2.edgePreservingFilter(im, flags=1, sigma_s=60, sigma_r=0.4)),
    "pencil colour": _bgr(lambda im: cv2.pencilSketch(im, sigma_s=60, sigma_r=0.07, shade_factor=0.05)[1]),
    "sepia": sepia,
    "posterise 4": lambda im: (im // 64 * 64 + 32).astype(np.uint8),
    "JPEG q8": _bgr(jpeg),
    "hue +60": hue,
    "rot +25": rotation(25),
    "rot -25": rotation(-25),
    "oil 7, rot -25": lambda im: rotation(-25)(STYLES["oil 7"](im)),
}


def table(markdown: bool = False) -> None:
    rows = []
    for pname, photo in photos().items():
        ref = find_face(photo).ibug
        iod = np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0))
        for sname, style in STYLES.items():
            out = style(photo)
            truth = ref
            if isinstance(out, tuple):
                out, m = out
                truth = ref @ m[:, :2].T + m[:, 2]
            t0 = time.process_time()
            try:
                found = find_face(np.ascontiguousarray(out))
                nme = float(np.linalg.norm(found.ibug - truth, axis=1).mean() / iod)
                note = "smoothed" if any("smoothed" in m for m in found.messages) else ""
                cell = f"{nme:.3f}"
            except NoSubjectError as exc:
                nme, note, cell = float("nan"), str(exc)[:40], "fail"
            rows.append((pname, sname, cell, time.process_time() - t0, note))
            print(f"{pname:13s} {sname:16s} {cell:6s} {rows[-1][3]:.2f}s {note}", flush=True)
    ok = [r for r in rows if r[2] != "fail"]
    nmes = [float(r[2]) for r in ok]
    print(f"found {len(ok)}/{len(rows)}; NME median {np.median(nmes):.3f} max {max(nmes):.3f}; "
          f"> 0.05: {sum(n > 0.05 for n in nmes)}")
    if markdown:
        names = list(STYLES)
        pnames = list(dict.fromkeys(r[0] for r in rows))
        print("| photo | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for p in pnames:
            cells = {r[1]: r[2] for r in rows if r[0] == p}
            print(f"| {p} | " + " | ".join(cells[n] for n in names) + " |")


if __name__ == "__main__":
    table("--markdown" in sys.argv)
