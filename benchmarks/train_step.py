"""Seconds per training iteration (generator step + discriminator step) of a training preset.

Runs ``core.train.step.TrainingStep`` on a synthetic batch (no data folder, no checkpoints), so it
measures the iteration alone. Prints one JSON line per preset:

    .venv/bin/python benchmarks/train_step.py --preset pose-256 pose-512 --batch-size 1
    .venv/bin/python benchmarks/train_step.py --preset pose-512 --device cuda --with-vgg
    .venv/bin/python benchmarks/train_step.py --preset pose-512 --batch-size 1 --amp bf16 --checkpointing

``--with-vgg`` adds the VGG19 losses with a randomly initialised VGG19 (same cost as the real
weights, which this machine does not have).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.train.presets import TRAIN_PRESETS  # noqa: E402
from core.train.step import TrainingStep  # noqa: E402
from core.train.vgg import VGG19  # noqa: E402


def synthetic_batch(channels: int, size: int, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    label = (torch.rand(batch, channels, size, size, generator=g) > 0.9).float()
    rows, cols = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    mirrored = torch.stack([rows, size - 1 - cols]).expand(batch, -1, -1, -1)  # x's pixels in the flipped exemplar
    ones = torch.ones(batch, 1, size, size, device=device)
    return {"condition": label.to(device), "image": image.to(device), "exemplar": image.flip(-1).to(device),
            "exemplar_condition": label.flip(-1).to(device), "sample_weight": torch.ones(batch, device=device),
            "correspondence": mirrored.to(device), "correspondence_mask": ones, "warp_mask": ones}


def bench(preset: str, batch_size: int | None, steps: int, device: torch.device, amp: str, with_vgg: bool,
          checkpointing: bool = False) -> dict:
    cfg = TRAIN_PRESETS[preset].replace(amp=amp, checkpointing=checkpointing)
    if batch_size:
        cfg = cfg.replace(batch_size=batch_size)
    model_cfg = cfg.model_config(label_channels=20, task="pose")  # tiny takes its channels from the data
    vgg = VGG19().to(device) if with_vgg else None
    learner = TrainingStep(cfg, model_cfg, device, vgg=vgg)
    batch = synthetic_batch(model_cfg.label_channels, cfg.size, cfg.batch_size, device)
    times = []
    for i in range(steps + 1):  # the first iteration warms up (allocations, kernel choice)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        learner(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"preset": preset, "resolution": cfg.size, "batch_size": cfg.batch_size, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
            or platform.machine(), "threads": torch.get_num_threads(), "amp": str(learner.amp_dtype),
            "vgg_losses": with_vgg, "checkpointing": checkpointing, "seconds_per_step": round(sec, 3),
            "seconds_per_sample": round(sec / cfg.batch_size, 3), "steps_timed": steps,
            "peak_memory_gib": round(peak / 2**30, 2), "load_average": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", default=["pose-256", "pose-512"], choices=sorted(TRAIN_PRESETS))
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--steps", type=int, default=3, help="timed iterations after one warm-up (median)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"))
    parser.add_argument("--with-vgg", action="store_true", help="include the VGG19 losses (random weights)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing (less memory)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for preset in args.preset:
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        try:
            result = bench(preset, args.batch_size, args.steps, torch.device(args.device), args.amp, args.with_vgg,
                           args.checkpointing)
        except torch.OutOfMemoryError as exc:
            result = {"preset": preset, "device": args.device, "error": f"out of memory: {str(exc)[:200]}"}
        print(json.dumps(result), flush=True)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
