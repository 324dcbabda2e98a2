"""How good is a translation? The numbers ``eval-warp`` reports, usable on their own.

- ``face_nme`` / ``pose_pck``: structure fidelity, the landmarks re-extracted from the output
  against the input's (the caller extracts both with the project's own extractors).
- ``PatchCoherence``: is the output made of the exemplar's own textures, at a fair range of
  scales? About 1 when it is; melted regions, smears and duplicated faces raise it.
- ``fold_fraction``: where the map from output pixels to exemplar pixels folds over (the one
  definition, ``core.charts.folds``, which engine v2's repair uses too).
- ``psnr_ssim``: the pseudo-pair scores against a known target.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree
from skimage.metrics import structural_similarity

from core.charts.folds import fold_fraction as fold_fraction  # the one definition, re-exported
from core.charts.folds import jacobian_determinant as jacobian_determinant
from core.imageio import fit_image

# iBUG 68: outer corners of the right (36) and left (45) eye; their distance is the usual
# "inter-ocular" normaliser of 300-W's NME.
OUTER_EYE_CORNERS = (36, 45)
# COCO-18 joints used for the body size of PCK.
NOSE, NECK, RIGHT_SHOULDER, LEFT_SHOULDER, RIGHT_HIP, LEFT_HIP = 0, 1, 2, 5, 8, 11
HEAD_JOINTS = (0, 14, 15, 16, 17)  # nose, eyes, ears

PATCH = 7
OUTPUT_SIDE = 160  # the output's centre square is compared at this side ...
EXEMPLAR_SIDE = 240  # ... with the exemplar's centre square at this side, rescaled by:
BANK_SCALES = (  # (scale, interpolation, stride of the patch grid)
    (2.0, cv2.INTER_CUBIC, 2),  # zooming in is fair (the output may enlarge the exemplar's face)
    (1.5, cv2.INTER_CUBIC, 2),
    (1.0, cv2.INTER_AREA, 1),
    (0.75, cv2.INTER_AREA, 1),
    (0.5, cv2.INTER_AREA, 1),
)
QUERY_STRIDE = 2


# -- structure fidelity --------------------------------------------------------------------------

def _visible(points: np.ndarray) -> np.ndarray:
    """(N,) bool: a point with a positive confidence and finite coordinates."""
    return (points[:, 2] > 0) & np.isfinite(points[:, :2]).all(1)


def face_nme(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """Mean distance of (68, 3) iBUG ``landmarks`` (x, y, confidence) to ``reference``'s, over the
    reference's inter-ocular distance (outer eye corners). Points missing on either side are skipped."""
    landmarks, reference = np.asarray(landmarks, np.float64), np.asarray(reference, np.float64)
    if landmarks.shape != (68, 3) or reference.shape != (68, 3):
        raise ValueError(f"face NME needs two (68, 3) iBUG arrays, got {landmarks.shape} and {reference.shape}")
    right, left = OUTER_EYE_CORNERS
    if not _visible(reference)[[right, left]].all():
        raise ValueError("the reference lacks an outer eye corner: no inter-ocular distance")
    iod = float(np.linalg.norm(reference[right, :2] - reference[left, :2]))
    both = _visible(landmarks) & _visible(reference)
    if iod <= 0 or not both.any():
        raise ValueError("no landmark is present on both sides (or the eyes coincide)")
    return float(np.linalg.norm(landmarks[both, :2] - reference[both, :2], axis=1).mean() / iod)


def head_to_hip(reference: np.ndarray) -> float:
    """Body size for PCK, from (18, 3) COCO-18 keypoints: the distance from the head (nose, else the
    mean of the visible eyes / ears, else the neck) to the middle of the visible hips. Without hips
    (a head-and-shoulders picture) it is estimated as 2x the shoulder width (adult proportions)."""
    kp = np.asarray(reference, np.float64)
    seen = _visible(kp)
    hips = [j for j in (RIGHT_HIP, LEFT_HIP) if seen[j]]
    head_joints = [j for j in HEAD_JOINTS if seen[j]]
    head = kp[NOSE, :2] if seen[NOSE] else kp[head_joints, :2].mean(0) if head_joints else \
        kp[NECK, :2] if seen[NECK] else None
    if hips and head is not None:
        return float(np.linalg.norm(head - kp[hips, :2].mean(0)))
    if seen[RIGHT_SHOULDER] and seen[LEFT_SHOULDER]:
        return 2.0 * float(np.linalg.norm(kp[RIGHT_SHOULDER, :2] - kp[LEFT_SHOULDER, :2]))
    raise ValueError("the reference has neither head and hips nor both shoulders: no body size for PCK")


