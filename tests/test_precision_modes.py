"""Precision choices between fp32 and bf16: split-bf16 convolution math (core.fpmath) and which
encoders run lowered under autocast (learned matching: yes; official matching: no)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.config import get_preset
from core.fpmath import conv_math
from core.model import Warpaint
from core.precision import inference_context


def _conv_case(groups: int = 1):
    torch.manual_seed(0)
    x = torch.randn(1, 8, 20, 20).contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 8 // groups, 3, 3)
    b = torch.randn(8)
    exact = F.conv2d(x.double(), w.double(), b.double(), padding=1, groups=groups)
    return x, w, b, exact


def _rel(y, exact):
    return float((y.double() - exact).abs().max() / exact.abs().max())


@pytest.mark.parametrize("groups", [1, 2])
def test_bf16x3_is_near_fp32_and_plain_bf16_is_not(groups):
    x, w, b, exact = _conv_case(groups)
    with conv_math("bf16x3"):
        split = F.conv2d(x, w, b, padding=1, groups=groups)
    with conv_math("bf16_inputs"):
        rounded = F.conv2d(x, w, b, padding=1, groups=groups)
    fp32 = F.conv2d(x, w, b, padding=1, groups=groups)
    assert split.dtype == torch.float32 and split.shape == fp32.shape
    assert _rel(split, exact) < 5e-5 < _rel(rounded, exact)  # three products vs one rounded one
    assert _rel(fp32, exact) < 1e-5
    torch.testing.assert_close(rounded, F.conv2d(x.bfloat16().float(), w.bfloat16().float(), b, padding=1,
                                                 groups=groups), rtol=1e-5, atol=1e-5)


def test_conv_math_leaves_other_ops_and_dtypes_alone():
    x, w, b, _ = _conv_case()
    with conv_math("bf16x3"):
        assert torch.equal(torch.matmul(x[0, 0], x[0, 1]), torch.matmul(x[0, 0], x[0, 1]))
        low = F.conv2d(x.bfloat16(), w.bfloat16(), padding=1)  # already lowered: untouched
    assert low.dtype == torch.bfloat16 and torch.equal(low, F.conv2d(x.bfloat16(), w.bfloat16(), padding=1))
    with pytest.raises(ValueError, match="bf16x3"):
        with conv_math("int8"):
            pass


def test_conv_math_leaves_autocast_convolutions_alone():
    """Under bf16 autocast an fp32 convolution is already one bf16 product: not three."""
    x, w, b, _ = _conv_case()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = F.conv2d(x, w, b, padding=1)
        with conv_math("bf16x3"):
            inside = F.conv2d(x, w, b, padding=1)
    assert inside.dtype == plain.dtype == torch.bfloat16 and torch.equal(inside, plain)


@pytest.mark.parametrize(("matching", "lowered"), [("learned", True), ("official", False)])
def test_encoders_are_lowered_for_learned_matching_only(matching, lowered, one_thread):
    torch.manual_seed(0)
    model = Warpaint(get_preset("tiny", label_channels=4, matching=matching)).eval()
    cond, ex = torch.rand(1, 4, 32, 32), torch.rand(1, 3, 32, 32) * 2 - 1
    with inference_context("cpu", "bf16"):
        feats, _ = model.correspondence.encode(cond, ex, cond)
    assert (feats[-1].dtype == torch.bfloat16) is lowered
    with inference_context("cpu", "bf16"):  # an explicit choice wins
        kept, _ = model.correspondence.encode(cond, ex, cond, lower_precision=False)
        lowered, _ = model.correspondence.encode(cond, ex, cond, lower_precision=True)
    assert kept[-1].dtype == torch.float32 and lowered[-1].dtype == torch.bfloat16


@pytest.mark.parametrize(("matching", "lowered"), [("learned", True), ("official", False)])
def test_the_gru_is_lowered_for_learned_matching_only(matching, lowered, one_thread):
    torch.manual_seed(0)
    model = Warpaint(get_preset("tiny", label_channels=4, matching=matching)).eval()
    seen = []
    model.correspondence.patch_match.refine_net.register_forward_hook(lambda m, i, out: seen.append(out[0].dtype))
    cond, ex = torch.rand(1, 4, 32, 32), torch.rand(1, 3, 32, 32) * 2 - 1
    with inference_context("cpu", "bf16"):
        out = model(cond, ex, cond)
    assert seen and all((d == torch.bfloat16) is lowered for d in seen)
    assert out.image.dtype == torch.float32
