"""Similarity between matching features: dense attention (coarsest level), candidate scoring
(PatchMatch levels) and sampling at candidate positions. All chunked so memory stays bounded."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
    b, c, h, w = query.shape
    q = query.flatten(2).transpose(1, 2)  # (B, N, C)
    k = key.flatten(2)  # (B, C, Nk)
    v = value.flatten(2).transpose(1, 2)  # (B, Nk, V)
    n, nk = q.shape[1], k.shape[2]
    topk = min(topk, nk)
    rows = n if cycle else max(1, DENSE_CHUNK_ELEMENTS // max(nk, 1))
    warps, idxs, wts, confs, logits_all = [], [], [], [], []
    for s in range(0, n, rows):
        logits = torch.matmul(q[:, s:s + rows], k) / temperature  # (B, n, Nk)
        attn = F.softmax(logits, dim=-1)
        warps.append(torch.matmul(attn, v))
        wt, idx = torch.topk(attn, topk, dim=-1)
        idxs.append(idx)
        wts.append(wt)
        confs.append((attn * logits).sum(-1, keepdim=True) * temperature)
        if cycle:
            logits_all.append(logits)
    def to_map(parts):  # list of (B, n, X) -> (B, X, H, W)
        return torch.cat(parts, 1).transpose(1, 2).reshape(b, -1, h, w)
    warp = to_map(warps)
    cyc = None
    if cycle:
        back = F.softmax(torch.cat(logits_all, 1).transpose(1, 2), dim=-1)  # (B, Nk, N)
        cyc = torch.matmul(back, warp.flatten(2).transpose(1, 2)).transpose(1, 2)
        cyc = cyc.reshape(b, -1, *key.shape[-2:])
    return DenseMatch(warp, to_map(idxs), to_map(wts), to_map(confs).clamp(0, 1), cyc)


def score_indices(left: torch.Tensor, right: torch.Tensor, index: torch.Tensor, temperature: float,
                  chunk: int = 16384) -> torch.Tensor:
    """Similarity of each pixel with candidate pixels given by flat indices.

    left (B, C, N) and right (B, C, Nr) features; index (B, N, M) long into Nr.
    Returns (B, N, M) = <left[:, n], right[:, index[n, m]]> / T. No Python loop over candidates.
    """
    b, c, n = left.shape
    m = index.shape[-1]
    right_rows = right.transpose(1, 2)  # (B, Nr, C): gather whole feature vectors
    out = []
    for s in range(0, n, chunk):
        idx = index[:, s:s + chunk]  # (B, n', M)
        e = idx.shape[1]
        picked = torch.gather(right_rows, 1, idx.reshape(b, e * m, 1).expand(b, e * m, c))
        picked = picked.view(b, e, m, c)
        q = left[:, :, s:s + chunk].transpose(1, 2).unsqueeze(-1)  # (B, n', C, 1)
        out.append(torch.matmul(picked, q).squeeze(-1) / temperature)
    return torch.cat(out, 1)


def gather_values(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum_k weights[k] * values[index[k]] per pixel.

    values (B, V, Nr); index (B, N, K) long; weights (B, N, K). Returns (B, V, N).
    """
    b, v, _ = values.shape
    n, k = index.shape[1:]
    rows = values.transpose(1, 2)  # (B, Nr, V)
    picked = torch.gather(rows, 1, index.reshape(b, n * k, 1).expand(b, n * k, v)).view(b, n, k, v)
    return (picked * weights.unsqueeze(-1)).sum(2).transpose(1, 2)


def sample_at(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of x (B, C, Hx, Wx) at positions (B, K, 2, H, W) given as (row, col) in
    x's pixels (clamped to the image). Returns (B, C, K, H, W); differentiable in both inputs."""
    b, k, _, h, w = positions.shape
    hx, wx = x.shape[-2:]
    row = positions[:, :, 0].clamp(0, hx - 1) / max(hx - 1, 1) * 2 - 1
    col = positions[:, :, 1].clamp(0, wx - 1) / max(wx - 1, 1) * 2 - 1
    grid = torch.stack([col, row], dim=-1).reshape(b, k * h, w, 2)
    out = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(b, x.shape[1], k, h, w)
