"""``python -m core bench``: time a model at one resolution and print one JSON line.

Reports, per precision (fp32 and bf16 side by side by default): seconds per image (median of
``--repeats`` runs after warm-up), images per second, per-stage seconds (encoders, each
correspondence level, generator) and peak memory (RSS on CPU, allocator peak on GPU); the PSNR of
every level's warp and of the image against fp32; and the dense-attention alternative at the
finest level, so PatchMatch's gain is a ratio. Random weights and synthetic inputs are fine for
timing (``--checkpoint`` times a real model folder instead).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import time
from pathlib import Path

from core.errors import InputError
from core.vocabulary import CONV_MATH_MODES, ENGINE_KINDS

PRECISION_CHOICES = ("fp32", "bf16", "fp16", "both", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", type=str, default="512",
                        help="N (square) or HxW; sides must be multiples of the preset's stride")
    parser.add_argument("--preset", default="official", help="model preset (official, pose-512, tiny...)")
    parser.add_argument("--checkpoint", default=None, help="time this model folder instead of random weights")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", default="both",
                        help="fp32, bf16, fp16, both (= fp32,bf16), all, or a comma list (e.g. fp32,fp16)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--engine", default="learned", choices=ENGINE_KINDS)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per precision (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (allocations, autotuning)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-channels-last", action="store_true", help="keep convolutions in NCHW")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoders and generator")
    parser.add_argument("--allocator", default="default", choices=["default", "fast", "lean", "system"],
                        help="CPU allocator mode (core.precision.configure_allocator): default (every big "
                             "block returned when freed: lowest peak), fast (freed memory kept for reuse: "
                             "fewer page faults, higher peak), lean (= default), system (glibc as is)")
    parser.add_argument("--lower-encoders", action="store_true",
                        help="encoders in bf16/fp16 too (faster; the matches move: docs/performance.md)")
    parser.add_argument("--conv-math", default="fp32", choices=CONV_MATH_MODES,
                        help="math of the convolutions left in fp32 (core.fpmath): bf16x3 runs the official "
                             "model's fp32 encoders and ConvGRU as three bf16 products (AMX tiles), matches kept")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense-attention comparison")
    parser.add_argument("--dense-max-entries", type=float, default=2**32,
                        help="above this many similarity entries the dense time is extrapolated from a sample")
    parser.add_argument("--seed", type=int, default=0)


def parse_precisions(text: str) -> list[str]:
    """'both' -> [fp32, bf16]; 'all' -> [fp32, bf16, fp16]; 'a,b' -> [a, b] (fp32 first when present)."""
    named = {"both": ["fp32", "bf16"], "all": ["fp32", "bf16", "fp16"]}
    items = named.get(text) or [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in items if p not in ("fp32", "bf16", "fp16")]
    if bad or not items:
        raise InputError(f"--precision {text!r}: use one of {', '.join(PRECISION_CHOICES)} or a comma list")
    return sorted(dict.fromkeys(items), key=lambda p: p != "fp32")


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().replace("x", " ").split()]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise InputError(f"--resolution {text!r}: give N or HxW (e.g. 512 or 512x384)")
    return parts[0], parts[1]


# -- memory ---------------------------------------------------------------------------------
def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: "5" resets VmHWM (the peak RSS) of this process
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def _peak_gib(device) -> tuple[float, str]:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "cuda_allocated"
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20, "rss"
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30, "rss_process_max"


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# -- inputs ---------------------------------------------------------------------------------
def synthetic_inputs(label_channels: int, size: tuple[int, int], batch: int, seed: int):
    """Smooth random fields (not white noise, so matching has structure): condition and exemplar
    condition in [0, 1], exemplar in [-1, 1]; the exemplar condition is the condition shifted."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    h, w = size

    def field(channels: int) -> torch.Tensor:
        coarse = torch.rand(batch, channels, max(h // 32, 2), max(w // 32, 2), generator=gen)
        return F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)

    condition = field(label_channels)
    shift = max(h // 16, 1)
    exemplar_condition = torch.roll(condition, shifts=(shift, -shift), dims=(2, 3))
    exemplar = field(3) * 2 - 1
    return condition, exemplar, exemplar_condition


def _psnr(a, b, peak_to_peak: float = 2.0) -> float | None:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return None if math.isnan(mse) else (math.inf if mse == 0 else 10 * math.log10(peak_to_peak**2 / mse))


def _json_number(x):
    if isinstance(x, float):
        if math.isinf(x):
            return "inf"
        return round(x, 4)
    return x


# -- runs -----------------------------------------------------------------------------------
def _time_runs(fn, device, repeats: int, warmup: int):
    """Run fn() warmup + repeats times; return (last outputs, (wall seconds, CPU seconds, the first
    call's (wall, CPU) seconds: with --compile, the compilation), median stages, peak)."""
    from core.precision import synchronize
    from core.timing import record_stages

    out, first = None, None
    for _ in range(warmup):
        out = None  # one translation at a time: the last one's outputs are freed before the next
        start, cpu_start = time.perf_counter(), time.process_time()
        out = fn()
        synchronize(device)
        first = first or (time.perf_counter() - start, time.process_time() - cpu_start)
    seconds, cpu_seconds, stages = [], [], []
    _reset_peak(device)
    for _ in range(repeats):
        out = None
        with record_stages() as times:
            start, cpu_start = time.perf_counter(), time.process_time()
            out = fn()
            synchronize(device)
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
        stages.append(times)
    names = list(stages[0]) if stages else []
    median_stages = {n: statistics.median(s.get(n, 0.0) for s in stages) for n in names}
    first = first or (seconds[0], cpu_seconds[0])
    return out, (seconds, cpu_seconds, first), median_stages, _peak_gib(device)


def _learned_model(args, device):
    import torch

    from core.config import get_preset
    from core.model import Warpaint
    from core.precision import prepare_model

    if args.checkpoint:
        model = Warpaint.from_pretrained(args.checkpoint, device=device)
    else:
        try:
            config = get_preset(args.preset)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from exc
        torch.manual_seed(args.seed)
        model = Warpaint(config)
    return prepare_model(model, device, channels_last=not args.no_channels_last, compile=args.compile,
                         allocator=args.allocator)


def _bench_learned(args, device, size, precisions):
    from core.fpmath import conv_math
    from core.precision import inference_context, to_channels_last

    model = _learned_model(args, device)
    config = model.config
    try:
        model.check_size(size)
    except ValueError as exc:
        raise InputError(f"--resolution: {exc}") from exc
    layout = (lambda x: x) if args.no_channels_last else to_channels_last
    # the NCHW originals are not kept beside their channels_last copies (43 MiB at 512)
    condition, exemplar, exemplar_condition = (
        layout(x.to(device)) for x in synthetic_inputs(config.label_channels, size, args.batch_size, args.seed))
    report, outputs = {}, {}
    for precision in precisions:
        def run(precision=precision):
            with inference_context(device, precision), conv_math(args.conv_math):
                # without --lower-encoders: the model's choice (lowered for learned matching only)
                return model(condition, exemplar, exemplar_condition, lower_encoders=args.lower_encoders or None)
        out, timings, stages, (peak, kind) = _time_runs(run, device, args.repeats, args.warmup)
        report[precision] = _summary(timings, stages, peak, kind, args.batch_size)
        outputs[precision] = [lv.warp.float().cpu() for lv in out.levels] + [out.image.float().cpu()]
        del out
    report["psnr_vs_fp32"] = _psnr_table(outputs, [lv.shape[-2:] for lv in outputs[precisions[0]][:-1]])
    report["dense_finest"] = None
    if not args.no_dense and config.levels > 1:
        with inference_context(device, "fp32"):
            cond, ex = model.correspondence.encode(condition, exemplar, exemplar_condition)
            left, right = model.correspondence.match_features(cond, ex)
            del cond, ex
            stages = report[precisions[0]]["stages"]  # fp32 when it was run (it is sorted first)
            report["dense_finest"] = _dense(left[-1], right[-1], exemplar, config.temperature, device,
                                            args.dense_max_entries, stages)
            del left, right
    report["parameters_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    return config, report


def _dense(left, right, value, temperature, device, max_entries, stages):
    """Time dense attention at the finest level (extrapolated from a sample of query rows when the
    similarity matrix has more than ``max_entries`` entries) and compare with PatchMatch's time."""
    from core.corr import dense_attention
    from core.precision import synchronize

    b, _, h, w = left.shape
    entries = (h * w) ** 2 * b
    fraction = 1.0
    query = left
    if entries > max_entries:  # dense attention is linear in the query rows: time a band of them
        rows = max(1, int(h * max_entries / entries))
        fraction = rows / h
        query = left[:, :, :rows]
    synchronize(device)
    start = time.perf_counter()
    dense_attention(query, right, value, temperature)
    synchronize(device)
    seconds = (time.perf_counter() - start) / fraction
    level = stages.get(f"level_{h}x{w}")
    return {"level": f"{h}x{w}", "seconds": round(seconds, 3), "extrapolated_from_fraction": round(fraction, 5),
            "similarity_gib_if_materialised": round(entries * 4 / 2**30, 2),
            "patchmatch_seconds": None if level is None else round(level, 3),
            "ratio_dense_over_patchmatch": None if not level else round(seconds / level, 2)}


def _summary(timings, stages, peak, kind, batch):
    seconds, cpu_seconds, (first, first_cpu) = timings
    per_batch = statistics.median(seconds)
    return {"seconds_per_image": round(per_batch / batch, 3), "images_per_second": round(batch / per_batch, 3),
            "seconds_runs": [round(s, 3) for s in seconds], "min_seconds_per_image": round(min(seconds) / batch, 3),
            # process CPU time (all threads): steadier than wall time on a machine shared with others
            "cpu_seconds_per_image": round(statistics.median(cpu_seconds) / batch, 3),
            "stages": {k: round(v, 3) for k, v in stages.items()},
            # the process's first call (warm-up or timed): with --compile it includes the compilation
            "first_call_seconds": round(first, 3), "first_call_cpu_seconds": round(first_cpu, 3),
            "peak_memory_gib": round(peak, 3), "memory": kind}


def _psnr_table(outputs, level_sizes):
    table = {}
    base = outputs.get("fp32")
    if base is None:
        return table
    names = [f"warp_{h}x{w}" for h, w in level_sizes] + ["image"]
    for precision, outs in outputs.items():
        if precision != "fp32":
            table[precision] = {n: _json_number(_psnr(a, b)) for n, a, b in zip(names, outs, base)}
    return table


def _bench_training_free(args, device, size, precisions):
    try:
        from core.engine import TrainingFreeEngine
    except ImportError as exc:
        raise InputError(f"the training-free engine (core/engine.py) is not available here: {exc}") from exc
    from core.conditions import from_keypoints
    from core.precision import configure_allocator

    # a standing figure (COCO-18 keypoints, x/y as fractions of the width/height) and a shifted copy
    figure = [(.5, .12), (.5, .22), (.4, .22), (.36, .36), (.34, .48), (.6, .22), (.64, .36), (.66, .48),
              (.44, .5), (.44, .68), (.44, .86), (.56, .5), (.56, .68), (.56, .86), (.48, .1), (.52, .1),
              (.46, .11), (.54, .11)]
    h, w = size

    def keypoints(dx: float):
        import numpy as np
        return np.array([[(x + dx) * w, y * h, 1.0] for x, y in figure], dtype=np.float32)

    source = from_keypoints("pose", keypoints(0.0), size)
    target = from_keypoints("pose", keypoints(0.06), size)
    _, exemplar, _ = synthetic_inputs(3, size, 1, args.seed)
    exemplar = exemplar.to(device)
    if device.type == "cpu":
        configure_allocator(args.allocator)
    engine = TrainingFreeEngine()
    report = {}
    for precision in [p for p in precisions if p == "fp32"] or ["fp32"]:
        def run():
            return engine([source], exemplar, [target])
        out, timings, _, (peak, kind) = _time_runs(run, device, args.repeats, args.warmup)
        report[precision] = _summary(timings, dict(out.seconds), peak, kind, 1)
    report["note"] = "the training-free engine runs in fp32 (no convolutions to lower); batch 1"
    return None, report


def run(args: argparse.Namespace) -> int:
    import torch

    from core.precision import amx_used, bf16_support, cpu_features, huge_pages, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1 or args.batch_size < 1 or args.warmup < 0:
        raise InputError("--repeats and --batch-size must be >= 1, --warmup >= 0")
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed sizes: let cuDNN pick the fastest kernels
    size = parse_resolution(args.resolution)
    precisions = parse_precisions(args.precision)
    if args.engine == "learned":
        config, runs = _bench_learned(args, device, size, precisions)
    else:
        config, runs = _bench_training_free(args, device, size, precisions)
    report = {
        "engine": args.engine, "preset": None if args.checkpoint else args.preset, "checkpoint": args.checkpoint,
        "resolution": list(size), "batch_size": args.batch_size, "device": str(device),
        "device_name": _device_name(device), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "bf16_support": bf16_support(device),
        "amx_used": amx_used(device, precisions), "huge_pages": huge_pages(),
        "cpu_features": cpu_features() if device.type == "cpu" else None, "torch": torch.__version__,
        "channels_last": not args.no_channels_last, "compile": args.compile, "allocator": args.allocator,
        "lower_encoders": args.lower_encoders or (config is not None and config.matching != "official"),
        "conv_math": args.conv_math, "repeats": args.repeats,
        "warmup": args.warmup,
    }
    if config is not None:
        report.update(nef=config.nef, ngf=config.ngf, levels=config.levels, iterations=config.iterations,
                      matching=config.matching)
    report.update(runs)
    fast = [p for p in precisions if p != "fp32" and p in runs]
    if "fp32" in runs and fast:
        report["speedup_vs_fp32"] = {p: round(runs["fp32"]["seconds_per_image"] / runs[p]["seconds_per_image"], 2)
                                     for p in fast}
    print(json.dumps(report))
    return 0
