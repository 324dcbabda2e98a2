"""Multi-scale PatchGAN discriminator (pix2pixHD / SPADE style) for the trainer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """Spectral-normalised conv stack; returns every layer's features (for feature matching).
    4x4 kernels with padding 1, as the official discriminator (a 256 input gives 30x30 patch logits with 4 layers)."""

    def __init__(self, in_channels: int, ndf: int = 64, layers: int = 4):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2))]
        ch = ndf
        for i in range(1, layers):
            out = min(ch * 2, 512)
            stride = 1 if i == layers - 1 else 2
            blocks.append(nn.Sequential(spectral_norm(nn.Conv2d(ch, out, 4, stride, 1, bias=False)),
                                        nn.InstanceNorm2d(out), nn.LeakyReLU(0.2)))
            ch = out
        blocks.append(nn.Sequential(nn.Conv2d(ch, 1, 4, 1, 1)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats  # last entry: the patch logits


class MultiScaleDiscriminator(nn.Module):
    """The same PatchGAN at several scales of (image, condition)."""

    def __init__(self, in_channels: int, ndf: int = 64, layers: int = 4, scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, layers) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outs = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outs.append(d(x))
        return outs
