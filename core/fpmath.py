"""Convolution math modes between fp32 and bf16, for parts of a model whose outputs decide
discrete choices (the official model's encoders and ConvGRU decide its integer matches).

- ``bf16x3``: each fp32 operand is split into a bf16 head and a bf16 tail (x = xh + xl) and the
  convolution is summed from three bf16 products, xh*wh + xh*wl + xl*wh, each accumulated in fp32
  (oneDNN's fp32 "bf16 math mode"). Relative error ~1e-5 (fp32: ~1e-6; plain bf16: ~4e-3), so
  matches stay where fp32 puts them, while the products run on AMX bf16 tiles where the CPU has
  them (3 AMX products still cost less than one fp32 convolution there). On a CPU without AMX,
  oneDNN runs the products in fp32: correct, but ~3x the fp32 convolution time.
- ``bf16_inputs``: one product of bf16-rounded operands accumulated in fp32, what oneDNN's bf16
  math mode does to a plain fp32 convolution (emulated here, so its fidelity can be measured on
  any CPU; with AMX ``torch.backends.mkldnn.conv.fp32_precision = "bf16"`` runs it natively).
- ``fp32``: unchanged.

Use as a context around a sub-network: ``with conv_math("bf16x3"): features = encoder(x)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from core.vocabulary import CONV_MATH_MODES

_CONVS = {F.conv2d, torch.conv2d}


def _head_tail(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x = head + tail (approximately, to ~2**-16 relative) with both parts exact in bf16, kept as fp32."""
    head = x.bfloat16().float()
    return head, (x - head).bfloat16().float()


@contextlib.contextmanager
def _bf16_math() -> Iterator[None]:
    """oneDNN may take bf16 products for fp32 convolutions (exact here: the operands are bf16 values)."""
    conv = torch.backends.mkldnn.conv
    saved = conv.fp32_precision
    conv.fp32_precision = "bf16"
    try:
        yield
    finally:
        conv.fp32_precision = saved


class _ConvMath(TorchFunctionMode):
    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func not in _CONVS or len(args) < 2 or args[0].dtype != torch.float32 or args[0].device.type != "cpu"
                or torch.is_autocast_enabled("cpu")):  # autocast already lowers this convolution: leave it be
            return func(*args, **kwargs)
        x, weight, rest = args[0], args[1], args[2:]
        groups = kwargs.get("groups", rest[4] if len(rest) > 4 else 1)
        xh, xl = _head_tail(x)
        wh, wl = _head_tail(weight)
        with _bf16_math():
            if self.mode == "bf16_inputs":
                return func(xh, wh, *rest, **kwargs)
            if groups == 1:  # one convolution over [xh | xh | xl] with [wh | wl | wh]: the three products
                layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
                stacked = torch.cat([xh, xh, xl], 1)
                if layout is not None:
                    stacked = stacked.contiguous(memory_format=layout)
                return func(stacked, torch.cat([wh, wl, wh], 1), *rest, **kwargs)
            out = func(xh, wh, *rest, **kwargs)
            bias_free = list(rest)
            if bias_free:
                bias_free[0] = None
            kw = {k: (None if k == "bias" else v) for k, v in kwargs.items()}
            return out.add_(func(xh, wl, *bias_free, **kw)).add_(func(xl, wh, *bias_free, **kw))


@contextlib.contextmanager
def conv_math(mode: str = "fp32") -> Iterator[None]:
    """Run the fp32 CPU convolutions inside with ``mode`` (see the module docstring)."""
    if mode not in CONV_MATH_MODES:
        raise ValueError(f"unknown convolution math {mode!r}: choose one of {', '.join(CONV_MATH_MODES)}")
    if mode == "fp32":
        yield
        return
    with _ConvMath(mode):
        yield
