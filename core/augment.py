"""Geometric augmentation for pseudo exemplars T(x): flip, crop-and-resize, rotation, smooth warp.

Training (pseudo pairs) and ``eval-warp`` share this code. One random sampling grid per image
is drawn from a ``torch.Generator`` and applied identically to the image and its label, so
T(x) and T(label) stay aligned, and the grid itself says where each T(x) pixel came from in x.

    pair = pseudo_exemplar(image, label, generator=torch.Generator().manual_seed(0))
    pair.image   # (B, 3, H, W) T(x)
    pair.grid    # (B, H, W, 2) for each T(x) pixel: its (x, y) position in x, grid_sample units
    pair.inverse # (B, H, W, 2) for each x pixel: its (x, y) position in T(x) (the correspondence
                 # the model should find), pair.visible where that position lies inside T(x)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry import create_meshgrid


@dataclass
class PseudoPair:
    """A pseudo exemplar and where its pixels come from."""

    image: torch.Tensor  # (B, C, H, W): T(x)
    label: torch.Tensor | None  # (B, L, H, W): T(label), or None
    grid: torch.Tensor  # (B, H, W, 2): (x, y) in x for every T(x) pixel, in [-1, 1] (align_corners=False)
    valid: torch.Tensor  # (B, 1, H, W) bool: T(x) pixels whose source lies inside x
    inverse: torch.Tensor  # (B, H, W, 2): (x, y) in T(x) for every x pixel, same units
    visible: torch.Tensor  # (B, 1, H, W) bool: x pixels that T(x) shows (the crop kept them)


def random_grid(batch: int, size: tuple[int, int], generator: torch.Generator | None = None,
                strength: float = 1.0, flip: bool = True, control_points: int = 5,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw (B, H, W, 2) sampling grids: T(x) = grid_sample(x, grid).

    ``strength`` scales every random magnitude (0 = identity): crop up to 20% of each side,
    aspect jitter 10%, rotation 8 degrees, smooth displacement ~3% of the side on a
    ``control_points`` x ``control_points`` lattice, upsampled bicubically.
    """
    h, w = int(size[0]), int(size[1])
    s = float(strength)

    def uniform(*shape) -> torch.Tensor:
        return torch.rand(*shape, generator=generator) * 2 - 1  # in [-1, 1), drawn on the CPU

    # Smooth displacement field (piecewise-smooth elastic warp), in normalised units.
    lattice = uniform(batch, 2, control_points, control_points) * 0.03 * s
    elastic = F.interpolate(lattice, size=(h, w), mode="bicubic", align_corners=True)  # (B, 2, H, W)

    # Crop-and-resize + rotation as one affine map of normalised coordinates.
    zoom = 1 - 0.2 * s * torch.rand(batch, generator=generator)  # crop side fraction
    aspect = 1 + 0.1 * s * uniform(batch)
    sx, sy = zoom * aspect.sqrt(), zoom / aspect.sqrt()
    sx, sy = sx.clamp(max=1.0), sy.clamp(max=1.0)
    tx, ty = (1 - sx) * uniform(batch), (1 - sy) * uniform(batch)  # the crop stays inside the frame
    angle = uniform(batch) * math.radians(8.0) * s
    flips = (torch.rand(batch, generator=generator) < 0.5) if flip else torch.zeros(batch, dtype=torch.bool)

    base = create_meshgrid(h, w, normalized_coordinates=True)  # (1, H, W, 2) pixel centres, corners at +-1
    base = base * torch.tensor([(w - 1) / w, (h - 1) / h])  # -> align_corners=False convention
    pts = base + elastic.permute(0, 2, 3, 1)  # (B, H, W, 2)
    # Rotate in an isotropic frame (pixels scaled by the longer side), then scale and shift.
    ax, ay = w / max(h, w), h / max(h, w)
    px, py = pts[..., 0] * ax, pts[..., 1] * ay
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    rx, ry = (cos * px - sin * py) / ax, (sin * px + cos * py) / ay
    gx = rx * sx.view(-1, 1, 1) + tx.view(-1, 1, 1)
    gy = ry * sy.view(-1, 1, 1) + ty.view(-1, 1, 1)
    gx = torch.where(flips.view(-1, 1, 1), -gx, gx)
    return torch.stack([gx, gy], dim=-1).to(device)


