"""ConvGRU update block that refines PatchMatch candidate offsets (RAFT-style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.layers import InstanceNorm
from core.precision import same_layout


class MotionEncoder(nn.Module):
    """Encodes candidate scores and offsets; the offsets are passed through as well."""

    def __init__(self, candidates: int, motion: int = 64):
        super().__init__()
        self.convc1 = nn.Conv2d(candidates, 64, 1)
        self.convc2 = nn.Conv2d(64, 64, 3, padding=1)
        self.convf1 = nn.Conv2d(2 * candidates, 64, 7, padding=3)
        self.convf2 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv = nn.Conv2d(128, motion - 2 * candidates, 3, padding=1)

    def forward(self, offsets: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(scores))))
        flo = F.relu(self.convf2(F.relu(self.convf1(offsets))))
        return torch.cat([F.relu(self.conv(torch.cat([cor, flo], dim=1))), offsets], dim=1)


class SepConvGRU(nn.Module):
    """GRU with a horizontal (1x5) then a vertical (5x1) pass."""

    def __init__(self, hidden: int = 32, inputs: int = 64):
        super().__init__()
        c = hidden + inputs
        self.convz1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))

    @staticmethod
    def _step(h, x, convz, convr, convq):
        hx = torch.cat([h, x], dim=1)
        # z and r read the same input: one conv with both gates' weights (names unchanged)
        zr = F.conv2d(hx, torch.cat([convz.weight, convr.weight]), torch.cat([convz.bias, convr.bias]),
                      padding=convz.padding)
        z, r = torch.sigmoid(zr).split(h.shape[1], dim=1)
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return torch.lerp(h, q.to(h.dtype), z.to(h.dtype))  # (1 - z) * h + z * q

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


class OffsetHead(nn.Module):
    """Hidden state -> a (row, col) offset change for each of the K candidates."""

    def __init__(self, hidden: int, candidates: int):
        super().__init__()
        self.conv1 = nn.Conv2d(hidden, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 2 * candidates, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(h)))


class UpdateBlock(nn.Module):
    """One refinement step: (hidden, scores, offsets) -> (hidden, offset deltas)."""

    def __init__(self, candidates: int, hidden: int = 32, motion: int = 64):
        super().__init__()
        self.encoder = MotionEncoder(candidates, motion)
        self.gru = SepConvGRU(hidden, motion)
        self.flow_head = OffsetHead(hidden, candidates)

    def forward(self, hidden: torch.Tensor, scores: torch.Tensor, offsets: torch.Tensor):
        # offsets: (B, 2K, H, W) = K row offsets then K column offsets; scores: (B, K, H, W)
        ref = self.gru.convq1.weight  # channels_last weights (prepare_model): keep every input NHWC
        hidden, offsets, scores = same_layout(hidden, ref), same_layout(offsets, ref), same_layout(scores, ref)
        hidden = self.gru(hidden, self.encoder(offsets, scores))
        return hidden, self.flow_head(hidden)


class HiddenInit(nn.Module):
    """Initial GRU state from the two feature maps of a level."""

    def __init__(self, feature_channels: int, hidden: int = 32):
        super().__init__()
        # indices 0 and 3 hold the convs, as in the official checkpoint
        self.layers = nn.Sequential(
            nn.Conv2d(2 * feature_channels, hidden, 3, padding=1), InstanceNorm(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), InstanceNorm(hidden), nn.ReLU(),
        )

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([left, right], dim=1))
