"""Warpaint beside the official CoCosNet v2 inference, in one run: prints the speed and memory ratios.

Each round runs, one after another (never at the same time: they would share the cores), the
official code (``../shared/bench/official/bench_official.py``: its own warm-up, then one timed
run) and ``python -m core bench`` once per configuration of ours (fp32 and bf16 by default, each
in its own process so that each peak RSS is its own). Rounds interleave, so a busy spell on a
shared machine hits both sides; the report takes the fastest run of each side and gives the ratios
official / ours. Peak RSS is the whole process's (``wait4``'s ``ru_maxrss``) for both sides: the
same measurement, imports and model included. The machine's load average is recorded beside
every run.

    benchmarks/vs_official.sh [--rounds 2] [--extra "fast=--allocator fast"] [--out result.json]

Prints one JSON line on stdout (bench's fp32 / bf16 blocks plus ``official`` and ``ratios``) and
a readable table on stderr. The official code is used for timing only and never imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT.parent / "shared" / "bench" / "official" / "bench_official.py"
OFFICIAL_RESOLUTION = 512  # bench_official.py times 512x512 only


# Runs the official script unchanged, noting the process CPU time at each of its perf_counter()
# calls (two per timed run): its per-run CPU seconds then come out on stderr beside its wall times.
_CPU_PROBE = """
import json, runpy, sys, time
wall, marks = time.perf_counter, []
def probe():
    marks.append(time.process_time())
    return wall()
