"""Candidate scoring on CUDA as one fused Triton kernel: gather and dot product in registers.

``corr.score_indices`` on a GPU otherwise gathers whole feature rows into a (chunk, M, C) tensor
and multiplies it: at 512 that gather was 53 % of a bf16 translation's GPU time on an H200
(docs/performance.md, "GPU"). Here each program loads a block of query rows once and, per
candidate, the C channels of the indexed exemplar row, and writes only the (N, M) scores.
Inference only (no autograd); used when Triton is installed and the tensors are on CUDA.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU wheels of torch come without Triton
    triton = None

BLOCK_ROWS = 64  # query pixels per program


def available(device: torch.device) -> bool:
    """True where the fused kernel can run: Triton installed and a CUDA tensor (or Triton's
    CPU interpreter, ``TRITON_INTERPRET=1``, which the tests use)."""
    return triton is not None and (device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1")


if triton is not None:
    @triton.jit
    def _score_rows(query_ptr, rows_ptr, index_ptr, out_ptr, n, m,
                    C: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        at = pid * BLOCK + tl.arange(0, BLOCK)
        inside = at < n
        ch = tl.arange(0, C)
        query = tl.load(query_ptr + at[:, None].to(tl.int64) * C + ch[None, :], mask=inside[:, None], other=0.0)
        for j in range(m):
            idx = tl.load(index_ptr + at.to(tl.int64) * m + j, mask=inside, other=0).to(tl.int64)
            row = tl.load(rows_ptr + idx[:, None] * C + ch[None, :], mask=inside[:, None], other=0.0)
            tl.store(out_ptr + at.to(tl.int64) * m + j, tl.sum(query * row, axis=1), mask=inside)


def score_rows(queries: torch.Tensor, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """queries (N, C) and rows (Nr, C) float32, index (N, M) into rows -> (N, M) dot products.
    C must be a power of two (the matching features' width: 32 for the official model)."""
    n, c = queries.shape
    if c & (c - 1):
        raise ValueError(f"fused scoring needs a power-of-two feature width, not {c}")
    m = index.shape[-1]
    out = torch.empty(n, m, device=queries.device, dtype=torch.float32)
    grid = (triton.cdiv(n, BLOCK_ROWS),)
    _score_rows[grid](queries.contiguous(), rows.contiguous(), index.contiguous(), out, n, m,
                      C=c, BLOCK=BLOCK_ROWS)
    return out
