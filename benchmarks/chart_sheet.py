"""Body and mask charts on real photos: a contact sheet and the pose PCK of re-extracted keypoints.

    .venv/bin/python benchmarks/chart_sheet.py [--out docs/charts_sheet.png] [--size 512]

Body rows: input | exemplar | the exemplar's pixels at the chart's positions (on the exemplar's
background with its person inpainted, where the chart leaves the map to the engine) | the chart's
parts | engine v2's output. The pose of that warp is re-extracted with
the project's own extractor and compared with the input's (``core.metrics.pose_pck``: PCK@0.2 of the
head-to-hip size, 2 x the shoulder width on head-and-shoulders shots), over the joints the input and
the exemplar both have.
Mask rows: input mask | exemplar photo | exemplar mask | warp. Photos: skimage / matplotlib only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.charts.body import PARTS, body_chart  # noqa: E402
from core.charts.masks import mask_chart  # noqa: E402
from core.conditions import masks, pose  # noqa: E402
from core.conditions.ade20k import PALETTE, class_index  # noqa: E402
from core.engine_v2 import TrainingFreeEngineV2  # noqa: E402
from core.errors import WarpaintError  # noqa: E402
from core.imageio import load_image  # noqa: E402
from core.metrics import pose_pck  # noqa: E402
from core.pipeline import exemplar_condition  # noqa: E402

ASSETS = ROOT / "assets"


def variants(img: np.ndarray) -> dict[str, np.ndarray]:
    """Framings: mirrored, cropped (closer), zoomed out (wider, edge-replicated), rotated 12 degrees."""
    h, w = img.shape[:2]
    rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT)
    return {"": img, " mirrored": np.ascontiguousarray(img[:, ::-1]),
            " cropped": np.ascontiguousarray(img[: int(h * 0.8), int(w * 0.1): int(w * 0.9)]),
            " zoomed out": cv2.copyMakeBorder(img, h // 3, h // 3, w // 3, w // 3, cv2.BORDER_REPLICATE),
            " rotated": rot}


def warp(image: np.ndarray, chart, background: np.ndarray | None = None, grey: int = 128) -> np.ndarray:
    """The exemplar sampled at the chart's positions; elsewhere ``background`` (or grey)."""
    pos = chart.positions
    out = cv2.remap(image, pos[..., 1], pos[..., 0], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if background is None:
        out[~chart.defined] = grey
        return out
    alpha = cv2.GaussianBlur(chart.defined.astype(np.float32), (0, 0), 1.5)[..., None]
    return (alpha * out + (1 - alpha) * background).astype(np.uint8)


def person_removed(cond, size: tuple[int, int], work: int = 96) -> np.ndarray:
    """The exemplar's photo with its person inpainted (a crude stand-in for the engine's completion),
    so that the pose re-extracted from a composite sees one person, on a scene."""
    hole = cv2.dilate(cond.subject_mask.astype(np.uint8), np.ones((15, 15), np.uint8))
    small = cv2.resize(cond.image, (work, work), interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole, (work, work), interpolation=cv2.INTER_NEAREST)
    filled = cv2.inpaint(small, small_hole, 5, cv2.INPAINT_TELEA)
    return cv2.resize(filled, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def colour_parts(region: np.ndarray, count: int) -> np.ndarray:
    lut = cv2.applyColorMap(np.linspace(0, 255, count + 1).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    out = lut[np.clip(region, 0, count)].copy()
    out[region == 0] = 0
    return out


def pck(src_kp: np.ndarray, out_kp: np.ndarray, needed: np.ndarray, threshold: float = 0.2) -> tuple[int, int]:
    """Joints of ``needed`` re-found (``core.metrics.pose_pck``: within threshold x head-to-hip size)."""
    reference = np.where(needed[:, None], src_kp, 0.0)
    return round(pose_pck(out_kp, reference, threshold) * int(needed.sum())), int(needed.sum())


def body_rows(size: tuple[int, int]) -> tuple[list[np.ndarray], list[str]]:
    photos = {"astronaut": load_image(ASSETS / "astronaut.jpg"), "grace": load_image(ASSETS / "grace_hopper.jpg"),
              "oil astronaut": load_image(ASSETS / "oil_astronaut.jpg"),
              "cameraman": np.repeat(load_image(ASSETS / "cameraman.png")[..., :1], 3, axis=2)}
    a, g, c = variants(photos["astronaut"]), variants(photos["grace"]), variants(photos["cameraman"])
    pairs = [("grace", g[""], "astronaut", a[""]), ("grace mirrored", g[" mirrored"], "astronaut", a[""]),
             ("astronaut", a[""], "astronaut mirrored", a[" mirrored"]),
             ("grace rotated", g[" rotated"], "grace cropped", g[" cropped"]),
             ("astronaut cropped", a[" cropped"], "grace zoomed out", g[" zoomed out"]),
             ("grace zoomed out", g[" zoomed out"], "oil astronaut", photos["oil astronaut"]),
             ("cameraman", c[""], "cameraman rotated", c[" rotated"]),
             ("cameraman cropped", c[" cropped"], "cameraman", c[""]),
             ("astronaut rotated", a[" rotated"], "grace", g[""]),
             ("skeleton (no photo)", None, "astronaut", a[""])]
    skeleton = pose.from_picture(load_image(ASSETS / "skeleton_raised_arm.png"), size)
    rows, lines, hits, hits_v2, total = [], [], 0, 0, 0
    for src_name, src_img, ex_name, ex_img in pairs:
        try:
            src = skeleton if src_img is None else pose.extract(src_img, size)
            ex = pose.extract(ex_img, size)
        except WarpaintError as err:
            lines.append(f"{src_name} <- {ex_name}: skipped, {err}")
            continue
        t = time.perf_counter()
        try:
            chart = body_chart(src, ex)
            partial = ""
        except WarpaintError as err:
            chart = body_chart(src, ex, allow_partial=True)
            partial = f" refused without --allow-partial ({str(err).split(':')[1].split('(')[0].strip()})"
        seconds = time.perf_counter() - t
        out = warp(ex.image, chart, person_removed(ex, size))
        engine = TrainingFreeEngineV2().one(src, exemplar_condition("pose", ex_img, max(size)), allow_partial=True)
        final = ((engine.image[0].permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        needed = (src.keypoints[:, 2] > 0) & (ex.keypoints[:, 2] > 0)
        scores = []
        for picture in (out, final):
            try:
                found = pose.detect_keypoints(picture, size)
            except WarpaintError:
                found = np.zeros((18, 3))
            scores.append(pck(src.keypoints, found, needed))
        (ok, n), (ok_v2, _) = scores
        if not partial:
            hits, hits_v2, total = hits + ok, hits_v2 + ok_v2, total + n
        lines.append(f"{src_name} <- {ex_name}: PCK@0.2 chart {ok}/{n}, engine v2 {ok_v2}/{n}, "
                     f"chart {seconds:.2f} s{partial}")
        shown = src.preview if src_img is None else src.image
        rows.append(np.concatenate([shown, ex.image, out, colour_parts(chart.region, len(PARTS)),
                                    cv2.resize(final, (size[1], size[0]))], axis=1))
    lines.append(f"pose PCK@0.2 over the pairs that are not refused: chart {hits}/{total} = "
                 f"{hits / max(total, 1):.3f}, engine v2 {hits_v2}/{total} = {hits_v2 / max(total, 1):.3f}")
    return rows, lines


def scene(size: int, horizon: float, mirror: bool = False) -> np.ndarray:
    """An input mask: sky over grass with a wavy horizon, a wall, an elliptic 'car'."""
    sky, grass, wall, car = (class_index(n) for n in ("sky", "grass", "wall", "car"))
    yy, xx = np.mgrid[0:size, 0:size]
    h = horizon * size
    idx = np.where(yy >= h + 0.04 * size * np.sin(xx / (0.12 * size)), grass, sky).astype(np.uint8)
    idx[(yy > h - 0.3 * size) & (yy < h + 0.06 * size) & (xx > 0.08 * size) & (xx < 0.4 * size)] = wall
    idx[((xx - 0.7 * size) / (0.23 * size)) ** 2 + ((yy - h - 0.2 * size) / (0.1 * size)) ** 2 < 1] = car
    return np.ascontiguousarray(idx[:, ::-1]) if mirror else idx


def scene_exemplar(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo made of real textures (rocket's sky, skimage grass and brick, Chelsea the cat as the
    'car') and its exact mask."""
    import skimage.data

    sky, grass, wall, car = (class_index(n) for n in ("sky", "grass", "wall", "car"))
    idx = np.full((size, size), sky, np.uint8)
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = cv2.resize(skimage.data.rocket()[:200, :250], (size, size))
    idx[size // 2:] = grass
    grass_rgb = cv2.resize(np.repeat(skimage.data.grass()[..., None], 3, axis=2), (size, size)) * [0.5, 1.0, 0.4]
    img[size // 2:] = grass_rgb[size // 2:].astype(np.uint8)
    brick = cv2.resize(np.repeat(skimage.data.brick()[..., None], 3, axis=2), (size, size)) * [1.0, 0.6, 0.5]
    box = (slice(size // 3, size // 2 + size // 12), slice(int(0.58 * size), int(0.94 * size)))
    idx[box], img[box] = wall, brick[box].astype(np.uint8)
    cat = (slice(int(0.64 * size), int(0.86 * size)), slice(int(0.12 * size), int(0.43 * size)))
    idx[cat] = car
    img[cat] = cv2.resize(skimage.data.chelsea(), (cat[1].stop - cat[1].start, cat[0].stop - cat[0].start))
    return img, idx


def mask_rows(size: tuple[int, int]) -> tuple[list[np.ndarray], list[str]]:
    img, idx = scene_exemplar(size[0])
    ex = masks.from_index(idx, size, image=img)
    rows, lines = [], []
    inputs = [("horizon low", scene(size[0], 0.6)), ("horizon high, mirrored", scene(size[0], 0.35, True))]
    person = masks.from_picture(load_image(ASSETS / "mask_cameraman.png"), size)
    astro = masks.extract(load_image(ASSETS / "astronaut.jpg"), size)
    for name, index in inputs:
        src = masks.from_index(index, size)
        t = time.perf_counter()
        chart = mask_chart(src, ex)
        lines.append(f"mask {name}: chart {time.perf_counter() - t:.2f} s, defined {chart.defined.mean():.0%}")
        rows.append(np.concatenate([src.preview, img, PALETTE[idx], warp(img, chart), np.zeros_like(img)], axis=1))
    t = time.perf_counter()
    chart = mask_chart(person, astro)
    lines.append(f"mask cameraman <- astronaut (person class): chart {time.perf_counter() - t:.2f} s")
    rows.append(np.concatenate([person.preview, astro.image, astro.preview, warp(astro.image, chart),
                                np.zeros_like(astro.image)], axis=1))
    return rows, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "charts_sheet.png")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--thumb", type=int, default=128, help="side of each picture in the sheet")
    args = parser.parse_args()
    size = (args.size, args.size)
    body, body_lines = body_rows(size)
    mask, mask_lines = mask_rows(size)
    print("\n".join(body_lines + mask_lines))
    sheet = np.concatenate(body + mask, axis=0)
    scale = args.thumb / args.size
    small = cv2.resize(sheet, (round(sheet.shape[1] * scale), round(sheet.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    Image.fromarray(small).quantize(colors=256, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
