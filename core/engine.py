"""The training-free engine: hand-made descriptors -> the same hierarchical matching -> full-res warp.

    source condition, exemplar condition --descriptors--> two unit-length pyramids (+ a keypoint prior)
        -> match_pyramid: dense attention at the coarsest level, plain PatchMatch (no GRU) above
        -> positions = prior + the matches' smoothed correction where they beat the prior
        -> the exemplar sampled there at full resolution; low-confidence regions get an inpainted fill.

No learned parameters, so it works on a fresh install. Its levels are ordinary ``LevelMatch``
objects, so the UI shows them exactly like the learned engine's.

It implements the engine protocol of core/protocol.py (as ``core.learned.LearnedEngine`` does):
``engine(sources, exemplar, exemplar_conditions, *, iterations=None, temperature=None, seed=0,
progress=None) -> EngineOutput`` for a batch (lists of Conditions, exemplar (B, 3, H, W) in
[-1, 1]); attributes ``name``, ``stride`` (output sides are multiples of it) and ``resolution``
(default side). Per-call settings are arguments, never stored; positions follow the protocol's
pixel convention (``upsample_positions``, ``sample_positions``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from core.conditions.condition import Condition
from core.corr import pixel_grid, sample_at
from core.correspondence import match_pyramid, random_orders
from core.descriptors import compress, describe_pair, descriptor_pyramid
from core.patchmatch import LevelMatch, PatchMatch
from core.protocol import EngineOutput, Progress, sample_positions, upsample_positions
from core.vocabulary import TRAINING_FREE


class PlainPatchMatch(PatchMatch):
    """Plain PatchMatch (no GRU, no learned parameters, continuous positions), with fewer
    iterations on levels larger than ``fine_pixels`` (speed)."""

    def __init__(self, candidates: int, fine_iterations: int = 1, fine_pixels: int = 256 * 256,
                 chunk_pixels: int = 16384):
        super().__init__(0, candidates, use_gru=False, chunk_pixels=chunk_pixels)
        self.fine_iterations = fine_iterations
        self.fine_pixels = fine_pixels

    def forward(self, left, right, exemplar, offsets, *, iterations: int, temperature: float,
                horizontal_first: Sequence[bool] | None = None) -> LevelMatch:
        if left.shape[-2] * left.shape[-1] > self.fine_pixels:
            iterations = min(iterations, self.fine_iterations)
        return super().forward(left, right, exemplar, offsets, iterations=iterations, temperature=temperature,
                               horizontal_first=horizontal_first)


class TrainingFreeEngine:
    """Descriptor matching with the hierarchical PatchMatch core; stateless apart from its settings."""

    name = TRAINING_FREE
    version = 1  # engine v2 (core/engine_v2.py) is the default where it is ready
    stride = 32  # output sides are rounded down to a multiple of this
    resolution = 512  # the default output side

    def __init__(self, iterations: int = 2, fine_iterations: int = 1, temperature: float = 0.01,
                 window: int = 3, dilation: int = 2, coarsest: int = 64, max_match_side: int = 256,
                 fill_below: float = 0.55, smooth: float = 0.02, gain_scale: float = 0.02, channels: int = 16):
        self.iterations = iterations  # PatchMatch iterations per level up to 256x256
        self.fine_iterations = fine_iterations  # ... and on larger levels (speed)
        self.temperature = temperature
        self.window = window  # K = window**2 candidates per pixel
        self.dilation = dilation
        self.coarsest = coarsest  # the coarsest level's shorter side (dense attention there)
        self.max_match_side = max_match_side  # finer levels are not matched: positions are upsampled
        self.fill_below = fill_below  # confidence under which the fill takes over
        self.smooth = smooth  # Gaussian sigma (fraction of the side) smoothing the matches' correction
        self.gain_scale = gain_scale  # similarity gain over the prior at which a match is fully trusted
        self.channels = channels  # descriptors are projected on this many principal directions (speed)

    def match_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The finest matched level's size: the output halved while its longer side exceeds the cap."""
        h, w = size
        while max(h, w) > self.max_match_side and h % 2 == 0 and w % 2 == 0:
            h, w = h // 2, w // 2
        return h, w

    def levels_for(self, size: tuple[int, int]) -> int:
        """Number of matched levels: the coarsest shorter side near ``coarsest``, but at least three
        levels while the coarsest keeps 16 pixels (small outputs), and sides divisible all the way."""
        h, w = self.match_size(size)
        levels = 1 + max(0, round(math.log2(max(min(h, w) / self.coarsest, 1))))
        while levels < 3 and min(h, w) // 2**levels >= 16:
            levels += 1
        while levels > 1 and (h % 2 ** (levels - 1) or w % 2 ** (levels - 1)):
            levels -= 1
        return levels

    @torch.no_grad()
    def __call__(self, sources: Sequence[Condition], exemplar: torch.Tensor,
                 exemplar_conditions: Sequence[Condition], *, iterations: int | None = None,
                 temperature: float | None = None, seed: int = 0, progress: Progress | None = None,
                 weights: dict[str, float] | None = None, init: torch.Tensor | None = None) -> EngineOutput:
        """Warp ``exemplar`` (B, 3, H, W) in [-1, 1] to ``sources``; every condition at (H, W). Items
        run one by one.

        ``init`` (temporal seeding, video; this engine only): (B, K, 2, h, w) candidate exemplar
        positions at the finest matched level (``levels[-1].positions`` of an earlier output, moved
        to this source's pixels); matching then starts there instead of from dense attention and
        the coarser levels."""
        n = len(sources)
        if n != exemplar.shape[0] or len(exemplar_conditions) != n:
            raise ValueError("one source and one exemplar condition per exemplar")

        def item_progress(i: int) -> Progress | None:
            return None if progress is None else lambda f, text: progress((i + f) / n, text)

        return EngineOutput.concat([
            self._one(src, exemplar[i:i + 1], ex, iterations, temperature, seed, item_progress(i), weights,
                      None if init is None else init[i:i + 1])
            for i, (src, ex) in enumerate(zip(sources, exemplar_conditions))])

    def _one(self, source: Condition, exemplar: torch.Tensor, exemplar_condition: Condition,
             iterations: int | None, temperature: float | None, seed: int, progress: Progress | None,
             weights: dict[str, float] | None, init: torch.Tensor | None) -> EngineOutput:
        """One item: exemplar (1, 3, H, W), init None or (1, K, 2, h, w)."""
        size = source.size
        if tuple(exemplar.shape[-2:]) != size or exemplar_condition.size != size:
            raise ValueError(f"exemplar {tuple(exemplar.shape[-2:])} and conditions must share the size {size}")
        report = progress or (lambda fraction, text: None)
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        pair = describe_pair(source, exemplar_condition, self.match_size(size), weights)
        levels = self.levels_for(size)
        src, ex = compress(pair.source, pair.exemplar, self.channels)
        left = [x.to(exemplar.device) for x in descriptor_pyramid(src, levels)]  # coarsest first
        right = [x.to(exemplar.device) for x in descriptor_pyramid(ex, levels)]
        seconds["descriptors"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        report(0.0, f"matching {levels} levels (training-free)")
        if init is not None and tuple(init.shape[1:]) == (self.window**2, 2, *left[-1].shape[-2:]):
            matches = [self._match_from(init, left[-1], right[-1], exemplar, iterations, temperature, seed)]
        else:
            matches = self._match(left, right, exemplar, iterations, temperature, seed, report, seconds)
        seconds["matching"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        positions = self._positions(pair, left[-1], right[-1], matches[-1], size)  # (1, 2, H, W)
        warped = sample_positions(exemplar, positions)
        confidence = F.interpolate(matches[-1].confidence, size=size, mode="bilinear", align_corners=False)
        fill = ((self.fill_below - confidence) / 0.15).clamp(0, 1)
        image = fill_low_confidence(warped, fill)
        seconds["output"] = time.perf_counter() - t2
        seconds["total"] = time.perf_counter() - t0
        report(1.0, "warped at full resolution")
        return EngineOutput(image, warped, positions, confidence.clamp(0, 1), matches, seconds, fill)

    def _match(self, left, right, exemplar, iterations, temperature, seed, report, seconds) -> list[LevelMatch]:
        """``match_pyramid`` with plain PatchMatch; propagation orders drawn from ``seed``."""
        levels = len(left)
        temp = float(temperature if temperature is not None else self.temperature)
        iters = int(iterations if iterations is not None else self.iterations)
        pm = PlainPatchMatch(self.window**2, fine_iterations=min(iters, self.fine_iterations))
        done = [time.perf_counter()]

        def on_level(i: int, match: LevelMatch) -> None:
            h, w = match.weights.shape[-2:]
            now = time.perf_counter()
            seconds[f"level_{h}x{w}"] = now - done[0]
            done[0] = now
            report((i + 1) / (levels + 1), f"matched level {i + 1}/{levels} ({w}x{h})")

        return match_pyramid(left, right, exemplar, pm, iterations=iters, temperature=temp, window=self.window,
                             dilation=self.dilation, orders=random_orders(seed, levels, iters), on_level=on_level)

    def _match_from(self, init, left, right, exemplar, iterations, temperature, seed) -> LevelMatch:
        """PatchMatch at the finest matched level only, seeded with ``init`` (1, K, 2, h, w) positions."""
        temp = float(temperature if temperature is not None else self.temperature)
        iters = int(iterations if iterations is not None else self.iterations)
        pm = PlainPatchMatch(self.window**2, fine_iterations=min(iters, self.fine_iterations))
        order = random_orders(seed, 2, iters)[0]
        h, w = left.shape[-2:]
        offsets = (init.to(left.device) - pixel_grid(h, w, left.device)).transpose(1, 2)  # (1, 2, K, h, w)
        factor = exemplar.shape[-1] // w
        ref = exemplar if factor == 1 else F.avg_pool2d(exemplar, factor, stride=factor)
        return pm(left, right, ref, offsets.round(), iterations=iters, temperature=temp, horizontal_first=order)

    def _positions(self, pair, left, right, match: LevelMatch, size: tuple[int, int]) -> torch.Tensor:
        """Full-resolution (row, col) exemplar positions: the keypoint prior, corrected by the matches
        where they beat it and the descriptor has structure, away from where the prior is sure."""
        device = left.device
        prior = torch.from_numpy(pair.prior[::-1].copy()).unsqueeze(0).to(device)  # (1, 2, h, w) (row, col)
        matched = best_positions(match)  # (1, 2, h, w), same grid
        sure = torch.from_numpy(pair.reliability)[None, None].to(device)
        gain = match_gain(left, right, prior, matched, self.gain_scale)
        trust = structure(pair.source[:, :-pair.groups["coords"]]).to(device) * gain * (1 - sure)
        correction = smooth_correction(matched - prior, trust, self.smooth * max(prior.shape[-2:]))
        return upsample_positions(prior + (1 - sure) * correction, size)


def best_positions(match: LevelMatch, radius: float = 1.5) -> torch.Tensor:
    """(B, 2, h, w): weighted mean of the candidates near the best one (a mean over distant,
    competing matches would land between them)."""
    pos, wts = match.positions, match.weights  # (B, K, 2, h, w), (B, K, h, w)
    best = wts.argmax(1, keepdim=True)
    top = torch.gather(pos, 1, best.unsqueeze(2).expand(-1, -1, 2, -1, -1))  # (B, 1, 2, h, w)
    near = ((pos - top).abs().amax(2) <= radius).to(wts.dtype) * wts
    return (near.unsqueeze(2) * pos).sum(1) / near.sum(1, keepdim=True).clamp_min(1e-12)


def structure(descriptors: torch.Tensor, floor: float = 0.02) -> torch.Tensor:
    """(B, 1, h, w) in [floor, 1]: how distinctive the descriptor is at each pixel (its gradient
    magnitude, scaled by the maximum). Flat regions (far from every part) cannot be matched."""
    dx = F.pad(descriptors[..., :, 1:] - descriptors[..., :, :-1], (0, 1))
    dy = F.pad(descriptors[..., 1:, :] - descriptors[..., :-1, :], (0, 0, 0, 1))
    g = (dx.square() + dy.square()).sum(1, keepdim=True).sqrt()
    g = g / g.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return g.clamp(floor, 1)


def match_gain(left: torch.Tensor, right: torch.Tensor, prior: torch.Tensor, matched: torch.Tensor,
               scale: float) -> torch.Tensor:
    """(B, 1, h, w) in [0, 1]: how much more similar the matched exemplar point is than the prior's
    (cosine gain / ``scale``). Where the prior is as good, the match only adds noise: no trust."""
    at_prior = (sample_at(right, prior.unsqueeze(1))[:, :, 0] * left).sum(1, keepdim=True)
    at_match = (sample_at(right, matched.unsqueeze(1))[:, :, 0] * left).sum(1, keepdim=True)
    return ((at_match - at_prior) / scale).clamp(0, 1)


def smooth_correction(correction: torch.Tensor, trust: torch.Tensor, sigma: float) -> torch.Tensor:
    """Normalised convolution: a Gaussian average of the matches' correction to the prior, each
    pixel weighted by its trust; where nothing is trusted nearby the correction fades to 0."""
    if sigma <= 0:
        return correction
    k = int(2 * round(3 * sigma) + 1)
    num = gaussian_blur2d(correction * trust, (k, k), (sigma, sigma), border_type="replicate")
    den = gaussian_blur2d(trust, (k, k), (sigma, sigma), border_type="replicate")
    return num / (den + 0.05 * float(trust.amax().clamp_min(1e-12)))


def fill_low_confidence(warped: torch.Tensor, fill: torch.Tensor, work_side: int = 128) -> torch.Tensor:
    """Blend an inpainted version (OpenCV Telea, at a small working size) where ``fill`` is high."""
    if float(fill.max()) <= 0:
        return warped
    b, _, h, w = warped.shape
    scale = min(1.0, work_side / max(h, w))
    sh, sw = max(8, round(h * scale)), max(8, round(w * scale))
    out = []
    for i in range(b):
        img = ((warped[i].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
        small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
        hole = cv2.resize(fill[i, 0].cpu().numpy(), (sw, sh), interpolation=cv2.INTER_AREA) > 0.5
        painted = cv2.inpaint(small, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA) if hole.any() else small
        painted = cv2.GaussianBlur(cv2.resize(painted, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), 2)
        out.append(torch.from_numpy(painted).permute(2, 0, 1).float().div(127.5).sub(1))
    painted_t = torch.stack(out).to(warped.device, warped.dtype)
    return warped * (1 - fill) + painted_t * fill
