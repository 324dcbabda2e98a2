"""Keypoints over time: bridge the gaps of missing joints, then smooth with a One-Euro filter.

    track = smooth_track(raw, fps, size)     # (T, 18, 3) x, y, confidence (0 = missing) -> same shape

Per-frame detections jitter by a few pixels and drop joints for a frame or two; rendered as they
are, every frame's skeleton (and so its output) shakes. The One-Euro filter (Casiez et al., CHI
2012) is a low-pass whose cut-off rises with speed: still joints are smoothed hard, fast ones
follow with little lag. The clip is known in advance, so it runs forwards and backwards and the
two are averaged (no lag either way). Coordinates are divided by the frame's longer side, so
the settings do not depend on the resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_JOINTS = 4  # a frame with fewer joints (after bridging) takes the nearest usable frame's pose


@dataclass
class TrackReport:
    """What the tracker changed, for the user's messages."""

    bridged_joints: int = 0  # joint-frames filled in by interpolation
    held_frames: int = 0  # frames with no usable pose that took their neighbour's

    def messages(self) -> list[str]:
        out = []
        if self.bridged_joints:
            out.append(f"{self.bridged_joints} missing joint positions were bridged from the frames around them.")
        if self.held_frames:
            out.append(f"{self.held_frames} frames had no usable person; they repeat the nearest frame's pose.")
        return out


def one_euro(values: np.ndarray, present: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 10.0,
             d_cutoff: float = 1.0) -> np.ndarray:
    """Causal One-Euro filter over time of (T, J, D) values; ``present`` (T, J) marks real samples.
    A joint's filter restarts after a frame where it is missing. Cut-offs in Hz, ``beta`` per unit/s."""
    dt = 1.0 / fps
    out = values.astype(np.float64).copy()
    prev = np.zeros(values.shape[1:])
    speed = np.zeros(values.shape[1:])
    alive = np.zeros(values.shape[1], bool)
    for t in range(len(values)):
        x = values[t]
        start = present[t] & ~alive
        prev[start], speed[start] = x[start], 0.0
        go = present[t] & alive
        if go.any():
            a_d = _alpha(d_cutoff, dt)
            speed[go] = a_d * (x[go] - prev[go]) / dt + (1 - a_d) * speed[go]
            cutoff = min_cutoff + beta * np.linalg.norm(speed[go], axis=-1, keepdims=True)
            a = _alpha(cutoff, dt)
            prev[go] = a * x[go] + (1 - a) * prev[go]
        out[t][present[t]] = prev[present[t]]
        alive = present[t].copy()
    return out


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def bridge_gaps(track: np.ndarray, max_gap: int) -> tuple[np.ndarray, int]:
    """Fill each joint's missing runs of up to ``max_gap`` frames that have the joint on both sides by
    linear interpolation (confidence: the lower of the two ends). Returns the track and the count."""
    out = track.astype(np.float64).copy()
    filled = 0
    for j in range(out.shape[1]):
        seen = np.nonzero(out[:, j, 2] > 0)[0]
        for a, b in zip(seen[:-1], seen[1:]):
            gap = b - a - 1
            if 0 < gap <= max_gap:
                w = (np.arange(1, gap + 1) / (gap + 1))[:, None]
                out[a + 1:b, j, :2] = (1 - w) * out[a, j, :2] + w * out[b, j, :2]
                out[a + 1:b, j, 2] = min(out[a, j, 2], out[b, j, 2])
                filled += gap
    return out, filled


def hold_empty_frames(track: np.ndarray, min_joints: int = MIN_JOINTS) -> tuple[np.ndarray, int]:
    """Frames with fewer than ``min_joints`` joints take the whole pose of the nearest frame that has them.
    Raises ValueError when no frame has a usable pose."""
    usable = np.nonzero((track[:, :, 2] > 0).sum(1) >= min_joints)[0]
    if not len(usable):
        raise ValueError("no frame has a usable pose")
    out = track.copy()
    held = 0
    for t in range(len(track)):
        if t not in usable:
            out[t] = track[usable[np.argmin(np.abs(usable - t))]]
            held += 1
    return out, held


def smooth_track(raw: np.ndarray, fps: float, size: tuple[int, int], max_gap_seconds: float = 0.5,
                 min_cutoff: float = 1.0, beta: float = 10.0) -> tuple[np.ndarray, TrackReport]:
    """(T, 18, 3) raw per-frame keypoints in pixels of ``size`` -> bridged, smoothed keypoints (same
    shape) with every frame usable. Raises ValueError when no frame has a usable pose."""
    report = TrackReport()
    track, report.bridged_joints = bridge_gaps(np.asarray(raw, np.float64), max(1, round(max_gap_seconds * fps)))
    track, report.held_frames = hold_empty_frames(track)
    present = track[:, :, 2] > 0
    side = float(max(size))
    xy = track[:, :, :2] / side
    forward = one_euro(xy, present, fps, min_cutoff, beta)
    backward = one_euro(xy[::-1], present[::-1], fps, min_cutoff, beta)[::-1]
    out = track.copy()
    out[:, :, :2] = np.where(present[..., None], (forward + backward) / 2 * side, 0.0)
    return out, report
