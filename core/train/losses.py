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


def masked_mean_per_sample(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, C, H, W) values, (B, 1, H, W) weights in [0, 1] (None: all 1) -> (B,) weighted means."""
    if mask is None:
        return values.flatten(1).mean(1)
    mask = mask.to(values.dtype)
    total = (values * mask).flatten(1).sum(1)
    return total / (mask.flatten(1).sum(1) * values.shape[1]).clamp_min(1e-5)


def warp_loss(levels: Sequence[LevelMatch], target: torch.Tensor, sample_weight: torch.Tensor | None = None,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Sum over levels of L1(warp, target average-pooled to that level). ``mask`` (B, 1, H, W): the
    pixels of the target the exemplar shows (a pseudo exemplar's crop removes some; they have no
    right answer), pooled to each level as a weight. Also returns each level's term."""
    terms = []
    for lv in levels:
        size = lv.warp.shape[-2:]
        error = (lv.warp.float() - pool_to(target, size).float()).abs()
        terms.append(weighted_mean(masked_mean_per_sample(error, pool_to(mask, size) if mask is not None else None),
                                   sample_weight))
    return torch.stack(terms).sum(), terms


def level_positions(positions: torch.Tensor, mask: torch.Tensor, size: Sequence[int]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-size (B, 2, H, W) (row, col) positions and their (B, 1, H, W) mask -> the same at a
    level of ``size``: block means, in that level's pixels (centres at (p + 0.5) / s - 0.5), and
    a mask that keeps only blocks whose every pixel is valid."""
    s = positions.shape[-1] // size[-1]
    if s == 1:
        return positions, mask.to(positions.dtype)
    pooled = F.avg_pool2d(positions, s, stride=s)
    valid = -F.max_pool2d(-mask.to(positions.dtype), s, stride=s)  # 1 where the whole block is valid
    return (pooled + 0.5) / s - 0.5, valid


def correspondence_loss(levels: Sequence[LevelMatch], positions: torch.Tensor, mask: torch.Tensor,
                        eps: float = 0.01) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Supervise every level's match with the augmentation's ground truth.

    ``positions`` (B, 2, H, W): where each pixel of the input lies in the exemplar, in full-size
    (row, col) pixels (a pseudo exemplar's inverse grid); ``mask`` (B, 1, H, W): where that is
    known (0 for real pairs). Per level, the robust L1 (Charbonnier) end-point error of each of
    the K candidates, in that level's pixels, averaged under the candidates' weights: the loss
    moves the learned positions (through the GRU) and the weights (through the features) at
    once. Sum over levels; also returns each level's term (masked mean over pixels and samples).
    """
    terms = []
    for lv in levels:
        target, valid = level_positions(positions.float(), mask, lv.weights.shape[-2:])
        error = (lv.positions.float() - target.unsqueeze(1)).square().sum(2).add(eps * eps).sqrt()  # (B, K, h, w)
        expected = (lv.weights.float() * error).sum(1, keepdim=True)  # (B, 1, h, w)
        counted = valid.flatten(1).sum(1)
        per_sample = masked_mean_per_sample(expected, valid)
        terms.append(weighted_mean(per_sample, (counted > 0).float()))
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
