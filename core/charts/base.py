"""The shared chart interface: what every chart builder (face, body, masks) returns to the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


@dataclass
class ChartMap:
    """A dense map from output pixels to exemplar pixels, built from matched charts."""

    positions: np.ndarray  # (H, W, 2) float32: (row, col) in the exemplar's pixels at the
    # size it was given (pixel centres at integer coordinates)
    defined: np.ndarray  # (H, W) bool: where a chart defines the map (subject / parts / classes)
    confidence: np.ndarray  # (H, W) float32 in [0, 1]: how sure the chart is of the map
    region: np.ndarray  # (H, W) int16: chart id per output pixel (0 = background/none);
    # lets the engine fill, blend and report per part
    missing: list[str] = field(default_factory=list)  # parts the output needs that the exemplar lacks
    notes: list[str] = field(default_factory=list)  # user-facing remarks (e.g. "hands: no match")
    stand_in: np.ndarray | None = None  # (H, W) bool, outside ``defined``: pixels of a part the exemplar does
    # not show whose ``positions`` point at a stand-in's texture (the other arm, the same limb's other
    # segment); not one smooth map with their neighbours, so the engine samples them as a fill
    pieces: np.ndarray | None = None  # (H, W) int32: where the map jumps by design (quilted tiles, mask
    # classes): a cell across two pieces is a seam, not a fold (core.charts.folds); None: one smooth map
    held: np.ndarray | None = None  # (H, W) bool: what the input's person holds (no part of the subject to be
    # drawn in the exemplar's looks), or what of an upright head falls off the exemplar's person (pose): the
    # engine shows the exemplar's background there; None: nothing


def nearest_in(region: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(N, 2) x, y points (pixel centres at integers) with those off ``region`` (H, W bool, not empty) moved
    to its nearest pixel (the charts' snap of a position onto the exemplar's part, region or clothing)."""
    h, w = region.shape
    qx = np.clip(np.round(q[:, 0]).astype(int), 0, w - 1)
    qy = np.clip(np.round(q[:, 1]).astype(int), 0, h - 1)
    off = ~region[qy, qx]
    if not off.any():
        return q
    _, (iy, ix) = ndimage.distance_transform_edt(~region, return_indices=True)
    out = q.copy()
    out[off, 0], out[off, 1] = ix[qy[off], qx[off]], iy[qy[off], qx[off]]
    return out
