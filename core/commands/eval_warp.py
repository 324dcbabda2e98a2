"""``python -m core eval-warp``: warp quality on pseudo pairs, measured against two baselines.

For each photo x: a pseudo exemplar T(x) is made with the trainer's augmentation
(``core.augment``: flip, crop-and-resize, rotation, smooth warp), the conditions of x and of
T(x) are extracted, and T(x) is warped to x's condition. The warp is compared with x (PSNR and
SSIM, scikit-image) over the whole picture and inside x's subject region, beside two baselines
computed on the same pairs: identity (T(x) as it is) and a thin-plate spline through the
keypoints matched between x and T(x) (pose, face; masks have no keypoints). One JSON line;
``--pairs N`` draws N transforms per photo (pair i uses seed + i).

Masks: a photo with a sibling ``<name>_mask.png`` (ADE20K palette or index map) uses that mask;
other photos get person / background from selfie segmentation. ``--synthetic N`` adds N scenes
made here: regions of scikit-image textures (brick, grass, gravel), tinted, with their masks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from core.errors import WarpaintError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SCENE_CLASSES = (2, 3, 5, 7, 10, 13)  # ADE20K: building, sky, tree, road, grass, person


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=("pose", "face", "mask"))
    parser.add_argument("--images", type=Path, help="folder of photos (x); masks may sit beside as <name>_mask.png")
    parser.add_argument("--engine", default="training-free", choices=("auto", "learned", "training-free"))
    parser.add_argument("--checkpoint", type=Path, help="model folder for the learned engine")
    parser.add_argument("--limit", type=int, default=None, help="use at most N photos (sorted by name)")
    parser.add_argument("--resolution", type=int, default=256, help="square size of x and T(x) (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmentation (pair i uses seed + i)")
    parser.add_argument("--strength", type=float, default=1.0, help="augmentation strength (0 = identity)")
    parser.add_argument("--pairs", type=int, default=1, help="pseudo pairs per photo (different random transforms)")
    parser.add_argument("--synthetic", type=int, default=0, help="mask task: add N generated textured scenes")


def run(args: argparse.Namespace) -> int:
    from core.pipeline import Translator

    items = _load_items(args)
    translator = Translator(args.task, engine=args.engine, checkpoint=args.checkpoint)
    if args.pairs < 1:
        raise WarpaintError("--pairs must be at least 1.")
    report = evaluate(translator, [item for item in items for _ in range(args.pairs)], args.resolution, args.seed,
                      args.strength)
    print(json.dumps(report))
    return 0


def _load_items(args: argparse.Namespace) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, photo, optional index mask) for every photo of --images, then the synthetic scenes."""
    from core.conditions import from_user_condition
    from core.imageio import load_image

    items: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    if args.images is not None:
        if not args.images.is_dir():
            raise WarpaintError(f"--images {args.images} is not a folder of photos.")
        paths = sorted(p for p in args.images.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith("_mask"))
        for path in paths[: args.limit]:
            mask_path = next((m for m in path.parent.glob(f"{path.stem}_mask.*")
                              if m.suffix.lower() in IMAGE_SUFFIXES), None)
            photo = load_image(path)
            mask = None
            if mask_path is not None and args.task == "mask":
                painted = from_user_condition("mask", load_image(mask_path), photo.shape[:2])
                mask = painted.label.argmax(0).numpy().astype(np.uint8)
            items.append((path.name, photo, mask))
    if args.synthetic:
        if args.task != "mask":
            raise WarpaintError("--synthetic makes mask scenes: use it with --task mask.")
        items += [(f"synthetic-{i}", *synthetic_scene(args.resolution, args.seed + i)) for i in range(args.synthetic)]
    if not items:
        raise WarpaintError("No photos to evaluate: give --images DIR (and/or --synthetic N for masks).")
    return items


