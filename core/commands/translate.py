"""``python -m core translate``: one input or a folder of inputs, in the looks of an exemplar.

    python -m core translate --task pose --input me.jpg --exemplar painting.jpg --output out.png \\
        [--warps-dir warps/]
    python -m core translate --task pose --input-dir poses/ --exemplar painting.jpg --output-dir out/ \\
        [--batch-size 4]

``--engine auto`` (default) uses a learned checkpoint for the task when one is found under
checkpoints/, otherwise the training-free engine; the engine used is always printed.
In folder mode a file that fails (corrupt, no person found...) is skipped and listed at the
end; every output is written inside --output-dir (and --warps-dir), nowhere else.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from core.errors import InputError, WarpaintError
from core.vocabulary import ENGINES, MIRROR_HELP, MIRROR_MODES, PRECISIONS, TASKS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    single = parser.add_argument_group("one picture")
    single.add_argument("--input", type=Path, help="the input photo (or, with --input-is-condition, a condition)")
    single.add_argument("--output", type=Path, help="where to write the result (PNG, JPEG, WebP...)")
    batch = parser.add_argument_group("a folder")
    batch.add_argument("--input-dir", type=Path, help="translate every picture in this folder")
    batch.add_argument("--output-dir", type=Path, help="results go here, one per input, named like the input")
    batch.add_argument("--batch-size", type=int, default=1, help="pairs run together (learned engine; default 1)")
    parser.add_argument("--exemplar", type=Path, required=True,
                        help="exemplar photo; in folder mode also a folder (each input takes the exemplar "
                             "with its own file stem, or the folder's only picture)")
    parser.add_argument("--input-is-condition", action="store_true",
                        help="the input is a ready skeleton picture / face sketch / painted ADE20K mask")
    parser.add_argument("--engine", default="auto", choices=ENGINES)
    parser.add_argument("--engine-version", type=int, default=None, choices=(1, 2),
                        help="training-free engine: 2 (charts, full resolution, compositing; the default) or 1 "
                             "(descriptor matching, for comparisons)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="map what can be mapped when the exemplar lacks a part the input needs (e.g. no "
                             "face) instead of refusing")
    parser.add_argument("--mirror", default="auto", choices=MIRROR_MODES, help=MIRROR_HELP)
    parser.add_argument("--checkpoint", help="a model folder (config.json + model.safetensors), or a Hugging Face "
                                             "Hub id org/name[@revision] (cached; HF_HUB_OFFLINE=1 honoured)")
    parser.add_argument("--warps-dir", type=Path,
                        help="also write every level's warp, flow picture and confidence map here")
    parser.add_argument("--resolution", type=int, default=None, help="square output size (default: 512 or the model's)")
    parser.add_argument("--iterations", type=int, default=None, help="PatchMatch iterations per level")
    parser.add_argument("--temperature", type=float, default=None, help="softmax temperature of the matching")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="learned engine: autocast precision (bf16 is fast on CPUs with AMX)")


def run(args: argparse.Namespace) -> int:
    from core.pipeline import Translator

    folder_mode = args.input_dir is not None or args.output_dir is not None
    if folder_mode:
        if args.input is not None or args.output is not None:
            raise InputError("Use either --input/--output (one picture) or --input-dir/--output-dir (a folder).")
        if args.input_dir is None or args.output_dir is None:
            raise InputError("Folder mode needs both --input-dir and --output-dir.")
    elif args.input is None or args.output is None:
        raise InputError("Give --input and --output (or --input-dir and --output-dir for a folder).")
    _check_numbers(args)
    if folder_mode:
        _check_folder_writable(args)
    else:
        _check_writable(args)
    _check_warps_dir(args)
    translator = Translator(args.task, engine=args.engine, checkpoint=args.checkpoint, device=args.device,
                            precision=args.precision, version=args.engine_version)
    print(f"engine: {translator.engine_name}", file=sys.stderr)
    options = dict(resolution=args.resolution, iterations=args.iterations, temperature=args.temperature,
                   seed=args.seed, source_is_condition=args.input_is_condition, allow_partial=args.allow_partial,
                   mirror=args.mirror)
    if folder_mode:
        return _run_folder(translator, args, options)
    return _run_one(translator, args, options)


def _check_numbers(args: argparse.Namespace) -> None:
    """The app's number checks (core.limits), before any model is loaded; the CLI may use their full ranges."""
    from core.limits import BATCH_SIZE, ITERATIONS, RESOLUTION, SEED, TEMPERATURE

    for limit in (RESOLUTION, ITERATIONS, TEMPERATURE):
        limit.check_optional(getattr(args, limit.name))
    SEED.check(args.seed)
    BATCH_SIZE.check(args.batch_size)


