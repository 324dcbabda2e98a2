"""The fused Triton scoring kernel (CUDA's candidate scoring) against the plain row gather.

Runs in Triton's CPU interpreter, so it needs Triton installed (CUDA builds of torch bring it;
the CPU wheel does not, and then the test is skipped)."""

import os

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":  # Triton's CPU interpreter; read when Triton is first imported
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from core import corr, corr_triton  # noqa: E402


@pytest.mark.parametrize("batch,candidates,dtype", [(1, 16, torch.int64), (2, 48, torch.int32)])
def test_fused_scores_equal_the_row_gather(batch, candidates, dtype):
    torch.manual_seed(0)
    c, h, w = 32, 9, 11  # 99 pixels: not a multiple of the kernel's block
    left = corr.normalize_features(torch.randn(batch, c, h, w, device=DEVICE)).flatten(2)
    right = corr.normalize_features(torch.randn(batch, c, h, w, device=DEVICE)).flatten(2)
    index = torch.randint(0, h * w, (batch, h * w, candidates), dtype=dtype, device=DEVICE)
    flat = corr._flat_batch(index, h * w).reshape(batch * h * w, candidates)
    got = corr_triton.score_rows(corr._rows(left), corr._rows(right), flat).view(batch, h * w, candidates)
    torch.testing.assert_close(got, corr._score_gather(left, right, index, 40), atol=1e-6, rtol=1e-6)


def test_fused_scores_refuse_other_widths():
    with pytest.raises(ValueError, match="power-of-two"):
        corr_triton.score_rows(torch.zeros(4, 24), torch.zeros(4, 24), torch.zeros(4, 3, dtype=torch.int64))
