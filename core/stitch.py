"""A large hole stitched from a few dominant shifts of the picture (He & Sun 2012, "Statistics of patch
offsets for image completion"), with the patch-by-patch completion as one more label: where the picture
repeats (a flag's stars and stripes), a part of the hole is filled by one whole shifted copy of it, seams laid
where the copies agree, instead of the completion's flat copy of one dark patch (a "navy mass") or a smear.
``compose.complete(..., stitched=True)`` runs it on the completion's result (docs/engine.md, "Backgrounds: large
holes stitched from dominant shifts", ninth session, engineer C; off in the engine by default)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from core.compose import _blur

SHIFTS = 16  # dominant shifts kept as labels, beside the completion's own offsets
REPEATS = 12  # a shift is repeated at most this many times to reach the known picture from a hole pixel
NEAREST = 1 / 15  # a patch's match is sought at least this share of the side away (He & Sun's tau)
UNIQUE_COST = 6.0  # x (1 - the source patch's best similarity elsewhere): one-off objects (a shuttle) are not copied
REUSE_COST = 5.0  # x the share of the hole that the completion copies from around a cell's source (a flat blob)
REUSE_REACH = 1  # cells each side of a source counted as the same place (on the half-size level)
GUIDE_COST = 1.5  # x the squared RGB distance of a shifted copy from the completion's, both blurred by GUIDE_BLUR
GUIDE_BLUR = 2.0  # (half-size level pixels; twice that on the full level): the layout of colours stays the completion's
CHANGE = 0.002  # every label change between neighbours costs at least this (no needless seams)
ROUNDS = 12  # belief-propagation rounds (half-size level)
SWEEPS = 2  # label refinements on the full work level
AGREE = 0.25  # a smooth shifted copy this close (RGB distance, blurred) to the completion's gives way to it
ISLAND = 64  # a shifted copy's connected piece under this many full-level cells gives way to the completion
SMOOTH = 0.03  # a gradient (per channel step, colours in [0, 1]) under which a source counts as smooth
_UNFIT = 1e3  # a label whose source may not be copied


def dominant_shifts(descriptors: torch.Tensor, known: torch.Tensor, count: int = SHIFTS
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, h, w) unit patch descriptors (no locality) and the (h, w) bool pixels whose patches are wholly
    known -> the (count or fewer, 2) (row, col) shifts most often found from a known patch to its most similar
    known patch at least NEAREST of the side away (the picture's repetitions: a flag's stripes, a star field),
    and (h, w) how unlike anything else each known patch is (1 - that best similarity; 0 elsewhere)."""
    h, w = known.shape
    unique = torch.zeros(h, w)
    at = torch.nonzero(known)
    if len(at) < 2:
        return torch.zeros(0, 2), unique
    f = descriptors[0][:, at[:, 0], at[:, 1]]  # (C, S)
    sim = f.t() @ f
    apart = (at[:, None].float() - at[None].float()).square().sum(-1)
    sim.masked_fill_(apart < (NEAREST * max(h, w)) ** 2, -2)
    best, source = sim.max(1)
    unique[at[:, 0], at[:, 1]] = (1 - best).clamp_min(0)
    shift = at[source] - at  # (S, 2)
    hist = torch.zeros(1, 1, 2 * h + 1, 2 * w + 1)
    hist[0, 0].index_put_((shift[:, 0] + h, shift[:, 1] + w), torch.ones(len(shift)), accumulate=True)
    hist = F.avg_pool2d(hist, 3, 1, 1, count_include_pad=False)[0, 0]
    peak = (hist == F.max_pool2d(hist[None, None], 5, 1, 2)[0, 0]) & (hist > 0)
    where = torch.nonzero(peak)
    order = hist[peak].argsort(descending=True)[:count]
    return (where[order] - torch.tensor([h, w])).float(), unique


