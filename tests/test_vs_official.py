"""benchmarks/vs_official.py: the side-by-side report's shape and flags (tiny model, a stand-in
for the official script; no timing is checked)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
import vs_official  # noqa: E402

FAKE_OFFICIAL = """
import json, os
import sys, time
assert os.environ["REPEATS"] == "1" and sys.argv[1:] == []
t = time.perf_counter(); sum(range(10**6)); dt = time.perf_counter() - t  # one timed "run"
print("----------------- Options ---------------")  # the official script prints its options too
print(json.dumps({"official_seconds_runs": [4.0], "median": 4.0, "min": 4.0, "peak_rss_gib": 0.1,
                  "params_corr": 1000000, "params_g": 2000000, "torch": "x"}))
"""


def test_side_by_side_report(tmp_path, repo_root):
    fake = tmp_path / "bench_official.py"
    fake.write_text(FAKE_OFFICIAL)
    out = tmp_path / "report.json"
    cmd = [sys.executable, "benchmarks/vs_official.py", "--official-script", str(fake), "--preset", "tiny",
           "--resolution", "32", "--threads", "1", "--rounds", "1",
           "--extra", "fp32_lean=--allocator lean", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == report
    assert report["device_name"] and report["amx_used"] in (True, False) and report["bf16_support"]
    assert report["official"]["seconds_per_image"] == 4.0 and report["official"]["parameters_m"] == 3.0
    assert 0 < report["official"]["cpu_seconds_per_image"] < 4.0  # the probe's CPU time of the timed run
    for name in ("fp32", "bf16", "fp32_lean"):
        block = report[name]  # bench's block shape, plus the process peak and the load average
        assert block["seconds_per_image"] > 0 and set(block["stages"]) >= {"encoders", "generator"}
        assert block["peak_memory_gib"] > 0.05 and block["memory"] == "rss_process"
        assert len(block["load_average"]) == 1 and len(block["load_average"][0]) == 2
        ratio = report["ratios"][name]
        assert ratio["speedup"] == pytest.approx(4.0 / block["seconds_per_image"], rel=0.02)
        assert ratio["speedup_cpu_time"] == pytest.approx(
            report["official"]["cpu_seconds_per_image"] / block["cpu_seconds_per_image"], rel=0.05)
        assert ratio["peak_memory"] == pytest.approx(block["peak_memory_gib"] / report["official"]["peak_memory_gib"],
                                                     rel=0.05)
    assert "--allocator" in report["fp32_lean"]["bench_flags"] and "fp32" in report["fp32_lean"]["bench_flags"]
    assert "official" in proc.stderr and "speedup" in proc.stderr  # the table


def test_flags_are_checked():
    assert vs_official.parse_variant("fast=--allocator fast") == ("fast", ["--allocator", "fast"])
    for bad in ("fast", "=--allocator fast", "a b=--x"):
        with pytest.raises(argparse.ArgumentTypeError):
            vs_official.parse_variant(bad)
    args = vs_official.build_parser().parse_args(["--precisions", "bf16", "--extra", "x=--allocator lean"])
    names = [n for n, _ in vs_official.configurations(args)]
    assert names == ["bf16", "x"]


def test_a_missing_official_script_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--skip-official"):
        vs_official.main(["--official-script", str(tmp_path / "nope.py")])


def test_summary_takes_the_fastest_run_and_the_highest_peak():
    official = [{"official_seconds_runs": [10.0], "peak_rss_process_gib": 2.0, "load_average": [1, 1],
                 "params_corr": 1, "params_g": 1},
                {"official_seconds_runs": [8.0], "peak_rss_process_gib": 2.2, "load_average": [1, 1],
                 "params_corr": 1, "params_g": 1}]
    block = {"seconds_runs": [4.0], "seconds_per_image": 4.0, "stages": {"a": 1.0}, "peak_memory_gib": 0.5}
    ours = {"fp32": [{"block": block, "flags": [], "load_average": [2, 2], "peak_rss_process_gib": 1.0},
                     {"block": {**block, "seconds_runs": [5.0], "seconds_per_image": 5.0}, "flags": [],
                      "load_average": [2, 2], "peak_rss_process_gib": 1.1}]}
    report = vs_official.summarize(official, ours)
    assert report["official"]["seconds_per_image"] == 8.0 and report["official"]["peak_memory_gib"] == 2.2
    assert report["fp32"]["seconds_per_image"] == 4.0 and report["fp32"]["median_seconds_per_image"] == 4.5
    assert report["ratios"]["fp32"] == {"speedup": 2.0, "speedup_median": 2.0, "speedup_cpu_time": None,
                                        "peak_memory": 0.5}


def test_amx_used_needs_the_flag_a_lower_precision_and_no_isa_cap(monkeypatch):
    import core.precision as precision

    monkeypatch.setattr(precision, "cpu_features", lambda: {"amx_bf16": True})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert precision.amx_used("cpu", ["fp32", "bf16"]) and not precision.amx_used("cpu", ["fp32"])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert not precision.amx_used("cpu", ["bf16"])
    monkeypatch.setattr(precision, "cpu_features", lambda: {"amx_bf16": False})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert not precision.amx_used("cpu", ["bf16"])
