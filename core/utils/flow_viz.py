"""Flow fields as colour-wheel pictures (the Middlebury / RAFT convention).

Hue gives the direction of the displacement, saturation its length relative to ``max_radius``;
zero flow is white. Input is (H, W, 2) as (dx, dy) in pixels.
"""

from __future__ import annotations

import numpy as np

# Colour wheel segment lengths (Baker et al., "A Database and Evaluation Methodology for Optical Flow").
RY, YG, GC, CB, BM, MR = 15, 6, 4, 11, 13, 6


def make_colorwheel() -> np.ndarray:
    """(55, 3) float RGB colours around the wheel, 0..255."""
    ncols = RY + YG + GC + CB + BM + MR
    wheel = np.zeros((ncols, 3))
    col = 0
    for length, channel, rising in ((RY, 1, True), (YG, 0, False), (GC, 2, True),
                                    (CB, 1, False), (BM, 0, True), (MR, 2, False)):
        ramp = np.floor(255 * np.arange(length) / length)
        fixed = (channel + 2) % 3 if rising else (channel + 1) % 3  # the channel held at 255
        wheel[col:col + length, fixed] = 255
        wheel[col:col + length, channel] = ramp if rising else 255 - ramp
        col += length
    return wheel


_WHEEL = make_colorwheel()


def flow_to_image(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """(H, W, 2) flow (dx, dy) -> (H, W, 3) uint8 RGB. ``max_radius`` (pixels) maps to full
    saturation; by default the largest displacement in this flow."""
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    rad = np.sqrt(u**2 + v**2)
    scale = max_radius if max_radius is not None else float(rad.max()) if rad.size else 0.0
    scale = max(scale, 1e-5)
    u, v, rad = u / scale, v / scale, rad / scale
    ncols = len(_WHEEL)
    angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % ncols
    f = (fk - k0)[..., None]
    colour = ((1 - f) * _WHEEL[k0] + f * _WHEEL[k1]) / 255.0  # (H, W, 3)
    r = np.minimum(rad, 1.0)[..., None]
    colour = 1 - r * (1 - colour)  # saturation grows with the length; white at zero
    colour[np.broadcast_to(rad[..., None] > 1, colour.shape)] *= 0.75  # beyond the scale: darker
    return np.clip(np.floor(255 * colour), 0, 255).astype(np.uint8)
