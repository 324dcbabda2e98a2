"""The allocator modes and the scoped heap reuse (core.environment), read through glibc's own
accounting: ``mallinfo2().hblkhd`` is the bytes held in blocks that are their own mappings."""

from __future__ import annotations

import ctypes
import platform

import pytest
import torch

from core.environment import reuse_heap, set_malloc

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


def test_reuse_heap_takes_mid_sized_blocks_from_the_heap_then_restores_own_mappings():
    assert set_malloc("default")
    try:
        assert _mapped_by(MIB4) >= 4 << 20  # default: a mapping of its own
        with reuse_heap() as active:
            assert active
            with reuse_heap() as inner:  # nested scopes: the outermost one restores
                assert inner and _mapped_by(MIB4) == 0
            assert _mapped_by(MIB4) == 0  # still inside the outer scope: the heap
            big = _mapped_by(lambda: torch.empty(12 << 20))  # 48 MiB: above the heap's limit
            assert big >= 48 << 20
        assert _mapped_by(MIB4) >= 4 << 20  # back to own mappings
    finally:
        set_malloc("default")


def test_reuse_heap_changes_nothing_in_other_modes():
    try:
        assert set_malloc("fast")
        with reuse_heap() as active:
            assert not active
    finally:
        set_malloc("default")