def _run_one(translator, args: argparse.Namespace, options: dict) -> int:
    from core.imageio import PALETTE_MODES, load_image, load_image_and_mode, save_image

    source, mode = load_image_and_mode(args.input)
    result = translator.translate(source, load_image(args.exemplar), source_palette=mode in PALETTE_MODES, **options)
    save_image(args.output, result.image)
    if args.warps_dir is not None:
        write_warps(result, args.warps_dir)
    for message in result.messages[1:]:
        print(f"note: {message}", file=sys.stderr)
    print(f"wrote {args.output} ({result.engine}, {sum(result.seconds.values()):.2f} s)")
    return 0


def _run_folder(translator, args: argparse.Namespace, options: dict) -> int:
    from tqdm import tqdm

    from core.imageio import PALETTE_MODES, load_image, load_image_and_mode, save_image

    inputs = _pictures(args.input_dir, "--input-dir")
    exemplar_for = _exemplar_chooser(args.exemplar)
    out_dir = args.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    failed: list[str] = []
    written = 0
    cache: dict[Path, np.ndarray] = {}
    bar = tqdm(total=len(inputs), unit="img", desc=f"translate ({translator.engine_name})", file=sys.stderr)
    for start in range(0, len(inputs), args.batch_size):
        chunk = inputs[start:start + args.batch_size]
        sources, palettes, exemplars, names = [], [], [], []
        for path in chunk:
            try:
                ex_path = exemplar_for(path)
                if ex_path not in cache:
                    cache.clear()
                    cache[ex_path] = load_image(ex_path)
                source, mode = load_image_and_mode(path)
                sources.append(source)
                palettes.append(mode in PALETTE_MODES)
                exemplars.append(cache[ex_path])
                names.append(path)
            except WarpaintError as exc:
                failed.append(f"{path.name}: {exc}")
                bar.update(1)
        if not names:
            continue
        try:
            results = translator.translate_batch(sources, exemplars, source_palettes=palettes, **options)
        except WarpaintError as exc:  # a whole-batch failure (e.g. checkpoint): every pair of it failed
            results = [exc] * len(names)
        for path, result in zip(names, results):
            if isinstance(result, WarpaintError):
                failed.append(f"{path.name}: {result}")
            else:
                target = _inside(root, path.stem + ".png")
                save_image(target, result.image)
                for message in result.messages[1:]:  # as one-picture mode's notes, named by picture
                    bar.write(f"note: {path.name}: {message}", file=sys.stderr)
                if args.warps_dir is not None:
                    write_warps(result, _inside(args.warps_dir.resolve(), path.stem))
                written += 1
            bar.update(1)
    bar.close()
    print(f"wrote {written} of {len(inputs)} pictures to {out_dir} ({translator.engine_name})")
    if failed:
        print(f"skipped {len(failed)}:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def write_warps(result, folder: Path) -> None:
    """Every level's warp, flow picture and confidence map, plus the final ones and both conditions."""
    from core.imageio import save_image

    folder.mkdir(parents=True, exist_ok=True)
    save_image(folder / "input_condition.png", result.input_condition)
    save_image(folder / "exemplar_condition.png", result.exemplar_condition)
    save_image(folder / "warped.png", result.warped)
    if result.flow is not None:
        save_image(folder / "flow.png", result.flow)
    if result.confidence is not None:
        save_image(folder / "confidence.png", _grey(result.confidence))
    for i, level in enumerate(result.levels):
        h, w = level.size
        stem = f"level{i}_{w}x{h}"
        save_image(folder / f"{stem}_warp.png", level.warp)
        save_image(folder / f"{stem}_flow.png", level.flow)
        save_image(folder / f"{stem}_confidence.png", _grey(level.confidence))


def _grey(confidence: np.ndarray) -> np.ndarray:
    return (np.clip(confidence, 0, 1) * 255).round().astype(np.uint8)


def _pictures(folder: Path, flag: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{flag} {folder} is not a folder.")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"{flag} {folder} holds no pictures ({', '.join(IMAGE_SUFFIXES)}).")
    return found


def _exemplar_chooser(exemplar: Path):
    """Input path -> exemplar path: the one file, or the folder's picture with the input's stem."""
    if exemplar.is_file():
        return lambda _: exemplar
    pictures = _pictures(exemplar, "--exemplar")
    if len(pictures) == 1:
        return lambda _: pictures[0]
    by_stem = {p.stem: p for p in pictures}

    def choose(path: Path) -> Path:
        if path.stem not in by_stem:
            raise InputError(f"no exemplar named {path.stem}.* in {exemplar}")
        return by_stem[path.stem]

    return choose


def _inside(root: Path, name: str) -> Path:
    """``root / name``, refusing anything that would land outside ``root``."""
    target = (root / name).resolve()
    if target.parent != root:
        raise InputError(f"refusing to write {target}: outside {root}")
    return target


def _check_writable(args: argparse.Namespace) -> None:
    """One picture, before any model is loaded: the result can be written, over neither input."""
    from core.commands.paths import PICTURE_FORMATS, check_writable

    check_writable(args.output, PICTURE_FORMATS, "--output", inputs=(args.input, args.exemplar))


def _check_folder_writable(args: argparse.Namespace) -> None:
    """Folder mode, before any model is loaded: --output-dir is no file, and no result (``<stem>.png`` there)
    would land on an input picture or an exemplar."""
    out_dir = args.output_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--output-dir {out_dir} is a file; give a folder (made if missing).")
    inputs = _pictures(args.input_dir, "--input-dir")
    exemplars = [args.exemplar] if not args.exemplar.is_dir() else _pictures(args.exemplar, "--exemplar")
    protected = {p.resolve(): p for p in (*inputs, *exemplars)}
    root = out_dir.resolve()
    for path in inputs:
        name = path.stem + ".png"
        if (root / name).resolve() in protected:
            raise InputError(f"--output-dir {out_dir}: the result for {path.name} ({name}) would overwrite an "
                             "input or exemplar picture; choose another output folder.")


WARP_FILE = re.compile(r"(input_condition|exemplar_condition|warped|flow|confidence"
                       r"|level\d+_\d+x\d+_(warp|flow|confidence))\.png")  # what write_warps writes


def _check_warps_dir(args: argparse.Namespace) -> None:
    """Both modes, before any model is loaded: --warps-dir, when given, is no file; one picture: no picture the
    warps are written as (``WARP_FILE``) is the input, the exemplar or the result."""
    if args.warps_dir is None:
        return
    if args.warps_dir.exists() and not args.warps_dir.is_dir():
        raise InputError(f"--warps-dir {args.warps_dir} is a file; give a folder (made if missing).")
    folder = args.warps_dir.resolve()
    for flag in ("--input", "--exemplar", "--output"):
        path = getattr(args, flag[2:])
        if path is not None and path.resolve().parent == folder and WARP_FILE.fullmatch(path.name):
            raise InputError(f"--warps-dir {args.warps_dir} would overwrite {flag} {path} with a warp picture of "
                             "the same name; choose another folder.")