def stitch(image: torch.Tensor, hole: torch.Tensor, allowed: torch.Tensor, completed: torch.Tensor,
           descriptors: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) work picture in [0, 1] (even sides), its (h, w) bool hole, the pixels ``allowed`` to copy
    from and the completion's (2, h, w) offsets there; ``descriptors`` (1, C, h / 2, w / 2) of the half-size
    picture -> (2, h, w) offsets: each hole pixel's label's (zero outside the hole).

    The labels are the dominant shifts (``dominant_shifts``, on the half-size picture), each repeated as often
    as it takes to reach the known picture (``_offsets``), and the completion's own offsets. On the half-size
    level, min-sum belief propagation chooses them, minimising how much two neighbours' copies disagree where
    they meet (both pixels, under both labels: He & Sun's seam term), how far a copy is from the known picture
    beside the hole, UNIQUE_COST for copying a one-off patch, REUSE_COST for the completion's copies from a
    place it copies much of the hole from and GUIDE_COST for a shifted copy's colours (blurred) away from the
    completion's; then SWEEPS refinements on the full level, and a shifted copy's piece smaller than ISLAND
    cells given back to the completion (``_without_islands``). Last, a smooth shifted copy close in colour to the
    completion's gives way to it: a backdrop's gradient copied shifted would show steps, the completion
    continues it."""
    h, w = hole.shape
    half = F.avg_pool2d(image, 2)
    hole2 = F.max_pool2d(hole[None, None].float(), 2)[0, 0] > 0
    allowed2 = (F.avg_pool2d(allowed[None, None].float(), 2)[0, 0] > 0.99) & ~hole2
    known2 = F.max_pool2d((~allowed2)[None, None].float(), 5, 1, 2)[0, 0] == 0
    shifts, unique = dominant_shifts(descriptors, known2)
    if not len(shifts) or not bool(hole2.any()):
        return completed
    at2 = torch.nonzero(hole2)
    fallback2 = (completed[:, (2 * at2[:, 0]).clamp_max(h - 1), (2 * at2[:, 1]).clamp_max(w - 1)].t() / 2).round()
    labels = _belief(*_problem(half, at2, _offsets(at2, shifts, fallback2, allowed2), allowed2, unique, GUIDE_BLUR,
                               reuse=True))
    # The full level: each pixel starts from its half-size cell's label.
    at = torch.nonzero(hole)
    index2 = torch.zeros(hole2.shape, dtype=torch.long)
    index2[at2[:, 0], at2[:, 1]] = labels
    start = index2[at[:, 0] // 2, at[:, 1] // 2]
    per = _offsets(at, shifts * 2, completed[:, at[:, 0], at[:, 1]].t(), allowed)
    unique_full = F.interpolate(unique[None, None], size=(h, w), mode="nearest")[0, 0]
    cost, edges, colour = _problem(image, at, per, allowed, unique_full, 2 * GUIDE_BLUR, reuse=False)
    labels = _refined(cost, edges, colour, start)
    labels = _without_islands(labels, at, (h, w), per.shape[1] - 1)
    chosen = per[torch.arange(len(at)), labels]
    out = torch.zeros(2, h, w)
    out[:, at[:, 0], at[:, 1]] = _agreeing(image, at, chosen, per[:, -1]).t()
    return out


def _offsets(at: torch.Tensor, shifts: torch.Tensor, fallback: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """(n, L + 1, 2) per pixel of ``at`` (n, 2): each of the L ``shifts`` repeated as often as it takes to reach
    a pixel ``allowed`` to be copied (at most REPEATS times; else once), so a repetition goes on across the whole
    hole, a period further wherever the nearer copy is itself in the hole (a star field's rows continued a row
    of stars at a time); then that pixel's ``fallback`` (n, 2) offset."""
    h, w = allowed.shape
    times = torch.arange(1, REPEATS + 1).view(1, 1, -1)
    step = shifts.round().long()  # (whole pixels: the histogram's peaks)
    rows = at[:, 0, None, None] + step[None, :, 0, None] * times  # (n, L, R)
    cols = at[:, 1, None, None] + step[None, :, 1, None] * times
    fits = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    fits &= allowed.flatten()[(rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1))]
    first = torch.where(fits, times, REPEATS + 1).amin(-1)  # (n, L): the fewest repeats that reach one
    repeated = step[None].float() * torch.where(first > REPEATS, 1, first)[..., None].float()
    return torch.cat([repeated, fallback[:, None]], 1)


