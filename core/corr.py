"""Similarity between matching features: dense attention (coarsest level), candidate scoring
(PatchMatch levels) and sampling at candidate positions. All chunked so memory stays bounded."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.precision import full_precision, in_place_inference

FUSED_GPU_SCORING = True  # CUDA: score candidates with core.corr_triton's fused kernel when Triton is there
DENSE_CHUNK_ELEMENTS = 1 << 24  # similarity entries per chunk of dense attention (64 MB in fp32)


def normalize_features(x: torch.Tensor, eps: float = 1e-10, center: bool = False) -> torch.Tensor:
    """Unit length over channels, optionally after removing the channel mean (matching features)."""
    if center:
        x = x - x.mean(dim=1, keepdim=True)
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + eps)


def pixel_grid(h: int, w: int, device, dtype=torch.float32) -> torch.Tensor:
    """(2, H, W): row and column of every pixel."""
    rows = torch.arange(h, device=device, dtype=dtype).view(h, 1).expand(h, w)
    cols = torch.arange(w, device=device, dtype=dtype).view(1, w).expand(h, w)
    return torch.stack([rows, cols])


@dataclass
class DenseMatch:
    """Result of dense attention from every query pixel to every key pixel."""

    warp: torch.Tensor  # (B, V, H, W): attention-weighted values
    top_index: torch.Tensor  # (B, K, H, W) long: flat key index (row * Wk + col) of the top-K
    top_weight: torch.Tensor  # (B, K, H, W): their attention weights
    confidence: torch.Tensor  # (B, 1, H, W): expected cosine similarity under the attention
    cycle: torch.Tensor | None = None  # (B, V, Hk, Wk): warp mapped back to the key grid


def dense_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, temperature: float,
                    topk: int = 1, cycle: bool = False) -> DenseMatch:
    """softmax(q^T k / T) v over all key pixels, in chunks of query pixels.

    query (B, C, H, W) and key (B, C, Hk, Wk) unit-length features; value (B, V, Hk, Wk).
    ``cycle`` also warps the result back (training's cycle loss; needs the full matrix).
    """
    with full_precision(query.device):
        return _dense_attention(query.float(), key.float(), value.float(), temperature, topk, cycle)


def dense_chunk_rows(batch: int, keys: int) -> int:
    """Query pixels per chunk so that one chunk's (batch, rows, keys) similarities hold at most
    ``DENSE_CHUNK_ELEMENTS`` entries."""
    return max(1, DENSE_CHUNK_ELEMENTS // max(batch * keys, 1))


def _dense_attention(query, key, value, temperature, topk, cycle) -> DenseMatch:
    b, c, h, w = query.shape
    q = query.flatten(2).transpose(1, 2)  # (B, N, C)
    k = key.flatten(2)  # (B, C, Nk)
    v = value.flatten(2).transpose(1, 2)  # (B, Nk, V)
    n, nk = q.shape[1], k.shape[2]
    topk = min(topk, nk)
    in_place = in_place_inference()
    rows = n if cycle else dense_chunk_rows(b, nk)
    # outputs allocated once and filled chunk by chunk (no small allocations between big ones)
    warp = q.new_empty(b, n, v.shape[-1])
    top_weight, top_index = q.new_empty(b, n, topk), torch.empty(b, n, topk, dtype=torch.long, device=q.device)
    confidence = q.new_empty(b, n, 1)
    logits = None
    for s in range(0, n, rows):
        logits = torch.matmul(q[:, s:s + rows], k).div_(temperature)  # (B, n', Nk)
        attn = F.softmax(logits, dim=-1)
        warp[:, s:s + rows] = torch.matmul(attn, v)
        top_weight[:, s:s + rows], top_index[:, s:s + rows] = torch.topk(attn, topk, dim=-1)
        expected = attn.mul_(logits) if in_place else attn * logits  # softmax backward needs attn
        confidence[:, s:s + rows] = expected.sum(-1, keepdim=True) * temperature
        del attn, expected

    def to_map(x):  # (B, N, X) -> (B, X, H, W)
        return x.transpose(1, 2).reshape(b, -1, h, w)
    cyc = None
    if cycle:  # one chunk: logits is the whole (B, N, Nk) matrix
        back = F.softmax(logits.transpose(1, 2), dim=-1)  # (B, Nk, N)
        cyc = torch.matmul(back, warp).transpose(1, 2).reshape(b, -1, *key.shape[-2:])
    return DenseMatch(to_map(warp), to_map(top_index), to_map(top_weight), to_map(confidence).clamp(0, 1), cyc)


def score_indices(left: torch.Tensor, right: torch.Tensor, index: torch.Tensor, temperature: float,
                  chunk: int = 16384) -> torch.Tensor:
    """Similarity of each pixel with candidate pixels given by flat indices.

    left (B, C, N) and right (B, C, Nr) features; index (B, N, M) integer (int64 or int32) into Nr.
    Returns (B, N, M) = <left[:, n], right[:, index[n, m]]> / T. No Python loop over candidates.
    On CPU this is one sampled matrix product (SDDMM: only the asked-for entries of left^T right,
    never materialising the gathered features); on CUDA with Triton, one fused gather-and-dot
    kernel (``core.corr_triton``, when ``FUSED_GPU_SCORING``); elsewhere, and whenever a gradient is
    needed, whole feature rows are gathered in chunks of ``chunk`` query pixels.
    """
    with full_precision(left.device):
        left, right = left.float(), right.float()
        needs_grad = torch.is_grad_enabled() and (left.requires_grad or right.requires_grad)
        if left.device.type == "cpu" and not needs_grad:
            return _score_sddmm(left, right, index).div_(temperature)
        if left.device.type == "cuda" and FUSED_GPU_SCORING and not needs_grad:
            fused = _score_fused(left, right, index)
            if fused is not None:
                return fused.div_(temperature)
        return _score_gather(left, right, index, chunk).div_(temperature)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, N) -> (B * N, C) rows (a view for channels_last features)."""
    return x.transpose(1, 2).reshape(-1, x.shape[1])


def _flat_batch(index: torch.Tensor, nr: int) -> torch.Tensor:
    """(B, N, M) indices into each item's Nr rows -> indices into the B * Nr stacked rows."""
    b = index.shape[0]
    if b == 1:
        return index
    return index + torch.arange(b, device=index.device, dtype=index.dtype).view(b, 1, 1) * nr


def _score_sddmm(left: torch.Tensor, right: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    b, _, n = left.shape
    m, nr = index.shape[-1], right.shape[-1]
    cols = _flat_batch(index, nr).reshape(-1)  # int32 or int64
    crow = torch.arange(0, b * n * m + 1, m, device=index.device, dtype=cols.dtype)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use one stable op
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(crow, cols, torch.zeros(cols.numel(), dtype=left.dtype),
                                          size=(b * n, b * nr), check_invariants=False)
        out = torch.sparse.sampled_addmm(pattern, _rows(left), _rows(right).t(), beta=0.0)
    return out.values().view(b, n, m)


def _score_fused(left: torch.Tensor, right: torch.Tensor, index: torch.Tensor) -> torch.Tensor | None:
    """The fused Triton kernel's scores (B, N, M), or None where Triton is missing (imported only
    here: CPU runs never load it)."""
    from core import corr_triton

    if not corr_triton.available(left.device) or left.shape[1] & (left.shape[1] - 1):
        return None
    b, n, m = index.shape
    flat = _flat_batch(index, right.shape[-1]).reshape(b * n, m)
    return corr_triton.score_rows(_rows(left), _rows(right), flat).view(b, n, m)


def _score_gather(left: torch.Tensor, right: torch.Tensor, index: torch.Tensor, chunk: int) -> torch.Tensor:
    b, c, n = left.shape
    m = index.shape[-1]
    rows, queries = _rows(right), _rows(left)  # (B * Nr, C), (B * N, C)
    flat = _flat_batch(index, right.shape[-1]).reshape(b * n, m)
    out = torch.empty(b * n, m, device=left.device, dtype=torch.result_type(left, right))
    for s in range(0, b * n, chunk):
        e = min(chunk, b * n - s)
        picked = rows.index_select(0, flat[s:s + e].reshape(-1)).view(e, m, c)  # whole rows at once
        out[s:s + e] = torch.bmm(picked, queries[s:s + e].unsqueeze(-1).to(picked.dtype)).squeeze(-1)
    return out.view(b, n, m)


def gather_values(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum_k weights[k] * values[index[k]] per pixel.

    values (B, V, Nr); index (B, N, K) long; weights (B, N, K). Returns (B, V, N).
    One ``embedding_bag`` (a fused gather + weighted sum) over the batch's stacked rows.
    """
    b, v, nr = values.shape
    n, k = index.shape[1:]
    with full_precision(values.device):
        out = F.embedding_bag(_flat_batch(index, nr).reshape(b * n, k), _rows(values),
                              per_sample_weights=weights.reshape(b * n, k).to(values.dtype), mode="sum")
    return out.view(b, n, v).transpose(1, 2)


def sample_at(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of x (B, C, Hx, Wx) at positions (B, K, 2, H, W) given as (row, col) in
    x's pixels (clamped to the image). Returns (B, C, K, H, W); differentiable in both inputs."""
    b, k, _, h, w = positions.shape
    hx, wx = x.shape[-2:]
    row = positions[:, :, 0].clamp(0, hx - 1) / max(hx - 1, 1) * 2 - 1
    col = positions[:, :, 1].clamp(0, wx - 1) / max(wx - 1, 1) * 2 - 1
    grid = torch.stack([col, row], dim=-1).reshape(b, k * h, w, 2)
    with full_precision(x.device):
        out = F.grid_sample(x.float(), grid.float(), mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(b, x.shape[1], k, h, w)
