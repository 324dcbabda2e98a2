"""Exemplar retrieval: for every photo, the most similar other photos of the set, as a list the
trainer reads (``image,ref1,ref2,...`` with a ``# kind: retrieved`` line).

Similarity is the cosine of a global descriptor: VGG19 relu4_2 + relu5_2 channel means and
standard deviations of the photo when torchvision's VGG19 weights are present, otherwise
label histograms (each condition channel's mean over the whole picture and its 2x2 quarters,
square-rooted, so masks compare by class areas and layout, poses by limb layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from core.train.data import RETRIEVED_KIND, ConditionCache
from core.train.vgg import VGG19


@torch.no_grad()
def vgg_descriptors(photos: Sequence[torch.Tensor], vgg: VGG19, batch: int = 8) -> torch.Tensor:
    """(N, D) unit descriptors of (3, H, W) photos in [-1, 1]."""
    device = next(vgg.parameters()).device
    out = []
    for s in range(0, len(photos), batch):
        feats = vgg(torch.stack(list(photos[s:s + batch])).to(device))
        parts = [torch.cat([f.mean((2, 3)), f.std((2, 3))], 1) for f in feats[-2:]]
        out.append(F.normalize(torch.cat([F.normalize(p, dim=1) for p in parts], 1), dim=1).cpu())
    return torch.cat(out)


def label_descriptor(label: torch.Tensor) -> torch.Tensor:
    """(C, H, W) condition -> (5C,) unit vector: channel means over the picture and its quarters."""
    whole = label.float().mean((1, 2))
    quarters = F.adaptive_avg_pool2d(label.float()[None], 2)[0].flatten(1).t().reshape(-1)
    return F.normalize(torch.cat([whole, quarters]).clamp_min(0).sqrt(), dim=0)


def rank(descriptors: torch.Tensor, top_k: int) -> torch.Tensor:
    """(N, D) unit descriptors -> (N, min(k, N-1)) indices of the most similar others, best first."""
    n = descriptors.shape[0]
    sim = descriptors @ descriptors.t()
    sim.fill_diagonal_(-float("inf"))
    return sim.topk(min(top_k, n - 1), dim=1).indices


def write_list(path: str | Path, items: Sequence[str], ranks: torch.Tensor, method: str) -> Path:
    """Write the exemplar list (atomically)."""
    path = Path(path)
    lines = [f"# kind: {RETRIEVED_KIND}", f"# ranked by {method} similarity; image,ref1,ref2,... best first"]
    lines += [",".join([items[i]] + [items[j] for j in ranks[i].tolist()]) for i in range(len(items))]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def retrieve(items: Sequence[str], top_k: int, photo=None, cache: ConditionCache | None = None,
             vgg: VGG19 | None = None) -> tuple[torch.Tensor, str]:
    """Rank exemplars for every item: with ``vgg`` by VGG features of ``photo(rel)``, else by the
    label histograms in ``cache``. Returns (ranks, method name)."""
    if len(items) < 2:
        raise ValueError("retrieval needs at least two photos")
    if vgg is not None:
        return rank(vgg_descriptors([photo(rel) for rel in items], vgg), top_k), "VGG19 feature"
    if cache is None:
        raise ValueError("label-histogram retrieval needs the condition cache")
    desc = torch.stack([label_descriptor(cache.load(rel).label) for rel in items])
    return rank(desc, top_k), "label histogram"