def _problem(image: torch.Tensor, at: torch.Tensor, per: torch.Tensor, allowed: torch.Tensor, unique: torch.Tensor,
             blur: float, reuse: bool) -> tuple[torch.Tensor, list, torch.Tensor]:
    """The labelling of the hole pixels ``at`` (n, 2) with offsets ``per`` (n, L, 2) (the last: the completion's):
    the (n, L) data costs, the edges (p, q, (m, L, L) seam costs) per direction and the (n, L, 3) copied colours."""
    h, w = allowed.shape
    n = len(at)
    colour, fits, src = _copied(image, at, per, allowed)
    cost = torch.where(fits, 0.0, _UNFIT)
    cost[:, :-1] += UNIQUE_COST * unique[src[:, :-1, 0], src[:, :-1, 1]]
    # The completion's colours, blurred, as the layout: a shift may bring texture, not another colour.
    copy = image.clone()
    copy[0][:, at[:, 0], at[:, 1]] = colour[:, -1].t()
    guide = _blur(copy, blur)[0][:, at[:, 0], at[:, 1]].t()  # (n, 3)
    soft = _blur(image, blur)[0][:, src[:, :-1, 0], src[:, :-1, 1]].permute(1, 2, 0)  # (n, L - 1, 3)
    cost[:, :-1] += GUIDE_COST * (soft - guide[:, None]).square().sum(-1)
    if reuse:  # the completion's flat blob: many hole cells copied from around one place
        used = torch.zeros(1, 1, h, w)
        used[0, 0].index_put_((src[:, -1, 0], src[:, -1, 1]), torch.ones(n), accumulate=True)
        used = F.avg_pool2d(used, 2 * REUSE_REACH + 1, 1, REUSE_REACH, divisor_override=1)[0, 0]
        cost[:, -1] += REUSE_COST * used[src[:, -1, 0], src[:, -1, 1]] / n
    index = torch.full((h, w), -1, dtype=torch.long)
    index[at[:, 0], at[:, 1]] = torch.arange(n)
    edges = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = at[:, 0] + dr, at[:, 1] + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        rr, cc = r.clamp(0, h - 1), c.clamp(0, w - 1)
        q = torch.where(inside, index[rr, cc], -2)
        border = torch.nonzero((q == -1) & allowed[rr, cc])[:, 0]  # a known neighbour: the copy goes on from it
        if len(border):
            there = torch.stack([rr[border], cc[border]], 1)
            seen, seen_fits, _ = _copied(image, there, per[border], allowed)
            truth = image[0][:, there[:, 0], there[:, 1]].t()[:, None]
            cost[border] += torch.where(seen_fits, (seen - truth).square().sum(-1), 3.0)
        p = torch.nonzero(q >= 0)[:, 0]
        edges.append((p, q[p]))
    return cost, edges, colour


