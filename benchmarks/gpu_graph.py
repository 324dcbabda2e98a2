"""GPU: a whole translation replayed from one CUDA graph, beside eager.

At 512 the PatchMatch levels are about a thousand small kernels whose launch and Python costs
dominate the GPU time (docs/performance.md, "GPU"). A CUDA graph records them once and replays
them with one launch. This script times eager and graph replay on the official preset (random
weights, synthetic inputs: the timing) and on the official fixture (real weights and inputs:
the fidelity, against eager and against the recorded official outputs). One JSON line per run:

    python3 benchmarks/gpu_graph.py [--fixture DIR] [--precision fp32,bf16] [--resolution 512]
                                    [--scoring gather,fused]

``--scoring`` compares the candidate scoring paths (``core.corr.FUSED_GPU_SCORING``): the row
gather, and the fused Triton kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import corr  # noqa: E402
from core.commands.bench import synthetic_inputs  # noqa: E402
from core.config import get_preset  # noqa: E402
from core.model import Warpaint  # noqa: E402
from core.precision import autocast_dtype, prepare_model, to_channels_last  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "cocosnet2_official"


@contextlib.contextmanager
def graph_safe_context(precision: str):
    """Inference mode and autocast without the weight-cast cache (a cached cast made outside the
    capture would be a dangling input of the graph); true fp32 (TF32 off) for fp32."""
    dtype = autocast_dtype(precision)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if dtype is not None:
            stack.enter_context(torch.autocast("cuda", dtype=dtype, cache_enabled=False))
        else:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float | None:
    mse = float(((a.float().cpu() - b.float().cpu()) ** 2).mean())
    return round(10 * math.log10(4 / mse), 2) if mse > 0 else None


def run_case(name: str, model: Warpaint, inputs: tuple, precision: str, repeats: int, warmup: int,
             orders=None, reference: torch.Tensor | None = None) -> dict:
    """Eager then graph replay of one forward; their seconds, and how far their images are apart."""
    report = {"case": name, "precision": precision, "scoring": "fused" if corr.FUSED_GPU_SCORING else "gather"}

    def forward():
        return model(*inputs, orders=orders).image

    with graph_safe_context(precision):
        for _ in range(warmup):
            eager = forward()
        torch.cuda.reset_peak_memory_stats()
        report["eager_s"] = round(_median_seconds(forward, repeats), 4)
        report["eager_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        eager = forward().clone()
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
                for _ in range(3):
                    forward()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            start = time.perf_counter()
            with torch.cuda.graph(graph):
                static_image = forward()
            report["capture_s"] = round(time.perf_counter() - start, 2)
            graph.replay()
            torch.cuda.synchronize()
            report["graph_s"] = round(_median_seconds(graph.replay, repeats), 4)
            report["speedup"] = round(report["eager_s"] / report["graph_s"], 2)
            report["graph_vs_eager_max_abs"] = float((static_image.float() - eager.float()).abs().max())
            if reference is not None:
                report["graph_psnr_vs_official"] = _psnr(static_image, reference)
            del graph, static_image
        except Exception as exc:  # report why capture failed instead of stopping the other cases
            report["graph_error"] = f"{type(exc).__name__}: {exc}"[:800]
            report["graph_trace"] = traceback.format_exc()[-1500:]
        if reference is not None:
            report["eager_psnr_vs_official"] = _psnr(eager, reference)
    torch.cuda.empty_cache()
    return report


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--precision and --resolution, shared with gpu_profile.py."""
    parser.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16")
    parser.add_argument("--resolution", type=int, default=512)


def official_on_cuda(resolution: int) -> tuple[Warpaint, tuple]:
    """The official preset (random weights, seed 0) on CUDA with synthetic channels_last inputs at
    ``resolution``; exits with an error line where no CUDA GPU is seen."""
    if not torch.cuda.is_available():
        print(json.dumps({"error": "needs a CUDA GPU"}))
        raise SystemExit(1)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = prepare_model(Warpaint(get_preset("official")), "cuda").requires_grad_(False)
    size = (resolution, resolution)
    return model, tuple(to_channels_last(x.cuda()) for x in synthetic_inputs(model.config.label_channels, size, 1, 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fixture", default=str(FIXTURE), help="official fixture folder ('' to skip)")
    add_model_arguments(parser)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--scoring", default="gather,fused", help="candidate scoring paths to compare")
    args = parser.parse_args()
    model, inputs = official_on_cuda(args.resolution)
    device = torch.device("cuda")
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}), flush=True)
    cases = [(p, s) for s in args.scoring.split(",") if s for p in args.precision.split(",") if p]
    for precision, scoring in cases:
        corr.FUSED_GPU_SCORING = scoring == "fused"
        print(json.dumps(run_case(f"official preset {args.resolution}", model, inputs, precision,
                                  args.repeats, args.warmup)), flush=True)
    del model, inputs

    folder = Path(args.fixture) if args.fixture else None
    if folder is not None and (folder / "netCorr.pth").is_file():
        from core.official import load_official

        model = prepare_model(load_official(folder / "netCorr.pth", folder / "netG.pth"), device).requires_grad_(False)
        inp = torch.load(folder / "inputs.pt", weights_only=True)
        ref = torch.load(folder / "outputs.pt", weights_only=True)
        draws = json.loads((folder / "draws.json").read_text())["draws"]
        orders = [[d["horizontal_first"] for d in draws if d["level"] == lv] for lv in (1, 2, 3)]
        inputs = tuple(to_channels_last(inp[k].to(device)) for k in ("seg_map", "ref_img", "ref_seg_map"))
        for precision, scoring in cases:
            corr.FUSED_GPU_SCORING = scoring == "fused"
            print(json.dumps(run_case("official fixture", model, inputs, precision, args.repeats, args.warmup,
                                      orders=orders, reference=ref["fake_image"])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
