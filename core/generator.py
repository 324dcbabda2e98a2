"""Translation network: warped exemplars of all levels + the condition modulate a generator
through positional normalisation (SPADE-style blocks with PONO)."""

from __future__ import annotations

import torch
from torch import nn

from core.config import WarpaintConfig
from core.layers import ModulatedResBlock, leaky, resize_nearest


class Generator(nn.Module):
    """Starts at 1 / 2**upsamples of the output and doubles the size in each up block."""

    def __init__(self, config: WarpaintConfig):
        super().__init__()
        nf, hid = config.ngf, config.spade_hidden
        guide = config.image_channels * config.levels + config.label_channels
        self.upsamples = config.generator_upsamples
        # width per stage, coarsest first: 8nf at the bottom three stages, then halving
        widths = [8 * nf] * 4 + [4 * nf, 2 * nf, nf]
        self.fc = nn.Conv2d(guide, widths[0], 3, padding=1)
        names = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]
        self.blocks = nn.ModuleDict({
            n: ModulatedResBlock(widths[max(i - 1, 0)], widths[i], guide, hid)
            for i, n in enumerate(names)})
        self.conv_img = nn.Conv2d(nf, config.image_channels, 3, padding=1)

    def guide(self, warps: list[torch.Tensor], condition: torch.Tensor) -> torch.Tensor:
        """Every level's warp resized (nearest) to the output size, then the condition."""
        size = condition.shape[-2:]
        return torch.cat([resize_nearest(w.to(condition.dtype), size) for w in warps] + [condition], dim=1)

    def forward(self, warps: list[torch.Tensor], condition: torch.Tensor) -> torch.Tensor:
        """warps: coarsest first, (B, 3, h_i, w_i); condition (B, label, H, W) -> (B, 3, H, W)."""
        seg = self.guide(warps, condition)
        h, w = seg.shape[-2:]
        # sizes from the bottom up: ceil(H / 2**k), so any output size works
        sizes = [(-(-h // 2**k), -(-w // 2**k)) for k in range(self.upsamples, -1, -1)]
        guides = {size: resize_nearest(seg, size) for size in sizes}  # each size once, not per norm
        x = self.fc(guides[sizes[0]])
        b = self.blocks
        # the official schedule: head at the bottom, two middle blocks one step up, then up blocks
        schedule = [("head_0", 0), ("G_middle_0", 1), ("G_middle_1", 1), ("up_0", 2), ("up_1", 3),
                    ("up_2", 4), ("up_3", 5)]
        for name, stage in schedule:
            size = sizes[min(stage, self.upsamples)]
            x = b[name](x, guides[size], size)  # the block resizes x (nearest): on CPU, band by band
        return torch.tanh(self.conv_img(leaky(x)))
