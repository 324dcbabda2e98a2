"""CUDA code paths agree with CPU: the same official-mode model (random weights, 128x128) on both
devices; prints one JSON line (coarsest-warp error, share of equal indices per level, image error)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.commands.bench import synthetic_inputs  # noqa: E402
from core.config import get_preset  # noqa: E402
from core.model import Warpaint  # noqa: E402
from core.precision import inference_context, prepare_model  # noqa: E402


def main() -> int:
    torch.manual_seed(0)
    cpu = Warpaint(get_preset("official", nef=8, ngf=8))
    gpu = Warpaint(cpu.config)
    gpu.load_state_dict(cpu.state_dict())
    prepare_model(cpu, "cpu", allocator="default")
    prepare_model(gpu, "cuda")
    inputs = synthetic_inputs(20, (128, 128), 2, 0)
    report = {}
    with inference_context("cpu"):
        a = cpu(*inputs)
    for precision in ("fp32", "bf16", "fp16"):
        with inference_context("cuda", precision):
            b = gpu(*(x.cuda() for x in inputs))
        row = {"warp_coarsest_max": float((a.levels[0].warp - b.levels[0].warp.cpu()).abs().max()),
               "image_mean_abs": float((a.image - b.image.cpu()).abs().mean())}
        for i, (la, lb) in enumerate(zip(a.levels[1:], b.levels[1:]), 1):
            row[f"indices_equal_level{i}"] = round(float((la.indices == lb.indices.cpu()).float().mean()), 4)
        report[precision] = row
    print(json.dumps({"gpu_check": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
