"""Where a forward's peak resident memory comes from: the process baseline (interpreter, ``import
torch``, the model, the inputs) and, inside one forward, the peak RSS of every interval between two
module hooks (pre / post of every module), so the peak is pinned to a module and the step inside it.

    python benchmarks/memory_profile.py [--resolution 512] [--precision fp32] [--allocator default]
                                        [--threads 1] [--top 15] [--json out.json]

Linux only (reads ``/proc/self/status``; ``/proc/self/clear_refs`` resets the high-water mark at
every hook). Random weights, bench's synthetic inputs, the official preset by default. Prints a
table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.environment import set_process_defaults  # noqa: E402

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def rss_gib() -> tuple[float, float]:
    """(current RSS, peak RSS since the last reset) in GiB."""
    fields = {}
    for line in _STATUS.read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) / 2**20
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak() -> None:
    _CLEAR.write_text("5")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--preset", default="official")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--allocator", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--forwards", type=int, default=2, help="forwards run (each one's peak; the last in detail)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    set_process_defaults()  # as python -m core does, before torch
    baseline = {"interpreter": rss_gib()[0]}
    import torch

    baseline["import torch"] = rss_gib()[0]
    from core.commands.bench import synthetic_inputs
    from core.config import get_preset
    from core.model import Warpaint
    from core.precision import inference_context, prepare_model, to_channels_last

    baseline["import core"] = rss_gib()[0]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = prepare_model(Warpaint(get_preset(args.preset)), "cpu", allocator=args.allocator)
    baseline["model"] = rss_gib()[0]
    size = (args.resolution, args.resolution)
    inputs = [to_channels_last(x) for x in synthetic_inputs(model.config.label_channels, size, 1, 0)]
    baseline["inputs"] = rss_gib()[0]

    intervals: list[tuple[float, float, str]] = []  # (peak, rss at the end, the interval's label)
    last = ["start"]
    names = {m: n or "model" for n, m in model.named_modules()}

    def mark(label: str) -> None:
        now, peak = rss_gib()
        intervals.append((peak, now, f"{last[0]} -> {label}"))
        last[0] = label
        reset_peak()

    for module, name in names.items():
        module.register_forward_pre_hook(lambda m, a, n=name: mark(f"{n} start"))
        module.register_forward_hook(lambda m, a, o, n=name: mark(f"{n} end"))

    out, forward_peaks = None, []
    for _ in range(args.forwards):
        out = None  # one translation at a time
        intervals.clear()
        last[0] = "start"
        reset_peak()
        with inference_context("cpu", args.precision):
            out = model(*inputs)
        mark("returned")
        forward_peaks.append(round(max(intervals)[0], 3))
    after = rss_gib()[0]
    peak = max(intervals)
    top = sorted(set(intervals), reverse=True)[:args.top]
    groups: dict[str, float] = {}  # the highest peak inside each block (module path to depth 3)
    for p, _, label in intervals:
        key = ".".join(label.split(" -> ")[-1].split(" ")[0].split(".")[:3])
        groups[key] = max(groups.get(key, 0.0), p)
    report = {"resolution": args.resolution, "precision": args.precision, "allocator": args.allocator,
              "baseline_gib": {k: round(v, 3) for k, v in baseline.items()}, "forward_peaks_gib": forward_peaks,
              "forward_peak_gib": round(peak[0], 3), "peak_at": peak[2], "after_forward_gib": round(after, 3),
              "blocks": {k: round(v, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
              "top": [[round(p, 3), round(n, 3), label] for p, n, label in top]}
    for key, value in report["baseline_gib"].items():
        print(f"{key:<14}{value:7.3f} GiB", file=sys.stderr)
    print(f"forward peaks {forward_peaks} GiB; the last at {peak[2]}; after it {after:.3f} GiB", file=sys.stderr)
    print("highest peak inside each block:", file=sys.stderr)
    for key, value in list(report["blocks"].items())[:args.top]:
        print(f"  {value:7.3f}  {key}", file=sys.stderr)
    print("highest intervals:", file=sys.stderr)
    for p, n, label in top:
        print(f"  {p:7.3f} (end {n:6.3f})  {label}", file=sys.stderr)
    line = json.dumps(report)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n")
    del out
    return 0


if __name__ == "__main__":
    sys.exit(main())
