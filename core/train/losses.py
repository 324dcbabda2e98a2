"""Training losses of CoCosNet v2, as plain functions of tensors.

``sample_weight`` (B,) marks samples whose target is the ground truth for the exemplar's warp
(pseudo exemplars and same-subject pairs: 1; retrieved exemplars of other subjects: 0); the
warp and feature-matching terms average over those samples only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from core.patchmatch import LevelMatch


def pool_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Average-pool (B, C, H, W) down to ``size`` (integer factors), as the model pools the exemplar."""
    factor = x.shape[-1] // size[-1]
    return x if factor == 1 else F.avg_pool2d(x, factor, stride=factor)


def weighted_mean(per_sample: torch.Tensor, sample_weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B,) values under (B,) weights; 0 (with a graph) when every weight is 0."""
    if sample_weight is None:
        return per_sample.mean()
    w = sample_weight.to(per_sample.dtype)
    return (per_sample * w).sum() / w.sum().clamp_min(1e-5)


def l1_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).abs().flatten(1).mean(1)


def warp_loss(levels: Sequence[LevelMatch], target: torch.Tensor,
              sample_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Sum over levels of L1(warp, target average-pooled to that level). Also returns each level's term."""
    terms = [weighted_mean(l1_per_sample(lv.warp, pool_to(target, lv.warp.shape[-2:])), sample_weight)
             for lv in levels]
    return torch.stack(terms).sum(), terms


def cycle_loss(level: LevelMatch, exemplar: torch.Tensor) -> torch.Tensor:
    """L1 between the coarsest warp mapped back onto the exemplar grid and the pooled exemplar."""
    if level.cycle is None:
        raise ValueError("the coarsest level has no cycle warp: call the model with cycle=True")
    return l1_per_sample(level.cycle, pool_to(exemplar, level.cycle.shape[-2:])).mean()


def feature_pair_loss(condition_features: Sequence[torch.Tensor],
                      image_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Domain alignment: the condition encoder's unit features of x's condition should equal the
    exemplar encoder's unit features of (x, x's condition), level by level (L1)."""
    return sum(F.l1_loss(c.float(), i.float()) for c, i in zip(condition_features, image_features))


# -- adversarial -----------------------------------------------------------------------------

def d_hinge_loss(fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator hinge loss per scale (last feature = patch logits), averaged over scales:
    returns (fake term, real term)."""
    loss_fake = torch.stack([F.relu(1 + f[-1].float()).mean() for f in fake]).mean()
    loss_real = torch.stack([F.relu(1 - r[-1].float()).mean() for r in real]).mean()
    return loss_fake, loss_real


def g_hinge_loss(fake: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Generator side of the hinge GAN: -mean(D(fake)), averaged over scales."""
    return torch.stack([-f[-1].float().mean() for f in fake]).mean()


def gan_feature_loss(fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]]
                     ) -> torch.Tensor:
    """L1 between the discriminator's intermediate features of fake and (detached) real, summed over
    layers and averaged over scales (pix2pixHD's GAN feature matching)."""
    total = 0
    for f_scale, r_scale in zip(fake, real):
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            total = total + F.l1_loss(f.float(), r.detach().float())
    return total / len(fake)


# -- VGG19 based -----------------------------------------------------------------------------

VGG_FM_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # relu1_2 .. relu5_2, as the official


def vgg_feature_matching_loss(fake: Sequence[torch.Tensor], real: Sequence[torch.Tensor],
                              sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted L1 between VGG features of the output and of the target (relu1_2 .. relu5_2)."""
    return sum(w * weighted_mean(l1_per_sample(f, r.detach()), sample_weight)
               for w, f, r in zip(VGG_FM_WEIGHTS, fake, real))


def perceptual_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """MSE between one VGG layer's features (official: relu4_2) of the output and the target."""
    return F.mse_loss(fake.float(), real.detach().float())


def contextual_loss(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 0.1) -> torch.Tensor:
    """Contextual loss (Mechrez et al. 2018): for every feature of x, how well its most similar
    feature of y matches, relative to the others; position-free, so it transfers the exemplar's
    style without aligning it. x, y (B, C, H, W) -> scalar (mean over the batch)."""
    x, y = x.float(), y.detach().float()
    mu = y.mean(dim=1, keepdim=True)  # centre both on y's per-pixel channel mean (the official PONO variant)
    x = F.normalize((x - mu).flatten(2), dim=1)  # (B, C, N)
    y = F.normalize((y - mu).flatten(2), dim=1)
    dist = 1 - torch.bmm(x.transpose(1, 2), y)  # (B, N, M) cosine distances
    rel = dist / (dist.min(dim=-1, keepdim=True).values + 1e-3)  # relative to each x feature's nearest
    affinity = F.softmax((1 - rel) / bandwidth, dim=-1)  # = exp((1 - rel) / h), normalised over y
    cx = affinity.max(dim=-1).values.mean(dim=1)  # (B,)
    return -torch.log(cx + 1e-5).mean()


def contextual_style_loss(fake: Sequence[torch.Tensor], exemplar: Sequence[torch.Tensor]) -> torch.Tensor:
    """Official mix of contextual losses against the exemplar: relu5_2 x 8, relu4_2 x 4 and
    relu3_2 (pooled by 2) x 2."""
    return (contextual_loss(fake[-1], exemplar[-1]) * 8 + contextual_loss(fake[-2], exemplar[-2]) * 4
            + contextual_loss(F.avg_pool2d(fake[-3], 2), F.avg_pool2d(exemplar[-3], 2)) * 2)
