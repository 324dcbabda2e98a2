"""ConvGRU update block that refines PatchMatch candidate offsets (RAFT-style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.environment import release_heap
from core.layers import InstanceNorm, memory_layout
from core.precision import in_place_inference, same_layout


class MotionEncoder(nn.Module):
    """Encodes candidate scores and offsets; the offsets are passed through as well."""

    def __init__(self, candidates: int, motion: int = 64):
        super().__init__()
        self.convc1 = nn.Conv2d(candidates, 64, 1)
        self.convc2 = nn.Conv2d(64, 64, 3, padding=1)
        self.convf1 = nn.Conv2d(2 * candidates, 64, 7, padding=3)
        self.convf2 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv = nn.Conv2d(128, motion - 2 * candidates, 3, padding=1)

    def forward(self, offsets: torch.Tensor, scores: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2K, H, W), (B, K, H, W) -> (B, motion, H, W). ``out`` (inference only): write the
        result there instead of concatenating (the GRU's input buffer)."""
        if out is None:
            cor = self.convc2(self.convc1(scores).relu_())
            flo = self.convf2(self.convf1(offsets).relu_())
            features = torch.cat([cor.relu_(), flo.relu_()], dim=1)
            return torch.cat([self.conv(features).relu_(), offsets], dim=1)
        # the two branches one after the other, each ReLU'd straight into the concatenation and freed
        # there: at most one branch's two 64-channel maps beside it (not both branches' and it)
        b, _, h, w = scores.shape
        # the weights' layout (channels_last after prepare_model), as the GRU buffer: out is a slice of
        # that buffer, which no layout check would call channels_last
        features = torch.empty(b, 128, h, w, dtype=out.dtype, device=out.device,
                               memory_format=memory_layout(self.conv.weight))
        torch.clamp_min(self.convc2(self.convc1(scores).relu_()), 0, out=features[:, :64])
        torch.clamp_min(self.convf2(self.convf1(offsets).relu_()), 0, out=features[:, 64:])
        motion = self.conv(features)
        del features
        torch.clamp_min(motion, 0, out=out[:, :motion.shape[1]])
        out[:, motion.shape[1]:].copy_(offsets)
        return out


class SepConvGRU(nn.Module):
    """GRU with a horizontal (1x5) then a vertical (5x1) pass."""

    def __init__(self, hidden: int = 32, inputs: int = 64):
        super().__init__()
        c = hidden + inputs
        self.inputs = inputs
        self.convz1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(c, hidden, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(c, hidden, (5, 1), padding=(2, 0))

    @staticmethod
    def _step(h, x, convz, convr, convq):
        hx = torch.cat([h, x], dim=1)
        z, r = _gates(hx, convz, convr).split(h.shape[1], dim=1)
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return torch.lerp(h, q.to(h.dtype), z.to(h.dtype))  # (1 - z) * h + z * q

    @staticmethod
    def _step_into(h, hx, convz, convr, convq):
        """``_step`` without concatenations: ``hx`` already holds x after the first h.shape[1]
        channels; h and then r * h are written in front of it (inference only: in place)."""
        c = h.shape[1]
        hx[:, :c].copy_(h)
        z, r = _gates(hx, convz, convr, in_place=True).split(c, dim=1)
        torch.mul(r, h, out=hx[:, :c])
        q = convq(hx).tanh_()
        if q.dtype != h.dtype:
            return torch.lerp(h, q.to(h.dtype), z.to(h.dtype))
        return torch.lerp(h, q, z.to(h.dtype), out=q)  # the new state takes q's memory

    def forward(self, h: torch.Tensor, x: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, hidden, H, W), x (B, inputs, H, W). ``hx``: an inference buffer
        (B, hidden + inputs, H, W) whose last channels are x (then x itself is not read)."""
        if hx is not None:
            h = self._step_into(h, hx, self.convz1, self.convr1, self.convq1)
            return self._step_into(h, hx, self.convz2, self.convr2, self.convq2)
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


def _gates(hx: torch.Tensor, convz: nn.Conv2d, convr: nn.Conv2d, in_place: bool = False) -> torch.Tensor:
    """sigmoid([z; r]): both gates read the same input, so one conv with both weights (names
    unchanged); ``in_place`` (inference): the sigmoid overwrites the conv's output."""
    weight, bias = torch.cat([convz.weight, convr.weight]), torch.cat([convz.bias, convr.bias])
    gates = F.conv2d(hx, weight, bias, padding=convz.padding)
    return gates.sigmoid_() if in_place else torch.sigmoid(gates)


class OffsetHead(nn.Module):
    """Hidden state -> a (row, col) offset change for each of the K candidates."""

    def __init__(self, hidden: int, candidates: int):
        super().__init__()
        self.conv1 = nn.Conv2d(hidden, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 2 * candidates, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(h).relu_())


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
        if not in_place_inference():  # training: autograd keeps inputs alive, plain concatenations
            hidden = self.gru(hidden, self.encoder(offsets, scores))
        else:  # inference: one buffer [hidden | motion | offsets] filled in place, no concatenation
            release_heap()  # the 512 level's GRU step sets the process peak: no free heap pages resident
            b, c, h, w = hidden.shape
            hx = torch.empty(b, c + self.gru.inputs, h, w, dtype=hidden.dtype, device=hidden.device,
                             memory_format=memory_layout(ref))
            self.encoder(offsets, scores, out=hx[:, c:])
            hidden = self.gru(hidden, hx[:, c:], hx=hx)
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
