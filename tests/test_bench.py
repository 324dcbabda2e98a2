"""``python -m core bench``: one JSON line with fp32 and bf16 side by side, per-stage seconds,
peak memory, PSNR between precisions and the dense-attention ratio (tiny preset, small sizes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from core.__main__ import main
from core.commands.bench import parse_precisions, parse_resolution
from core.errors import InputError


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _bench(capsys, *args: str) -> dict:
    assert main(["bench", "--preset", "tiny", "--threads", "1", "--warmup", "0", "--allocator", "default", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, "bench prints exactly one line"
    return json.loads(lines[0])


def test_fp32_and_bf16_side_by_side(capsys):
    report = _bench(capsys, "--resolution", "32x48", "--repeats", "2")
    assert report["resolution"] == [32, 48] and report["device"] == "cpu" and report["threads"] == 1
    assert report["bf16_support"] in ("amx", "avx512_bf16", "emulated")
    for precision in ("fp32", "bf16"):
        run = report[precision]
        assert len(run["seconds_runs"]) == 2 and run["seconds_per_image"] > 0
        assert run["min_seconds_per_image"] == min(run["seconds_runs"]) and run["cpu_seconds_per_image"] > 0
        assert run["images_per_second"] == pytest.approx(1 / run["seconds_per_image"], rel=0.02)
        assert list(run["stages"]) == ["encoders", "level_8x12", "level_16x24", "level_32x48", "generator"]
        assert sum(run["stages"].values()) <= run["seconds_per_image"] * 1.05 + 0.01
        assert run["peak_memory_gib"] > 0.05 and run["memory"].startswith("rss")
        # no warm-up here: the first call is the first timed run
        assert run["first_call_seconds"] == run["seconds_runs"][0] and run["first_call_cpu_seconds"] > 0
    psnr = report["psnr_vs_fp32"]["bf16"]
    assert set(psnr) == {"warp_8x12", "warp_16x24", "warp_32x48", "image"}
    assert all(v == "inf" or v > 5 for v in psnr.values())  # bf16 moves outputs, but not to noise
    dense = report["dense_finest"]
    assert dense["level"] == "32x48" and dense["extrapolated_from_fraction"] == 1.0
    assert dense["ratio_dense_over_patchmatch"] == pytest.approx(
        dense["seconds"] / dense["patchmatch_seconds"], rel=0.05)
    assert report["speedup_vs_fp32"]["bf16"] > 0


def test_batch_and_dense_extrapolation(capsys):
    report = _bench(capsys, "--resolution", "32", "--precision", "fp32", "--batch-size", "2", "--repeats", "1",
                    "--dense-max-entries", "100000", "--no-channels-last")
    run = report["fp32"]
    assert report["batch_size"] == 2 and report["channels_last"] is False and "bf16" not in report
    assert run["images_per_second"] == pytest.approx(2 / run["seconds_runs"][0], rel=0.02)
    dense = report["dense_finest"]  # 2 * (32*32)**2 entries > 1e5: timed on a band of rows
    assert 0 < dense["extrapolated_from_fraction"] < 1 and dense["seconds"] > 0


def test_options_are_checked():
    assert parse_precisions("both") == ["fp32", "bf16"]
    assert parse_precisions("fp16,fp32") == ["fp32", "fp16"]
    assert parse_precisions("all") == ["fp32", "bf16", "fp16"]
    assert parse_resolution("512") == (512, 512) and parse_resolution("512x384") == (512, 384)
    for bad in ("int8", ""):
        with pytest.raises(InputError):
            parse_precisions(bad)
    with pytest.raises(InputError):
        parse_resolution("big")


def test_a_bad_size_is_a_clear_error(repo_root):
    proc = subprocess.run([sys.executable, "-m", "core", "bench", "--preset", "tiny", "--resolution", "30"],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "multiples of 4" in proc.stderr and proc.stdout == ""


def test_training_free_engine_is_benchable(capsys):
    pytest.importorskip("core.engine")
    report = _bench(capsys, "--engine", "training-free", "--resolution", "64", "--repeats", "1")
    assert report["engine"] == "training-free" and report["fp32"]["seconds_per_image"] > 0


def test_one_translation_at_a_time():
    """A run's outputs are freed before the next run starts: the peak is one translation's."""
    import weakref

    from core.commands.bench import _time_runs

    class Output:
        pass

    outputs, seen_alive = [], []

    def translate():
        seen_alive.append(any(ref() is not None for ref in outputs))
        out = Output()
        outputs.append(weakref.ref(out))
        return out

    _time_runs(translate, torch.device("cpu"), repeats=2, warmup=1)
    assert seen_alive == [False, False, False]
