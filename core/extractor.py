"""Domain-alignment encoder: an image or condition -> one feature map per correspondence level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.layers import ModulatedResBlock, ResidualBlock, conv_norm, leaky, resize_nearest


class PyramidEncoder(nn.Module):
    """U-shaped encoder (after CoCosNet v2's adaptive feature generator), any number of levels.

    Down path: stem (nef) -> stage at full size (2 nef) -> levels-1 stride-2 stages (4 nef).
    Up path: a guide-modulated block at the coarsest level, then one block per finer level fed by
    the upsampled coarser output plus the skip. Returns features coarsest first:
    level i (from coarse) has size H / 2**(levels-1-i).
    """

    def __init__(self, in_channels: int, nef: int, levels: int, spade_hidden: int = 128):
        super().__init__()
        skip = [2 * nef] + [4 * nef] * (levels - 1)  # skip channels per level, finest first
        out = [nef] + skip[:-1]  # each level's output width, finest first
        self.stem = conv_norm(in_channels, nef)
        self.downs = nn.ModuleList(
            nn.Sequential(conv_norm(cin, cout, stride=1 if i == 0 else 2), ResidualBlock(cout))
            for i, (cin, cout) in enumerate(zip([nef] + skip[:-1], skip))
        )
        # ups[0] is the coarsest level; guide = the encoder's own input
        self.ups = nn.ModuleList(
            ModulatedResBlock(skip[i], out[i], in_channels, spade_hidden) for i in reversed(range(levels))
        )
        self.out_channels = list(reversed(out))  # coarsest first

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        guide = x
        h = self.stem(x)
        skips = []
        for down in self.downs:
            h = down(leaky(h))
            skips.append(h)
        del h
        feats = [self.ups[0](skips[-1], resize_nearest(guide, skips[-1].shape[-2:]))]
        skips.pop()
        for up in self.ups[1:]:
            skip = skips.pop()  # dropped as soon as it is used (the finest is the largest tensor)
            h = F.interpolate(feats[-1], scale_factor=2, mode="bilinear", align_corners=True)
            # in place on the fresh upsampled map (its backward does not need it)
            feats.append(up(h.add_(skip), resize_nearest(guide, skip.shape[-2:])))  # resized once per level
            del h, skip
        return feats
