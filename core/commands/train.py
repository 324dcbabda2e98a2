"""``python -m core train --config PRESET_OR_YAML --data DIR --out DIR [--steps N] [--resume]``.

Runs as is on one CPU or GPU, and under ``torchrun --nproc_per_node N -m core train ...`` on
several (DistributedDataParallel). The output folder loads with ``Warpaint.from_pretrained``.
"""

from __future__ import annotations

import argparse
import math

from core.vocabulary import TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from core.train.presets import TRAIN_PRESETS

    parser.add_argument("--config", default="pose-256",
                        help=f"training preset ({', '.join(TRAIN_PRESETS)}) or a YAML file (default: pose-256)")
    parser.add_argument("--data", required=True, help="folder of photos (see docs/training.md for the layout)")
    parser.add_argument("--out", required=True, help="output folder: checkpoints, logs, and the trained model")
    parser.add_argument("--steps", type=int, help="total training steps (counting resumed ones)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--task", choices=TASKS, help="condition kind (default: the preset's)")
    parser.add_argument("--pairs", help="list of real exemplars, 'image,ref1,ref2,...' per line "
                                        "(default: DATA/pairs.txt when present)")
    parser.add_argument("--cache", help="where to cache extracted conditions (default: DATA/.warpaint_cache)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1... (default: the GPU of this process, else cpu)")
    group = parser.add_argument_group("overrides of the config")
    group.add_argument("--batch-size", type=int, help="samples per process and step")
    group.add_argument("--lr", type=float, help="base learning rate (G uses lr/2, D lr*2 with TTUR)")
    group.add_argument("--seed", type=int)
    group.add_argument("--resolution", type=int, help="training size in pixels (square)")
    group.add_argument("--checkpoint-every", type=int)
    group.add_argument("--log-every", type=int)
    group.add_argument("--image-every", type=int)
    group.add_argument("--holdout", type=int, help="photos kept out of training for eval-warp")
    group.add_argument("--num-workers", type=int, help="data loading processes")
    group.add_argument("--ema", type=float, help="EMA decay of the generator, e.g. 0.999 (0 = off)")
    group.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), help="mixed precision (auto: on CUDA)")
    group.add_argument("--grad-clip", type=float, help="max gradient norm (0 = off)")
    group.add_argument("--checkpointing", action="store_true", default=None,
                       help="activation checkpointing: several times less memory, about a third more compute")
    group.add_argument("--vgg-weights", help="torchvision's vgg19-dcbb9e9d.pth (default: the torch cache)")


def run(args: argparse.Namespace) -> int:
    from core.train.presets import load_train_config
    from core.train.trainer import train

    _check_rates(args)
    overrides = {name: getattr(args, name) for name in (
        "steps", "batch_size", "lr", "seed", "resolution", "checkpoint_every", "log_every", "image_every",
        "holdout", "num_workers", "ema", "amp", "grad_clip", "vgg_weights", "checkpointing")}
    config = load_train_config(args.config, **overrides)
    result = train(config, args.data, args.out, task=args.task, pairs=args.pairs, resume=args.resume,
                   cache_dir=args.cache, device=args.device)
    if result.evaluation:
        ev = result.evaluation
        print(f"trained to step {result.step} in {result.out} ({result.seconds_per_step:.2f} s/step); "
              f"eval-warp PSNR {ev['psnr']:.2f} dB vs identity {ev['identity_psnr']:.2f} dB")
    return 0


# The float overrides and what each may be (NaN and infinities never).
RATES = (("lr", lambda v: v > 0, "a number above 0"),
         ("ema", lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1"),
         ("grad_clip", lambda v: v >= 0, "a number from 0 (off)"))


def _check_rates(args: argparse.Namespace) -> None:
    """``RATES``, before any data is read (``--lr nan`` ended in torch's ValueError traceback)."""
    from core.errors import InputError

    for name, allowed, words in RATES:
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and allowed(value)):
            raise InputError(f"--{name.replace('_', '-')} {value} is out of range: give {words}.")