time.perf_counter = probe
sys.argv = [sys.argv[1]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("CPU_PROBE " + json.dumps([b - a for a, b in zip(marks[::2], marks[1::2])]), file=sys.stderr)
"""


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'name=--flag value ...' -> (name, bench arguments). The name labels the block in the report."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=BENCH ARGS, e.g. \"fast=--allocator fast\"")
    return name, shlex.split(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (the fastest run counts)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both sides")
    parser.add_argument("--resolution", default=str(OFFICIAL_RESOLUTION),
                        help="ours (the official side is always 512x512; ratios need 512)")
    parser.add_argument("--preset", default="official", help="our model preset (official = nef 32, ngf 64)")
    parser.add_argument("--precisions", default="fp32,bf16", help="our configurations, one process each")
    parser.add_argument("--extra", type=parse_variant, action="append", default=[],
                        help='another configuration of ours: NAME=BENCH ARGS (e.g. "fp32_fast=--precision fp32 '
                             '--allocator fast"); repeatable')
    parser.add_argument("--bench-args", default="", help="arguments added to every run of ours")
    parser.add_argument("--official-script", default=str(OFFICIAL), help="the official timing script")
    parser.add_argument("--skip-official", action="store_true", help="ours only (no ratios)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for both sides")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one process")
    parser.add_argument("--out", default=None, help="also write the JSON report to this file")
    return parser


def configurations(args) -> list[tuple[str, list[str]]]:
    """(name, bench arguments) for each configuration of ours, in run order."""
    common = ["--preset", args.preset, "--resolution", args.resolution, "--threads", str(args.threads),
              "--warmup", "1", "--repeats", "1", "--no-dense", *shlex.split(args.bench_args)]
    runs = [(p, [*common, "--precision", p]) for p in (x.strip() for x in args.precisions.split(",")) if p]
    # an extra configuration without --precision runs fp32 (one precision per process)
    runs += [(name, [*common, *([] if "--precision" in extra else ["--precision", "fp32"]), *extra])
             for name, extra in args.extra]
    names = [n for n, _ in runs]
    if len(set(names)) != len(names) or not runs:
        raise SystemExit(f"configuration names must be unique and at least one: {names}")
    return runs


def run_process(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[dict, float, str]:
    """Run one benchmark process; return (its last JSON line, peak RSS in GiB, its stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        deadline = time.perf_counter() + timeout
        while True:  # wait4 gives this child's own rusage (ru_maxrss: KiB on Linux)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                raise RuntimeError(f"{shlex.join(cmd)} timed out after {timeout:.0f} s")
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [ln for ln in stdout.splitlines() if ln.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit {proc.returncode}): {stderr.strip()[-2000:]}")
    return json.loads(lines[-1]), usage.ru_maxrss / 2**20, stderr


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def summarize(official_runs: list[dict], ours_runs: dict[str, list[dict]]) -> dict:
    """Combine the rounds: fastest run of each side, its stages, the highest peak, and the ratios."""
    report: dict = {}
    if official_runs:
        seconds = [s for r in official_runs for s in r["official_seconds_runs"]]
        report["official"] = {
            "seconds_per_image": round(min(seconds), 3), "seconds_runs": seconds,
            "median_seconds_per_image": round(statistics.median(seconds), 3),
            "cpu_seconds_per_image": _min([c for r in official_runs for c in r.get("cpu_seconds_runs", [])]),
            "peak_memory_gib": round(max(r["peak_rss_process_gib"] for r in official_runs), 3),
            "load_average": [r["load_average"] for r in official_runs],
            "parameters_m": round((official_runs[0]["params_corr"] + official_runs[0]["params_g"]) / 1e6, 2),
            "torch": official_runs[0].get("torch")}
    for name, runs in ours_runs.items():
        best = min(runs, key=lambda r: r["block"]["seconds_per_image"])
        seconds = [s for r in runs for s in r["block"]["seconds_runs"]]
        block = dict(best["block"])
        block.update(seconds_per_image=round(min(seconds), 3), seconds_runs=seconds,
                     cpu_seconds_per_image=_min([r["block"].get("cpu_seconds_per_image") for r in runs]),
                     median_seconds_per_image=round(statistics.median(seconds), 3),
                     peak_memory_gib=round(max(r["peak_rss_process_gib"] for r in runs), 3),
                     memory="rss_process", peak_memory_in_run_gib=max(r["block"]["peak_memory_gib"] for r in runs),
                     load_average=[r["load_average"] for r in runs], bench_flags=best["flags"])
        report[name] = block
    if "official" in report:
        off = report["official"]
        report["ratios"] = {name: {
            "speedup": round(off["seconds_per_image"] / report[name]["seconds_per_image"], 2),
            "speedup_median": round(off["median_seconds_per_image"] / report[name]["median_seconds_per_image"], 2),
            # CPU seconds (all threads) per image: steadier than wall time when others share the cores
            "speedup_cpu_time": _ratio(off["cpu_seconds_per_image"], report[name]["cpu_seconds_per_image"]),
            "peak_memory": round(report[name]["peak_memory_gib"] / off["peak_memory_gib"], 2)}
            for name in ours_runs}
    return report


def _min(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(min(values), 3) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def table(report: dict) -> str:
    """The report as a small text table (stderr)."""
    def num(x, unit=""):
        return f"{x:.2f}{unit}" if isinstance(x, (int, float)) else "-"

    names = [k for k, v in report.items() if isinstance(v, dict) and "seconds_per_image" in v]
    rows = [f"{'':<14}{'s/image':>9}{'median':>9}{'CPU s':>9}{'peak RSS':>10}{'speedup':>9}{'CPU-time':>9}"
            f"{'memory':>8}"]
    for name in names:
        block, ratio = report[name], report.get("ratios", {}).get(name, {})
        rows.append(f"{name:<14}{num(block['seconds_per_image']):>9}{num(block['median_seconds_per_image']):>9}"
                    f"{num(block.get('cpu_seconds_per_image')):>9}{num(block['peak_memory_gib'], 'G'):>10}"
                    f"{num(ratio.get('speedup'), 'x'):>9}{num(ratio.get('speedup_cpu_time'), 'x'):>9}"
                    f"{num(ratio.get('peak_memory'), 'x'):>8}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1:
        raise SystemExit("--rounds must be >= 1")
    official = Path(args.official_script)
    if not args.skip_official and not official.is_file():
        raise SystemExit(f"the official timing script is not at {official}: pass --official-script "
                         "or --skip-official")
    # the same OpenMP waiting on both sides: ours waits passively (core.environment); the official
    # script would otherwise spin (libgomp's default), which a shared machine bills as CPU time
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), REPEATS="1", PYTHONUNBUFFERED="1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    official_runs, ours_runs = [], {name: [] for name, _ in configurations(args)}
    head: dict = {}
    for rnd in range(args.rounds):
        if not args.skip_official:
            load = _load()
            result, peak, stderr = run_process([args.python, "-c", _CPU_PROBE, official.name], official.parent,
                                               env, args.timeout)
            probe = [ln for ln in stderr.splitlines() if ln.startswith("CPU_PROBE ")]
            cpu = json.loads(probe[-1].split(" ", 1)[1]) if probe else []
            result.update(peak_rss_process_gib=round(peak, 3), load_average=[load, _load()],
                          cpu_seconds_runs=[round(c, 3) for c in cpu[-len(result["official_seconds_runs"]):]])
            official_runs.append(result)
            print(f"round {rnd}: official {min(result['official_seconds_runs']):.2f} s, load {load}",
                  file=sys.stderr, flush=True)
        for name, flags in configurations(args):
            load = _load()
            result, peak, _ = run_process([args.python, "-m", "core", "bench", *flags], ROOT, env, args.timeout)
            precision = next(k for k in ("fp32", "bf16", "fp16") if k in result)
            ours_runs[name].append({"block": result[precision], "flags": flags, "load_average": [load, _load()],
                                    "peak_rss_process_gib": round(peak, 3)})
            head = head or result
            print(f"round {rnd}: {name} {result[precision]['seconds_per_image']:.2f} s, load {load}",
                  file=sys.stderr, flush=True)
    keep = ("resolution", "device", "device_name", "threads", "cpu_count", "bf16_support", "amx_used", "huge_pages",
            "cpu_features", "torch", "nef", "ngf", "levels", "iterations", "matching")
    report = {"benchmark": "vs_official", "rounds": args.rounds, "official_resolution": OFFICIAL_RESOLUTION,
              **{k: head.get(k) for k in keep}, **summarize(official_runs, ours_runs)}
    line = json.dumps(report)
    print(line)
    if args.out:
        Path(args.out).write_text(line + "\n")
    print(table(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
