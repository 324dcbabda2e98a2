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

``--cross`` adds cross-identity pairs (``core.eval_pairs``: real photos from installed packages,
mirrored, tilted, close-up, zoomed-out and oil-painted) run through every engine version of
``ENGINE_VERSIONS``: structure fidelity (face NME / pose PCK@0.2 of landmarks re-extracted from
the output), the patch-coherence ratio, the fold-over fraction of the final map and seconds per
translation (``core.metrics``); pairs whose exemplar is a degenerate variant (``core.eval_pairs.DEGENERATE``:
the blurred zoomed-out first version) are measured too but left out of the summaries, which name them.
``--sheet out.png`` also draws them: input | exemplar | one
column per engine version. ``--pseudo-sheet out.png`` draws the pseudo pairs: x | T(x) | TPS | engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from core.errors import NoSubjectError, WarpaintError
from core.limits import RESOLUTION
from core.metrics import psnr_ssim
from core.vocabulary import ENGINES, TASKS, TRAINING_FREE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SCENE_CLASSES = (2, 3, 5, 7, 10, 13)  # ADE20K: building, sky, tree, road, grass, person
PSEUDO_RESOLUTION = 256  # default output side of the pseudo pairs ...
CROSS_RESOLUTION = 512  # ... and of the cross-identity pairs (issue 13's goals are stated at 512)


def _translator(task: str, **options):
    from core.pipeline import Translator

    return Translator(task, engine=TRAINING_FREE, **options)