def _copied(image: torch.Tensor, at: torch.Tensor, offsets: torch.Tensor, allowed: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The colour (n, L, 3) each of ``at`` (n, 2) gets under each offset (n, L, 2), whether its source is
    ``allowed`` (n, L) and the source (n, L, 2), clamped to the picture."""
    h, w = allowed.shape
    src = (at[:, None].float() + offsets).round().long()
    inside = (src[..., 0] >= 0) & (src[..., 0] < h) & (src[..., 1] >= 0) & (src[..., 1] < w)
    src[..., 0].clamp_(0, h - 1)
    src[..., 1].clamp_(0, w - 1)
    r, c = src[..., 0], src[..., 1]
    return image[0][:, r, c].permute(1, 2, 0), inside & allowed[r, c], src


def _seams(colour: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(m, L, L) how much the copies of labels a (at p) and b (at q) disagree where p and q meet: both
    labels' colours compared at p and at q (He & Sun), plus CHANGE for any change."""
    return _apart(colour[p]) + _apart(colour[q]) + CHANGE * (1 - torch.eye(colour.shape[1]))


def _apart(colour: torch.Tensor) -> torch.Tensor:
    """(m, L, 3) -> (m, L, L) squared distances between every two labels' colours (as |a|^2 + |b|^2 - 2 a.b)."""
    norm = colour.square().sum(-1)
    return (norm[:, :, None] + norm[:, None] - 2 * colour @ colour.transpose(1, 2)).clamp_min_(0)


def _belief(cost: torch.Tensor, edges: list, colour: torch.Tensor) -> torch.Tensor:
    """Min-sum loopy belief propagation (damped, synchronous, ROUNDS) on the 4-grid -> (n,) labels."""
    opposite = (1, 0, 3, 2)
    seams = [_seams(colour, p, q) for p, q in edges]
    messages = torch.zeros(4, *cost.shape)  # messages[d][p]: what p hears from its neighbour in direction d
    for _ in range(ROUNDS):
        belief = cost + messages.sum(0)
        heard = torch.zeros_like(messages)
        for d, ((p, q), seam) in enumerate(zip(edges, seams)):
            said = ((belief[p] - messages[d][p])[:, :, None] + seam).amin(1)  # (m, L): over p's label
            heard[opposite[d]][q] = said - said.amin(1, keepdim=True)
        messages = 0.5 * messages + 0.5 * heard
    return (cost + messages.sum(0)).argmin(1)


def _refined(cost: torch.Tensor, edges: list, colour: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SWEEPS of iterated conditional modes: each pixel takes the label cheapest beside its neighbours' labels."""
    n, count = cost.shape
    for _ in range(SWEEPS):
        total = cost.clone()
        for p, q in edges:
            lq = labels[q]
            rows = torch.arange(len(p))
            a, b = colour[p], colour[q]
            total[p] += ((a - a[rows, lq][:, None]).square().sum(-1) + (b - b[rows, lq][:, None]).square().sum(-1)
                         + CHANGE * (torch.arange(count)[None] != lq[:, None]))
        labels = total.argmin(1)
    return labels


def _agreeing(image: torch.Tensor, at: torch.Tensor, chosen: torch.Tensor, completed: torch.Tensor) -> torch.Tensor:
    """(n, 2) offsets: ``chosen``, or the ``completed`` one where the chosen copy is smooth and within AGREE of
    the completion's in colour (blurred): the completion continues a gradient that shifted copies step."""
    h, w = image.shape[-2:]
    soft = _blur(image, 2.0)[0]
    sharp = _blur(image, 1.0)
    gy = F.pad(sharp[..., 2:, 1:-1] - sharp[..., :-2, 1:-1], (1, 1, 1, 1)) * 0.5
    gx = F.pad(sharp[..., 1:-1, 2:] - sharp[..., 1:-1, :-2], (1, 1, 1, 1)) * 0.5
    energy = _blur((gy * gy + gx * gx).sum(1, keepdim=True), 1.5)[0, 0]

    def source(offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src = (at.float() + offsets).round().long()
        return src[:, 0].clamp(0, h - 1), src[:, 1].clamp(0, w - 1)

    r, c = source(chosen)
    r0, c0 = source(completed)
    agree = ((soft[:, r, c] - soft[:, r0, c0]).norm(dim=0) < AGREE) & (energy[r, c] < SMOOTH**2)
    return torch.where(agree[:, None], completed, chosen)


def _without_islands(labels: torch.Tensor, at: torch.Tensor, shape: tuple[int, int], completion: int) -> torch.Tensor:
    """(n,) labels of the pixels ``at`` -> the same, each connected piece of one shifted label smaller than ISLAND
    pixels given back to the ``completion`` label (the last): a lone star or stripe fragment in the navy reads as
    a flaw, to the eye and to the coherence ratio, where the completion's copy is at least whole."""
    grid = np.full(shape, -1)
    grid[at[:, 0].numpy(), at[:, 1].numpy()] = labels.numpy()
    out = grid.copy()
    for label in set(labels.tolist()) - {completion}:
        pieces, _ = ndimage.label(grid == label)
        small = np.bincount(pieces.ravel()) < ISLAND
        small[0] = False  # (not this label)
        out[small[pieces]] = completion
    return torch.from_numpy(out[at[:, 0].numpy(), at[:, 1].numpy()])
