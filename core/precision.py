"""Device, precision and memory-layout helpers for fast inference on CPU and GPU.

One place decides how a model runs: which device ("auto" picks CUDA, then MPS, then CPU), which
autocast dtype (fp32 = none, bf16, fp16), channels_last convolutions, cached spectral-norm weights
and optional ``torch.compile``. CPU features (AMX, AVX512-BF16) are read at run time, not assumed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from core.environment import HUGE_PAGES_ENV, set_malloc
from core.errors import InputError
from core.vocabulary import PRECISIONS, unknown

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags (as /proc/cpuinfo spells them) that make bf16 matmuls fast
_BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) -> cuda if available, else mps, else cpu; anything else is checked."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was asked for but this torch has no usable GPU: $choose_cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("MPS was asked for but is not available here: $choose_cpu")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_features() -> dict[str, bool]:
    """Which bf16-relevant instruction sets this CPU reports (Linux /proc/cpuinfo; elsewhere
    torch's own capability string). Keys: amx_bf16, amx_tile, avx512_bf16, avx512f, avx2."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if not flags:  # macOS / Windows: fall back to what torch dispatches to
        cap = str(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()).lower()
        flags = {"avx2"} if cap.startswith("avx2") else {"avx512f", "avx2"} if cap.startswith("avx512") else set()
        if platform.machine().lower() in ("arm64", "aarch64"):
            flags.add("arm64")
    return {name: name in flags for name in _BF16_FLAGS}


def bf16_support(device: str | torch.device = "cpu") -> str:
    """How bf16 runs on a device, in words: 'amx', 'avx512_bf16', 'emulated' (slow) or 'cuda'."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return "cuda" if torch.cuda.is_bf16_supported() else "emulated"
    if dev.type != "cpu":
        return dev.type
    feats = cpu_features()
    if feats["amx_bf16"]:
        return "amx"
    return "avx512_bf16" if feats["avx512_bf16"] else "emulated"


def amx_used(device: str | torch.device, precisions) -> bool:
    """Whether a run at these precisions takes AMX tiles: a CPU with amx_bf16, a bf16 (or fp16)
    precision, and oneDNN not capped below AMX (``ONEDNN_MAX_CPU_ISA``)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()
    return (torch.device(device).type == "cpu" and cpu_features()["amx_bf16"]
            and any(p != "fp32" for p in precisions) and (cap == "ALL" or "AMX" in cap))


def full_precision(device: torch.device | str):
    """A context that switches autocast off: similarities, softmax over candidates and the warps
    stay float32 even when the convolutions around them run in bf16 / fp16."""
    kind = torch.device(device).type
    if kind in ("cpu", "cuda", "mps", "xpu"):
        return torch.autocast(device_type=kind, enabled=False)
    return contextlib.nullcontext()


def in_place_inference() -> bool:
    """The one switch between the training and the inference body of a hot path (each module
    asks once per call): True when autograd is not recording, so temporaries may be overwritten
    in place and buffers filled without concatenations; while training, autograd needs the
    plain ops (it keeps their inputs for the backward pass)."""
    return not torch.is_grad_enabled()


def autocast_dtype(precision: str) -> torch.dtype | None:
    """'fp32' -> None (no autocast), 'bf16' -> torch.bfloat16, 'fp16' -> torch.float16."""
    if precision not in _DTYPES:
        raise InputError(unknown("precision", precision, PRECISIONS))
    return _DTYPES[precision]


@contextlib.contextmanager
def inference_context(device: str | torch.device = "cpu", precision: str = "fp32") -> Iterator[None]:
    """Inference mode + autocast at ``precision``.

    Matching (similarities, indices, softmax) stays in fp32 inside the model; autocast only
    lowers convolutions and matmuls of the encoders, the GRU and the generator. On CUDA, fp32
    means true fp32 (TF32 off for the duration).
    """
    dev = torch.device(device)
    dtype = autocast_dtype(precision)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if dtype is not None:
            stack.enter_context(torch.autocast(dev.type, dtype=dtype))
        elif dev.type == "cuda":
            stack.enter_context(_no_tf32())
        yield


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    """True fp32 on CUDA: TF32 convolutions move encoder features by ~1e-3, enough to change
    the official model's discrete matches."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def prepare_model(model: nn.Module, device: str | torch.device = "cpu", channels_last: bool = True,
                  compile: bool = False, allocator: str = "default") -> nn.Module:
    """Move to ``device``, eval mode, channels_last weights (every conv then runs NHWC: ~1.8x on
    CPU, tensor cores on GPU) and, optionally, ``torch.compile`` of the generator and encoders.
    On CPU it also sets the process's allocator mode (``configure_allocator``: fast, lean or
    default). Returns the same model (changed in place)."""
    dev = torch.device(device)
    model.to(dev).eval()
    if dev.type == "cpu":
        configure_allocator(allocator)
    if channels_last and dev.type != "mps":
        model.to(memory_format=torch.channels_last)
    if compile:
        for name in ("generator",):
            if hasattr(model, name):
                setattr(model, name, torch.compile(getattr(model, name), dynamic=False))
        corr = getattr(model, "correspondence", None)
        if corr is not None:
            corr.condition_encoder = torch.compile(corr.condition_encoder, dynamic=False)
            corr.exemplar_encoder = torch.compile(corr.exemplar_encoder, dynamic=False)
    return model


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout for a 4-D tensor (other ranks unchanged)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work (so timings mean something); a no-op on CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def same_layout(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x`` in ``ref``'s memory layout (NHWC when ref is channels_last), so that concatenations
    and convolutions do not convert back and forth."""
    if x.dim() == 4 and ref.dim() == 4 and ref.is_contiguous(memory_format=torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x


ALLOCATOR_MODES = ("default", "fast", "lean", "system")


def configure_allocator(mode: str = "default") -> bool:
    """Choose how this process's C allocator (glibc malloc) treats big tensors on CPU.

    ``default``: every block >= 128 KiB is its own mapping, returned to the system when freed, so
    resident memory is the live tensors and nothing else (the lowest peak: fragmentation cannot
    build up, whatever the sizes); the cost is a page fault per page of each new activation, cut
    ~4x by huge pages where ``THP_MEM_ALLOC_ENABLE=1`` was set before torch started
    (the entry points set it: core.environment).
    ``fast``: big blocks come from the heap and are kept for reuse (no faults, ~1.3x faster at 512;
    peak RSS ~1.9x, and a loop that keeps small results between big temporaries can grow the heap).
    ``lean``: the old name of ``default``. ``system``: glibc as is (a dynamic threshold: mid-sized
    blocks pile up in a fragmented heap). Process-wide (last call wins); False where it does not
    apply (not glibc).
    """
    if mode not in ALLOCATOR_MODES:
        raise InputError(unknown("allocator mode", mode, ALLOCATOR_MODES))
    return set_malloc(mode)


def huge_pages() -> bool:
    """Whether ``THP_MEM_ALLOC_ENABLE`` asks torch for huge pages (it takes effect when it was set
    before torch was imported, as ``python -m core`` does)."""
    return os.environ.get(HUGE_PAGES_ENV, "0") not in ("", "0")