def pose_pck(keypoints: np.ndarray, reference: np.ndarray, threshold: float = 0.2) -> float:
    """PCK: the fraction of ``reference``'s visible (18, 3) COCO-18 joints that ``keypoints`` finds
    within ``threshold`` x the reference's head-to-hip size (a joint missing in the output is a miss)."""
    keypoints, reference = np.asarray(keypoints, np.float64), np.asarray(reference, np.float64)
    if keypoints.shape != (18, 3) or reference.shape != (18, 3):
        raise ValueError(f"PCK needs two (18, 3) COCO-18 arrays, got {keypoints.shape} and {reference.shape}")
    wanted = _visible(reference)
    if not wanted.any():
        raise ValueError("the reference has no visible joint")
    radius = threshold * head_to_hip(reference)
    dist = np.linalg.norm(keypoints[:, :2] - reference[:, :2], axis=1)
    hit = _visible(keypoints) & (dist <= radius)
    return float(hit[wanted].mean())


# -- patch coherence -----------------------------------------------------------------------------

def _float_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) / (H, W, 3|4) -> float32 (H, W, 3) in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3].astype(np.float32) / 255.0


def _patches(image: np.ndarray, stride: int) -> np.ndarray:
    """(N, 147) float32: every ``PATCH`` x ``PATCH`` RGB patch of ``image`` (H, W, 3) on a grid of ``stride``."""
    windows = np.lib.stride_tricks.sliding_window_view(image, (PATCH, PATCH), axis=(0, 1))[::stride, ::stride]
    return np.ascontiguousarray(windows.reshape(-1, 3 * PATCH * PATCH), dtype=np.float32)


class NearestPatch:
    """Exact nearest-neighbour distances from query vectors to a fixed bank (M, D), fast.

    A k-d tree holds each bank vector as its coordinates on the bank's leading principal
    directions plus the norm of what is left; the distance there is a lower bound of the true
    one (the triangle inequality on the rest). The tree's nearest few get their true distance;
    when the next bound does not rule out every other candidate, the query asks for 8x more, and
    after a few rounds scans the whole bank. So the result is the exact nearest distance (bounds
    get a 1e-6 margin for rounding). Measured on the astronaut's bank (185 526 patches) at this
    machine's load: 6 s per 160 px output against 18 s for an exhaustive float32 matrix-product
    search, whose arg-min is not even exact; white noise (no bound prunes) falls back to the scan."""

    def __init__(self, bank: np.ndarray, dims: int = 12, candidates: int = 16, rounds: int = 2):
        centred = np.asarray(bank, np.float64)
        self.centre = centred.mean(0)
        centred -= self.centre
        self.bank = centred.astype(np.float32)  # (M, D)
        _, vectors = np.linalg.eigh(centred.T @ centred)
        self.basis = vectors[:, -dims:]  # (D, dims): the leading principal directions
        self.tree = cKDTree(self._embed(self.bank))
        self.candidates, self.rounds = candidates, rounds
        self.fallbacks = 0  # queries that needed the whole bank scanned (for tests and curiosity)

    def _embed(self, x: np.ndarray) -> np.ndarray:
        """(N, D) centred -> (N, dims + 1): principal coordinates, then the norm of the rest."""
        x = x.astype(np.float64)
        low = x @ self.basis
        rest = np.sqrt(np.maximum((x * x).sum(1) - (low * low).sum(1), 0))
        return np.concatenate([low, rest[:, None]], axis=1)

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        """(N,) float64 distance from each row of ``queries`` (N, D) to its nearest bank row."""
        q = np.asarray(queries, np.float64) - self.centre
        points = self._embed(q)
        out = np.empty(len(q))
        todo, k = np.arange(len(q)), self.candidates
        workers = max(1, torch.get_num_threads())
        for _ in range(self.rounds):
            if not len(todo):
                return out
            bound, index = self.tree.query(points[todo], k=k + 1, workers=workers)
            best = self._distances(q[todo], index[:, :-1])
            sure = bound[:, -1] * (1 - 1e-6) - 1e-6 >= best  # nothing further away can beat it
            out[todo[sure]] = best[sure]
            todo, k = todo[~sure], k * 8
        if len(todo):
            self.fallbacks += len(todo)
            out[todo] = self._scan(q[todo])
        return out

    def _distances(self, q: np.ndarray, index: np.ndarray, rows: int = 1024) -> np.ndarray:
        """(n,) the smallest true distance from each q (n, D) to the bank rows ``index`` (n, k)."""
        out = np.empty(len(q))
        for s in range(0, len(q), rows):
            diff = self.bank[index[s:s + rows]] - q[s:s + rows, None]  # (r, k, D)
            out[s:s + rows] = np.sqrt(np.einsum("rkd,rkd->rk", diff, diff).min(1))
        return out

    def _scan(self, q: np.ndarray, chunk: int = 16384) -> np.ndarray:
        """(n,) nearest distances by a scan of the whole bank (float64)."""
        best = np.full(len(q), np.inf)
        for s in range(0, len(self.bank), chunk):
            part = self.bank[s:s + chunk].astype(np.float64)
            d2 = (q * q).sum(1)[:, None] + (part * part).sum(1)[None] - 2 * q @ part.T
            best = np.minimum(best, d2.min(1))
        return np.sqrt(np.maximum(best, 0))