def evaluate(translator, items: list[tuple[str, np.ndarray, np.ndarray | None]], resolution: int = 256,
             seed: int = 0, strength: float = 1.0) -> dict:
    """Mean PSNR / SSIM (whole picture and subject region) of the engine's warp, identity and TPS
    over pseudo pairs of ``items`` (name, photo, optional (H, W) ADE20K index mask framed like the
    photo). Pairs whose conditions cannot be extracted are skipped and listed."""
    import torch

    from core.augment import pseudo_exemplar
    from core.conditions import extract
    from core.conditions.masks import from_index
    from core.descriptors import map_grid
    from core.imageio import fit_image, from_tensor, to_tensor
    from core.protocol import sample_positions

    size = translator.output_size(resolution)
    scores: dict[str, list[dict[str, float]]] = {"warp": [], "identity": [], "tps": []}
    skipped, seconds = [], []
    for i, (name, photo, mask) in enumerate(items):
        x = fit_image(photo, size)
        gen = torch.Generator().manual_seed(seed + i)
        if mask is not None:  # the given mask goes through the same transform (nearest, stays one class)
            index = fit_image(mask, size, nearest=True)
            lab = torch.from_numpy(index).float()[None, None]
            pair = pseudo_exemplar(to_tensor(x), lab, generator=gen, strength=strength, label_mode="nearest")
            t = from_tensor(pair.image)
            cx = from_index(index, size, image=x)
            ct = from_index(pair.label[0, 0].round().byte().numpy(), size, image=t)
        else:
            pair = pseudo_exemplar(to_tensor(x), generator=gen, strength=strength)
            t = from_tensor(pair.image)
            try:
                cx = extract(translator.task, x, size)
                ct = extract(translator.task, t, size)
            except WarpaintError as exc:
                skipped.append(f"{name} (pair {i}): {exc}")
                continue
        start = time.perf_counter()
        result = translator.translate(cx, ct, seed=seed)
        seconds.append(time.perf_counter() - start)
        warp = result.image if translator.checkpoint is None else result.warped
        region = cx.subject_mask if cx.subject_mask is not None and cx.subject_mask.any() else np.ones(size, bool)
        scores["identity"].append(_metrics(t, x, region))
        scores["warp"].append(_metrics(warp, x, region))
        if cx.keypoints is not None and ct.keypoints is not None:
            grid = map_grid(cx, ct)  # x pixel -> (x, y) in T(x)
            tps = sample_positions(to_tensor(t), torch.from_numpy(grid[::-1].copy()).unsqueeze(0))
            scores["tps"].append(_metrics(from_tensor(tps), x, region))

    def mean(rows: list[dict[str, float]]) -> dict[str, float] | None:
        return {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]} if rows else None

    report = {"task": translator.task, "engine": translator.engine_name, "resolution": size[0],
              "pairs": len(scores["warp"]), "photos": len({name for name, _, _ in items}), "strength": strength,
              "seed": seed}
    report.update({name: mean(rows) for name, rows in scores.items()})
    if report["warp"] and report["identity"]:
        beats = [report["warp"][k] > report[b][k] for b in ("identity", "tps") if report[b] for k in report["warp"]]
        report["beats_baselines"] = all(beats)
    report["seconds_per_image"] = round(float(np.mean(seconds)), 3) if seconds else None
    report["skipped"] = skipped
    return report


def _metrics(warp: np.ndarray, target: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of ``warp`` against ``target`` (uint8 RGB): whole picture and inside ``region``."""
    a, b = warp.astype(np.float64), target.astype(np.float64)
    err = ((a - b) ** 2).mean(-1)
    _, ssim_map = structural_similarity(a, b, data_range=255, channel_axis=2, full=True)
    ssim_map = ssim_map.mean(-1)

    def psnr(mse: float) -> float:
        return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))

    return {"psnr": psnr(err.mean()), "ssim": float(ssim_map.mean()),
            "psnr_subject": psnr(err[region].mean()), "ssim_subject": float(ssim_map[region].mean())}


def synthetic_scene(side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A picture of 4-6 tinted texture regions (scikit-image's brick, grass, gravel) and its (H, W)
    ADE20K index mask. Deterministic per seed."""
    from skimage import data

    rng = np.random.default_rng(seed)
    textures = [data.brick(), data.grass(), data.gravel()]
    n = int(rng.integers(4, 7))
    # Regions: nearest of n random sites under a smooth random distortion (blobby, not polygonal).
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    noise = cv2.resize(rng.normal(0, 0.08, (2, 6, 6)).astype(np.float32).transpose(1, 2, 0), (side, side),
                       interpolation=cv2.INTER_CUBIC)
    sites = rng.uniform(0.1, 0.9, (n, 2))
    d = [(xx + noise[..., 0] - sx) ** 2 + (yy + noise[..., 1] - sy) ** 2 for sx, sy in sites]
    region = np.argmin(np.stack(d), axis=0)
    classes = rng.choice(SCENE_CLASSES, size=n, replace=n > len(SCENE_CLASSES))
    picture = np.zeros((side, side, 3), np.float32)
    for k in range(n):
        tex = cv2.resize(textures[k % 3], (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        tint = rng.uniform(0.2, 1.0, 3)
        picture[region == k] = (tex[..., None] * tint * 255)[region == k]
    index = classes[region].astype(np.uint8)
    return np.clip(picture, 0, 255).astype(np.uint8), index


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.ArgumentParser().parse_args()))
