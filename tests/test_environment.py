"""The allocator modes and the scoped heap reuse (core.environment), read through glibc's own
accounting: ``mallinfo2().hblkhd`` is the bytes held in blocks that are their own mappings."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.environment import release_heap, reuse_heap, set_malloc

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc malloc only")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mapped_bytes() -> int:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblkhd


def _mapped_by(make) -> int:
    """Bytes of own mappings that ``make()``'s tensor added while it is alive."""
    before = _mapped_bytes()
    x = make()
    grown = _mapped_bytes() - before
    del x
    return grown


MIB4 = lambda: torch.empty(1 << 20)  # noqa: E731  (4 MiB: its own mapping in the default mode)


def _heap_probe():
    """Run in a fresh process (a clean heap: no free chunk left by other tests to serve the probes)."""
    assert set_malloc("default")
    assert _mapped_by(MIB4) >= 4 << 20  # default: a mapping of its own
    with reuse_heap() as active:
        assert active
        with reuse_heap() as inner:  # nested scopes: the outermost one restores
            assert inner and _mapped_by(MIB4) == 0
        assert _mapped_by(MIB4) == 0  # still inside the outer scope: the heap
        big = _mapped_by(lambda: torch.empty(12 << 20))  # 48 MiB: above the heap's limit
        assert big >= 48 << 20
    assert _mapped_by(lambda: torch.empty(3 << 20)) >= 12 << 20  # back to own mappings (a size the heap lacks)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _release_probe():
    """After a scope, a big block served from the heap's bins stays resident once freed, until
    ``release_heap``."""
    assert set_malloc("default")
    with reuse_heap():
        block = torch.ones(6 << 20)  # 24 MiB from the heap, touched
        pin = torch.ones(64 << 10)  # 256 KiB above it: the block is freed inside the heap, not at its top
        del block
    x = torch.ones(5 << 20)  # 20 MiB: served from the freed block (own mappings restored: bins come first)
    del x
    resident = _rss_mib()
    assert release_heap()
    assert resident - _rss_mib() >= 16, (resident, _rss_mib())
    del pin


def test_release_heap_hands_back_freed_heap_blocks():
    code = "import tests.test_environment as t; t._release_probe(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_reuse_heap_takes_mid_sized_blocks_from_the_heap_then_restores_own_mappings():
    code = "import tests.test_environment as t; t._heap_probe(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_reuse_heap_changes_nothing_in_other_modes():
    try:
        assert set_malloc("fast")
        with reuse_heap() as active:
            assert not active
    finally:
        set_malloc("default")


def test_band_loops_reuse_the_heap_with_the_same_numbers(monkeypatch):
    """The PatchMatch bands and the modulations' bands run inside ``reuse_heap`` (CPU inference),
    and the outputs are bit-identical to a run without it."""
    import contextlib

    import torch.nn.functional as F

    import core.layers
    import core.patchmatch
    import core.update
    from core.config import get_preset
    from core.model import Warpaint
    from core.precision import inference_context, prepare_model

    torch.manual_seed(0)
    model = prepare_model(Warpaint(get_preset("tiny", label_channels=4, matching="official")), "cpu")
    model.correspondence.patch_match.chunk = 64  # bands of 2 rows at 32 x 32
    g = torch.Generator().manual_seed(0)
    cond = F.interpolate(torch.rand(1, 4, 8, 8, generator=g), size=(32, 32), mode="bilinear")
    exemplar = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(32, 32), mode="bilinear") * 2 - 1
    inputs = (cond, exemplar, torch.roll(cond, shifts=(3, -2), dims=(2, 3)))
    entered = {"patchmatch": 0, "layers": 0}

    def counting(name):
        @contextlib.contextmanager
        def scope():
            entered[name] += 1
            with reuse_heap() as active:
                assert active
                yield active
        return scope

    released = []
    monkeypatch.setattr(core.update, "release_heap", lambda: released.append(1))
    monkeypatch.setattr(core.patchmatch, "reuse_heap", counting("patchmatch"))
    monkeypatch.setattr(core.layers, "reuse_heap", counting("layers"))
    with inference_context("cpu", "fp32"):
        with_heap = model(*inputs)
    assert entered["patchmatch"] > 0 and entered["layers"] > 0 and released  # the GRU step releases first
    for module in (core.patchmatch, core.layers):
        monkeypatch.setattr(module, "reuse_heap", contextlib.nullcontext)
    with inference_context("cpu", "fp32"):
        plain = model(*inputs)
    assert torch.equal(with_heap.image, plain.image)
    assert all(torch.equal(a.indices, b.indices) for a, b in zip(with_heap.levels[1:], plain.levels[1:]))