# Engine versions compared on the cross-identity pairs and drawn side by side on the sheet:
# name -> a Translator for a task. A new engine version is one more line here.
ENGINE_VERSIONS: dict[str, Callable[[str], object]] = {
    "v1": lambda task: _translator(task, version=1),
    "v2": lambda task: _translator(task, version=2),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--images", type=Path, help="folder of photos (x); masks may sit beside as <name>_mask.png")
    parser.add_argument("--engine", default=TRAINING_FREE, choices=ENGINES)
    parser.add_argument("--checkpoint", type=Path, help="model folder for the learned engine")
    parser.add_argument("--engine-version", type=int, default=None, choices=(1, 2),
                        help="training-free engine version for the pseudo pairs (default: the task's; --cross "
                             "compares the versions of --versions)")
    parser.add_argument("--limit", type=int, default=None, help="use at most N photos (sorted by name)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="square output size (default: 256 for pseudo pairs, 512 for --cross)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmentation (pair i uses seed + i)")
    parser.add_argument("--strength", type=float, default=1.0, help="augmentation strength (0 = identity)")
    parser.add_argument("--pairs", type=int, default=1, help="pseudo pairs per photo (different random transforms)")
    parser.add_argument("--synthetic", type=int, default=0, help="mask task: add N generated textured scenes")
    parser.add_argument("--cross", action="store_true",
                        help="also run the built-in cross-identity pairs through every engine version")
    parser.add_argument("--versions", default=",".join(ENGINE_VERSIONS),
                        help=f"engine versions for --cross, comma-separated (default: {','.join(ENGINE_VERSIONS)})")
    parser.add_argument("--cross-limit", type=int, default=None, help="use only the first N cross-identity pairs")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet of the cross-identity pairs (PNG); "
                        "implies --cross")
    parser.add_argument("--pseudo-sheet", type=Path, help="write a contact sheet of the pseudo pairs (PNG): "
                        "photo | pseudo exemplar | thin-plate spline | engine, each with its PSNR")
    parser.add_argument("--sheet-tile", type=int, default=160, help="side of a sheet's picture in pixels")
    parser.add_argument("--sheet-palette", action="store_true",
                        help="write the sheet as an 8-bit palette PNG (dithered; about 3x smaller, for docs)")


def run(args: argparse.Namespace) -> int:
    from core.pipeline import Translator

    cross = args.cross or args.sheet is not None
    if args.pairs < 1:
        raise WarpaintError("--pairs must be at least 1.")
    for flag, value in (("--cross-limit", args.cross_limit), ("--limit", args.limit)):
        if value is not None and value < 1:  # a slice by -1 silently left the last pair out
            raise WarpaintError(f"{flag} must be at least 1.")
    if args.synthetic < 0:
        raise WarpaintError("--synthetic must be 0 or more.")
    if not 0 <= args.strength < float("inf"):  # NaN fails the comparison
        raise WarpaintError(f"--strength {args.strength} is out of range: give a number from 0 (identity).")
    RESOLUTION.check_optional(args.resolution)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    unknown = [v for v in versions if v not in ENGINE_VERSIONS]
    if cross and (unknown or not versions):
        raise WarpaintError(f"Unknown engine version(s) {', '.join(unknown) or '(none)'}: "
                            f"choose from {', '.join(ENGINE_VERSIONS)}.")
    if not 64 <= args.sheet_tile <= 512:
        raise WarpaintError(f"--sheet-tile {args.sheet_tile} is out of range: use 64 to 512 pixels.")
    for flag, path in (("--sheet", args.sheet), ("--pseudo-sheet", args.pseudo_sheet)):
        if path is not None and path.suffix.lower() != ".png":
            raise WarpaintError(f"{flag} {path}: the contact sheet is a PNG, name it <something>.png.")
    report: dict = {}
    if args.images is not None or args.synthetic or not cross:
        items = _load_items(args)
        translator = Translator(args.task, engine=args.engine, checkpoint=args.checkpoint, version=args.engine_version)
        drawn: list[tuple[str, list]] | None = [] if args.pseudo_sheet is not None else None
        report = evaluate(translator, [item for item in items for _ in range(args.pairs)],
                          args.resolution or PSEUDO_RESOLUTION, args.seed, args.strength, drawn)
        if drawn is not None:
            from core.utils.contact_sheet import contact_sheet

            _save_sheet(contact_sheet(["x", "T(x)", "thin-plate", "engine"], drawn,
                                      args.sheet_tile), args.pseudo_sheet, args.sheet_palette)
            report["pseudo_sheet"] = str(args.pseudo_sheet)
    if cross:
        from core.eval_pairs import cross_pairs

        pairs = cross_pairs(args.task, args.cross_limit)
        engines = {v: ENGINE_VERSIONS[v](args.task) for v in versions}
        report["cross"], outputs = evaluate_cross(engines, pairs, args.resolution or CROSS_RESOLUTION, args.seed)
        if args.sheet is not None:
            _save_sheet(cross_sheet(pairs, outputs, report["cross"], args.sheet_tile), args.sheet, args.sheet_palette)
            report["sheet"] = str(args.sheet)
    print(json.dumps(report))
    return 0


def _save_sheet(picture: np.ndarray, path: Path, palette: bool) -> None:
    """Write a contact sheet as PNG (``palette``: 8-bit, dithered, about 3x smaller)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = Image.fromarray(picture)
    if palette:
        sheet = sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    sheet.save(path, optimize=True)


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
        side = args.resolution or PSEUDO_RESOLUTION
        items += [(f"synthetic-{i}", *synthetic_scene(side, args.seed + i)) for i in range(args.synthetic)]
    if not items:
        raise WarpaintError("No photos to evaluate: give --images DIR (and/or --synthetic N for masks), "
                            "or --cross for the built-in cross-identity pairs.")
    return items


def evaluate(translator, items: list[tuple[str, np.ndarray, np.ndarray | None]], resolution: int = 256,
             seed: int = 0, strength: float = 1.0, drawn: list | None = None) -> dict:
    """Mean PSNR / SSIM (whole picture and subject region) of the engine's warp, identity and TPS
    over pseudo pairs of ``items`` (name, photo, optional (H, W) ADE20K index mask framed like the
    photo). Pairs whose conditions cannot be extracted are skipped and listed.
    ``drawn``, when given, receives one contact-sheet row per pair: x | T(x) | TPS | engine, with PSNRs."""
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
        # (a crop may cut off a part the input shows: engine v2 would refuse it; measured as the fill)
        result = translator.translate(cx, ct, seed=seed, allow_partial=True)
        seconds.append(time.perf_counter() - start)
        warp = result.image if translator.checkpoint is None else result.warped
        region = cx.subject_mask if cx.subject_mask is not None and cx.subject_mask.any() else np.ones(size, bool)
        scores["identity"].append(psnr_ssim(t, x, region))
        scores["warp"].append(psnr_ssim(warp, x, region))
        tps = None
        if cx.keypoints is not None and ct.keypoints is not None:
            grid = map_grid(cx, ct)  # x pixel -> (x, y) in T(x)
            tps = from_tensor(sample_positions(to_tensor(t), torch.from_numpy(grid[::-1].copy()).unsqueeze(0)))
            scores["tps"].append(psnr_ssim(tps, x, region))
        if drawn is not None:
            drawn.append((f"{name} (pair {i})", [x, (t, _psnr_label(scores["identity"][-1])),
                                                 (tps, _psnr_label(scores["tps"][-1])) if tps is not None else
                                                 "no keypoints", (warp, _psnr_label(scores["warp"][-1]))]))

    def mean(rows: list[dict[str, float]]) -> dict[str, float] | None:
        return {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]} if rows else None

    report = {"task": translator.task, "engine": translator.engine_name,
              "engine_version": getattr(translator.engine, "version", 1) if translator.checkpoint is None else None,
              "resolution": size[0],
              "pairs": len(scores["warp"]), "photos": len({name for name, _, _ in items}), "strength": strength,
              "seed": seed}
    report.update({name: mean(rows) for name, rows in scores.items()})
    if report["warp"] and report["identity"]:
        beats = [report["warp"][k] > report[b][k] for b in ("identity", "tps") if report[b] for k in report["warp"]]
        report["beats_baselines"] = all(beats)
    report["seconds_per_image"] = round(float(np.mean(seconds)), 3) if seconds else None
    report["skipped"] = skipped
    return report


def _psnr_label(row: dict[str, float]) -> str:
    return f"{row['psnr']:.1f} dB, subject {row['psnr_subject']:.1f}"


def evaluate_cross(engines: dict, pairs: list, resolution: int = 512, seed: int = 0
                   ) -> tuple[dict, dict[str, list[np.ndarray | str]]]:
    """Every engine (name -> Translator) on every cross-identity pair: per-pair rows and a summary
    per engine, and the outputs (an image, or the message of a refusal) for the sheet.

    Structure: the output's landmarks (face, 68 iBUG) or keypoints (pose, COCO-18) re-extracted
    with the project's extractors at the output size against the input's at that size.
    Seconds: one ``translate`` call (extraction of both pictures included), after one untimed
    warm-up call per engine (detector and allocator start-up); wall clock and process CPU time
    (every thread's, so on an idle 2-core machine wall is about CPU / 2 .. CPU)."""
    from core.conditions import extract
    from core.metrics import PatchCoherence, face_nme, fold_fraction, pose_pck

    rows: dict[str, list[dict]] = {name: [] for name in engines}
    outputs: dict[str, list[np.ndarray | str]] = {name: [] for name in engines}
    warm = set()
    coherence: tuple[str, PatchCoherence] | None = None  # the last exemplar's (bank is ~150 MB)
    first = next(iter(engines.values()))
    task, size = first.task, first.output_size(resolution)
    for pair in pairs:
        try:
            reference = extract(task, pair.input, size).keypoints if task in ("face", "pose") else None
        except WarpaintError as exc:
            reference, ref_error = None, str(exc)
        else:
            ref_error = None
        for name, translator in engines.items():
            row: dict = {"pair": pair.name, "painted_exemplar": pair.painted_exemplar}
            if pair.degenerate_exemplar:
                row["degenerate_exemplar"] = True  # reported, outside the summary (core.eval_pairs.DEGENERATE)
            try:
                if name not in warm:
                    translator.translate(pair.input, pair.exemplar, resolution=resolution, seed=seed)
                    warm.add(name)
                start, cpu = time.perf_counter(), time.process_time()
                result = translator.translate(pair.input, pair.exemplar, resolution=resolution, seed=seed)
                row["seconds"] = round(time.perf_counter() - start, 3)
                row["cpu_seconds"] = round(time.process_time() - cpu, 3)  # all threads: honest on a busy machine
            except WarpaintError as exc:
                row["refused"] = str(exc)
                rows[name].append(row)
                outputs[name].append(f"refused: {exc}")
                print(f"{pair.name} [{name}]: refused: {exc}", file=sys.stderr, flush=True)
                continue
            outputs[name].append(result.image)
            if coherence is None or coherence[0] != pair.exemplar_name:
                coherence = (pair.exemplar_name, PatchCoherence(pair.exemplar))
            row["coherence"] = round(coherence[1](result.image), 3)
            if result.positions is not None:
                # A mirrored map (the exemplar used mirrored) is measured as its mirror image: a mirror is not a fold.
                positions = result.positions * np.array([1, -1], np.float32) if result.mirrored else result.positions
                row["folds"] = round(fold_fraction(positions, result.mapped), 5)
            if reference is not None:
                try:
                    found = extract(task, result.image, size).keypoints
                except NoSubjectError as exc:
                    row["structure_error"] = f"nothing found in the output: {exc}"
                    if task == "pose":
                        row["pck"] = 0.0  # every joint missed (a face's NME has no such value: counted apart)
                else:
                    if task == "face":
                        row["nme"] = round(face_nme(found, reference), 4)
                    else:
                        row["pck"] = round(pose_pck(found, reference), 3)
            elif ref_error is not None:
                row["structure_error"] = f"nothing found in the input: {ref_error}"
            rows[name].append(row)
            print(f"{pair.name} [{name}]: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "pair"),
                  file=sys.stderr, flush=True)
    report = {"task": task, "resolution": size[0], "pairs": len(pairs),
              "engines": {name: {"summary": _summary(rows[name]), "rows": rows[name]} for name in engines}}
    return report, outputs


def _summary(rows: list[dict]) -> dict:
    """The figures the goals are stated in, over one engine's rows (those with a degenerate exemplar apart:
    only named)."""
    degenerate = [row["pair"] for row in rows if row.get("degenerate_exemplar")]
    rows = [row for row in rows if not row.get("degenerate_exemplar")]

    def values(key: str, keep=lambda row: True) -> list[float]:
        return [row[key] for row in rows if key in row and keep(row)]

    def stats(xs: list[float], digits: int = 3) -> dict | None:
        return {"mean": round(float(np.mean(xs)), digits), "max": round(float(np.max(xs)), digits),
                "min": round(float(np.min(xs)), digits)} if xs else None

    photo = values("nme", lambda row: not row["painted_exemplar"])
    return {
        "translated": len(values("seconds")), "refused": len(values("refused")),
        "structure_failed": len(values("structure_error")),
        "nme_photo_exemplars": stats(photo, 4), "nme_painted_exemplars": stats(values(
            "nme", lambda row: row["painted_exemplar"]), 4),
        "pck": stats(values("pck")), "coherence": stats(values("coherence")),
        "folds": stats(values("folds"), 5), "seconds": stats(values("seconds")),
        "cpu_seconds": stats(values("cpu_seconds")),
        "seconds_median": round(float(np.median(values("seconds"))), 3) if values("seconds") else None,
        "degenerate_exemplar_pairs": degenerate,
    }


def cross_sheet(pairs: list, outputs: dict[str, list[np.ndarray | str]], report: dict, tile: int = 160
                ) -> np.ndarray:
    """The contact sheet: per pair, the input as the output frames it (its centre square) | the
    exemplar as given | each engine version's output (or its refusal) with its structure,
    coherence and fold-over figures on a strip below; the row's caption names the pair."""
    from core.imageio import fit_image
    from core.utils.contact_sheet import contact_sheet

    names = list(outputs)
    rows = []
    for i, pair in enumerate(pairs):
        side = min(pair.input.shape[:2])
        cells: list = [fit_image(pair.input, (side, side)), pair.exemplar]
        for name in names:
            row, output = report["engines"][name]["rows"][i], outputs[name][i]
            figures = [f"NME {row['nme']:.3f}" if "nme" in row else f"PCK {row['pck']:.2f}" if "pck" in row else "",
                       f"coh {row['coherence']:.2f}" if "coherence" in row else "",
                       f"folds {row['folds']:.1%}" if "folds" in row else ""]
            cells.append(output if isinstance(output, str) else (output, " ".join(f for f in figures if f)))
        rows.append((pair.name, cells))
    return contact_sheet(["input (centre)", "exemplar"] + names, rows, tile)


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
