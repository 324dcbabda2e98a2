"""GPU: where one 512 translation's GPU time goes, kernel by kernel (torch.profiler).

The official preset with random weights and synthetic inputs, after warm-up. Prints the stage
times and the kernels that take most GPU time, per precision, so the next lever (a fused scoring
kernel, fewer copies) is chosen from a measurement:

    python3 benchmarks/gpu_profile.py [--precision fp32,bf16] [--resolution 512] [--rows 25]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_graph import add_model_arguments, official_on_cuda  # noqa: E402

from core.precision import inference_context, synchronize  # noqa: E402
from core.timing import record_stages  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    model, inputs = official_on_cuda(args.resolution)
    device = torch.device("cuda")
    for precision in [p for p in args.precision.split(",") if p]:
        with inference_context(device, precision):
            for _ in range(3):
                model(*inputs)
            with record_stages() as stages:
                model(*inputs)
            synchronize(device)
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                model(*inputs)
                synchronize(device)
        print(f"== {precision} {args.resolution}: stages {json.dumps({k: round(v, 4) for k, v in stages.items()})}")
        print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=args.rows,
                                        max_name_column_width=70))
    return 0


if __name__ == "__main__":
    sys.exit(main())
