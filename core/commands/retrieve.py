"""``python -m core retrieve --data DIR --top-k 20``: rank exemplars for every training photo.

Writes ``DIR/pairs.txt`` (or ``--out``), which ``python -m core train`` reads by default: each
line is ``image,ref1,...,refK``, most similar first. VGG19 features when torchvision's weights
are found, otherwise label histograms of the (cached) conditions.
"""

from __future__ import annotations

import argparse

from core.limits import RESOLUTION
from core.vocabulary import TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of photos (the training data)")
    parser.add_argument("--top-k", type=int, default=20, help="exemplars listed per photo (default 20)")
    parser.add_argument("--task", choices=TASKS, default="pose",
                        help="condition kind, for label histograms (default pose)")
    parser.add_argument("--method", choices=("auto", "vgg", "labels"), default="auto",
                        help="auto: VGG19 when its weights are found, else label histograms")
    parser.add_argument("--size", type=int, default=256, help="picture size used for the descriptors")
    parser.add_argument("--out", help="list file to write (default DATA/pairs.txt)")
    parser.add_argument("--vgg-weights", help="torchvision's vgg19-dcbb9e9d.pth (default: the torch cache)")
    parser.add_argument("--cache", help="condition cache folder (default DATA/.warpaint_cache)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from core.errors import InputError
    from core.imageio import fit_image, load_image, to_tensor
    from core.train.data import PAIR_LIST, ConditionCache, find_images
    from core.train.retrieval import retrieve, write_list
    from core.train.vgg import VGG19, find_vgg_weights

    if args.top_k < 1:
        raise InputError("--top-k must be at least 1.")
    RESOLUTION.narrowed(maximum=1024, name="--size").check(args.size)  # --size 0: "no condition" for every photo
    data = Path(args.data)
    items = find_images(data)
    size = (args.size, args.size)
    vgg = None
    if args.method != "labels":
        weights = find_vgg_weights(args.vgg_weights)
        if weights is None and args.method == "vgg":
            raise InputError("VGG19 weights (vgg19-dcbb9e9d.pth) not found: pass --vgg-weights PATH or use "
                             "--method labels.")
        if weights is not None:
            vgg = VGG19.from_file(weights)
        else:
            print("VGG19 weights not found: ranking by label histograms instead.")
    cache = None
    if vgg is None:
        cache = ConditionCache(data, args.task, size, args.cache)
        for rel in tqdm(items, desc=f"conditions ({args.task})", unit="photo"):
            if cache.status(rel) == "missing":
                cache.build(rel)
        usable = [rel for rel in items if cache.status(rel) == "ok"]
        if len(usable) < len(items):
            print(f"{len(items) - len(usable)} photos have no {args.task} condition and are left out.")
        items = usable
    if len(items) < 2:
        raise InputError(f"Retrieval needs at least two usable photos in {data}.")

    def photo(rel: str):
        return to_tensor(fit_image(load_image(data / rel), size))[0]

    ranks, method = retrieve(items, args.top_k, photo=photo, cache=cache, vgg=vgg)
    path = write_list(Path(args.out) if args.out else data / PAIR_LIST, items, ranks, method)
    print(f"wrote {path}: {len(items)} photos, {ranks.shape[1]} exemplars each, by {method} similarity")
    return 0
