"""Contact sheets to look at (input | exemplar | output, the default engine at 512): pairs in no evaluation list
(other framings of the same photos, so results are judged on pictures the engine was not tuned on), every app
example, or any pairs given. A refused pair shows a grey square and its message is printed.

    PYTHONPATH=. python benchmarks/look.py unseen out.png [--only 0,3]
    PYTHONPATH=. python benchmarks/look.py examples out.png
    PYTHONPATH=. python benchmarks/look.py pairs out.png --task face astronaut/close-up grace_hopper [IN EX ...]

A picture is an evaluation name (``photo[/variant+variant]``, ``core.eval_pairs``) or a file. JPEG sheets are
fine for docs (quality 85); the image viewer of some tools shows PNG only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

# (task, input, exemplar): framings no evaluation list holds
UNSEEN = (
    ("face", "grace_hopper/rotated", "astronaut/mirrored"),
    ("face", "astronaut/zoomed-out", "grace_hopper/mirrored"),
    ("face", "grace_hopper/close-up", "astronaut/zoomed-out"),
    ("pose", "cameraman/mirrored", "astronaut/rotated"),  # refused: the astronaut shows no legs
    ("pose", "grace_hopper/mirrored", "cameraman"),
    ("pose", "astronaut/rotated", "cameraman/mirrored"),
    ("mask", "grace_hopper", "cameraman"),
    ("mask", "cameraman/mirrored", "grace_hopper"),
    ("mask", "astronaut/close-up", "cameraman"),
    ("mask", "grace_hopper/rotated", "astronaut/mirrored"),
)
ROW_HEIGHT = 300


def _load(name: str) -> np.ndarray:
    from core.eval_pairs import picture
    from core.imageio import load_image

    return load_image(name) if Path(name).is_file() else picture(name)


def _fit(picture: np.ndarray, height: int = ROW_HEIGHT) -> np.ndarray:
    image = Image.fromarray(picture)
    return np.asarray(image.resize((max(1, round(image.width * height / image.height)), height), Image.LANCZOS))


def sheet(pairs: list[tuple[str, str, str]], resolution: int = 512) -> np.ndarray:
    """One row a (task, input, exemplar) pair, through each task's default engine; refusals as grey squares."""
    from core.errors import WarpaintError
    from core.pipeline import Translator

    translators: dict[str, Translator] = {}
    rows = []
    for i, (task, input_name, exemplar_name) in enumerate(pairs):
        translator = translators.setdefault(task, Translator(task))
        source, exemplar = _load(input_name), _load(exemplar_name)
        try:
            result = translator.translate(source, exemplar, resolution=resolution)
            output, said = _fit(result.image), result.messages[1:]
        except WarpaintError as exc:
            output, said = np.full((ROW_HEIGHT, ROW_HEIGHT, 3), 128, np.uint8), [f"refused: {exc}"]
        print(f"{i} {task} {input_name} -> {exemplar_name}: " + " | ".join(said))
        rows.append(np.concatenate([_fit(source), _fit(exemplar), output], axis=1))
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=255)
                           for row in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("unseen", "examples", "pairs"))
    parser.add_argument("out", type=Path)
    parser.add_argument("pictures", nargs="*", help="pairs: input exemplar [input exemplar ...]")
    parser.add_argument("--task", choices=("face", "pose", "mask"), help="pairs: their task")
    parser.add_argument("--only", help="unseen: comma-separated row numbers")
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_intermixed_args(argv)
    if args.kind == "pairs":
        if args.task is None or not args.pictures or len(args.pictures) % 2:
            parser.error("pairs needs --task and an even number of pictures (input exemplar ...)")
        pairs = [(args.task, a, b) for a, b in zip(args.pictures[::2], args.pictures[1::2])]
    elif args.kind == "examples":
        from app.tasks import TABS

        pairs = [(tab.task, a, b) for tab in TABS for a, b in tab.example_paths()]
    else:
        rows = [int(i) for i in args.only.split(",")] if args.only else range(len(UNSEEN))
        pairs = [UNSEEN[i] for i in rows]
    Image.fromarray(sheet(pairs, args.resolution)).save(args.out, quality=85)


if __name__ == "__main__":
    main()