def apply_grid(x: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resample x (B, C, H, W) at grid (B, H', W', 2); edges repeat outside the frame."""
    return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode="border", align_corners=False)


def pseudo_exemplar(image: torch.Tensor, label: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, strength: float = 1.0, flip: bool = True,
                    label_mode: str = "bilinear") -> PseudoPair:
    """T(x) for a batch: the same random geometric transform on the image and its label.

    image (B, C, H, W); label (B, L, H, W) or None. ``label_mode="nearest"`` keeps one-hot
    labels one-hot. Note that a flip mirrors the picture only: left/right-specific label
    channels (pose limbs) are not swapped, exactly as in the pixel data.
    """
    b, _, h, w = image.shape
    grid = random_grid(b, (h, w), generator, strength, flip, device=image.device)
    warped_label = apply_grid(label, grid, label_mode) if label is not None else None
    valid = (grid.abs() <= 1).all(-1).unsqueeze(1)
    inverse, visible = invert_grid(grid)
    return PseudoPair(apply_grid(image, grid), warped_label, grid, valid, inverse, visible)


def _centres(h: int, w: int, device, dtype) -> torch.Tensor:
    """(1, H, W, 2) pixel centres in normalised (x, y) units, align_corners=False."""
    base = create_meshgrid(h, w, normalized_coordinates=True, device=device, dtype=dtype)
    return base * torch.tensor([(w - 1) / w, (h - 1) / h], device=device, dtype=dtype)


def invert_grid(grid: torch.Tensor, iterations: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel of x lies in T(x) = grid_sample(x, grid): (B, H, W, 2) normalised (x, y),
    and (B, 1, H, W) bool where that lies within T(x)'s pixel centres and was found (residual
    under 0.05 px).

    Newton's method on grid(q) = p from q = p, with the grid's local Jacobian (central
    differences, sampled bilinearly); outside the frame the grid is extended linearly. The first
    step solves the affine part (crop, rotation, flip) exactly, the smooth elastic part converges
    in a few more. Elementwise arithmetic and ``grid_sample`` only (no LAPACK), so the result is
    bit-identical from run to run, as resumable training needs.
    """
    b, h, w, _ = grid.shape
    g = grid.float().permute(0, 3, 1, 2)  # (B, 2, H, W) as an image
    dgx = torch.gradient(g, dim=3)[0] * (w / 2)  # d grid / d q_x, q in normalised units
    dgy = torch.gradient(g, dim=2)[0] * (h / 2)
    jac = torch.cat([dgx, dgy], 1)  # (B, 4, H, W): [dgx/dqx, dgy/dqx, dgx/dqy, dgy/dqy]
    field = torch.cat([g, jac], 1)
    target = _centres(h, w, grid.device, torch.float32).expand(b, -1, -1, -1)  # (B, H, W, 2)
    q = target
    half = torch.tensor([1 / w, 1 / h], device=grid.device)  # the outermost pixel centres: +-(1 - half)
    for _ in range(iterations):
        inside = torch.maximum(torch.minimum(q, 1 - half), half - 1)
        at = F.grid_sample(field, inside, mode="bilinear", padding_mode="border", align_corners=False)
        gx, gy, xx, yx, xy, yy = at.unbind(1)  # grid value, then d(gx, gy)/dqx and d(gx, gy)/dqy
        ox, oy = (q - inside).unbind(-1)
        rx = gx + xx * ox + xy * oy - target[..., 0]  # residual of the linearly extended grid
        ry = gy + yx * ox + yy * oy - target[..., 1]
        det = xx * yy - xy * yx  # a 2x2 solve in closed form
        q = q - torch.stack([yy * rx - xy * ry, xx * ry - yx * rx], -1) / det.unsqueeze(-1)
    inside = torch.maximum(torch.minimum(q, 1 - half), half - 1)
    value = F.grid_sample(g, inside, mode="bilinear", padding_mode="border", align_corners=False)
    residual = (value.permute(0, 2, 3, 1) - target).abs() * torch.tensor([w / 2, h / 2], device=grid.device)
    visible = (q - inside).abs().amax(-1).le(1e-6) & (residual.amax(-1) < 0.05)
    return q.to(grid.dtype), visible.unsqueeze(1)


def grid_to_pixels(grid: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 2) normalised grid -> (B, 2, H, W) (row, col) positions in x's pixels."""
    _, h, w, _ = grid.shape
    col = (grid[..., 0] + 1) * w / 2 - 0.5
    row = (grid[..., 1] + 1) * h / 2 - 0.5
    return torch.stack([row, col], dim=1)