class PatchCoherence:
    """The patch-coherence ratio of outputs made from one exemplar (issue 13's definition).

    For each 7x7 patch of the output's centre square at 160 px (every 2nd position): the distance
    to the nearest 7x7 patch of the exemplar's centre square at 240 px, taken at scales 2 and 1.5
    (bicubic, every 2nd position) and 1, 0.75, 0.5 (area, every position); their mean over
    sqrt(147) (an RMS difference per value, in [0, 1] units), divided by the same figure for the
    exemplar's own centre square at 160 px. The bank and the denominator are built once per exemplar.
    """

    def __init__(self, exemplar: np.ndarray):
        square = fit_image(_float_rgb(exemplar), (EXEMPLAR_SIDE, EXEMPLAR_SIDE))
        banks = []
        for scale, interpolation, stride in BANK_SCALES:
            side = round(EXEMPLAR_SIDE * scale)
            scaled = square if side == EXEMPLAR_SIDE else cv2.resize(square, (side, side), interpolation=interpolation)
            banks.append(_patches(np.clip(scaled, 0, 1), stride))
        self.search = NearestPatch(np.concatenate(banks))  # bank: (M, 147), M = 185 526
        self.exemplar_score = self.score(exemplar)

    def score(self, image: np.ndarray) -> float:
        """Mean nearest-patch distance of ``image``'s centre square at 160 px over sqrt(147)."""
        square = fit_image(_float_rgb(image), (OUTPUT_SIDE, OUTPUT_SIDE))
        queries = _patches(square, QUERY_STRIDE)
        return float(self.search(queries).mean()) / math.sqrt(queries.shape[1])

    def __call__(self, output: np.ndarray) -> float:
        """The ratio for ``output`` (H, W, 3) uint8."""
        return self.score(output) / max(self.exemplar_score, 1e-12)


def patch_coherence(output: np.ndarray, exemplar: np.ndarray) -> float:
    """The patch-coherence ratio of ``output`` against ``exemplar`` (see ``PatchCoherence``)."""
    return PatchCoherence(exemplar)(output)


# -- fold-overs ----------------------------------------------------------------------------------
# One definition for the engine's repair and this figure (core/charts/folds.py): a grid cell folds when
# the bilinear interpolation of the map reverses orientation anywhere in it (its smallest corner
# determinant is <= 0), counted over cells whose four corners the output uses and that lie in one
# piece of the map (a seam between quilted tiles is a jump by design, not a fold). Re-exported above.

# -- pseudo pairs ----------------------------------------------------------------------------------

def psnr_ssim(image: np.ndarray, target: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``image`` against ``target`` (uint8 RGB): whole picture and inside ``region``."""
    a, b = image.astype(np.float64), target.astype(np.float64)
    err = ((a - b) ** 2).mean(-1)
    _, ssim_map = structural_similarity(a, b, data_range=255, channel_axis=2, full=True)
    ssim_map = ssim_map.mean(-1)

    def psnr(mse: float) -> float:
        return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))

    return {"psnr": psnr(err.mean()), "ssim": float(ssim_map.mean()),
            "psnr_subject": psnr(err[region].mean()), "ssim_subject": float(ssim_map[region].mean())}
