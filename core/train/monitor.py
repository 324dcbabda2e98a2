"""What a training run shows and records: a progress bar with ETA, TensorBoard scalars and image
grids (condition | exemplar | each level's warp | output | target), and ``metrics.jsonl``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

METRICS = "metrics.jsonl"


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) float in [-1, 1] -> uint8 in [0, 255]."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def sample_grid(preview: torch.Tensor, exemplar: torch.Tensor, warps: Sequence[torch.Tensor],
                output: torch.Tensor | None, target: torch.Tensor, rows: int = 4) -> np.ndarray:
    """One row per sample: condition picture | exemplar | warp of every level (coarsest first,
    nearest-upsampled) | output | target. preview (B, 3, H, W) uint8, images in [-1, 1].
    Returns (rows * H, columns * W, 3) uint8."""
    size = target.shape[-2:]
    tiles = [preview[:rows].cpu(), to_uint8(exemplar[:rows]).cpu()]
    tiles += [to_uint8(F.interpolate(w[:rows].float(), size=size, mode="nearest")).cpu() for w in warps]
    if output is not None:
        tiles.append(to_uint8(output[:rows]).cpu())
    tiles.append(to_uint8(target[:rows]).cpu())
    grid = torch.cat([torch.cat(list(t), dim=1) for t in tiles], dim=2)  # (3, rows*H, cols*W)
    return grid.permute(1, 2, 0).contiguous().numpy()


class Monitor:
    """Progress bar, TensorBoard and the metrics file; silent on ranks other than 0."""

    def __init__(self, out: Path, total: int, start: int, enabled: bool = True):
        self.enabled, self.out = enabled, Path(out)
        self.start_time, self.start_step = time.perf_counter(), start
        self.bar = self.writer = None
        if not enabled:
            return
        _truncate_metrics(self.out / METRICS, start)  # a resumed run rewrites what came after its checkpoint
        self.bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"), purge_step=start if start else None)
        except ImportError:  # tensorboard is optional at run time
            self.writer = None

    def step(self, step: int, postfix: dict[str, float] | None = None) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if postfix:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)

    def seconds_per_step(self, step: int) -> float:
        done = step - self.start_step
        return (time.perf_counter() - self.start_time) / done if done > 0 else float("nan")

    def log(self, step: int, values: dict, prefix: str = "train") -> None:
        """Scalars to TensorBoard (``prefix/name``) and one JSON line to metrics.jsonl."""
        if not self.enabled:
            return
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(f"{prefix}/{k}", v, step)
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps({"step": step, "kind": prefix, **values}) + "\n")

    def image(self, step: int, grid: np.ndarray, tag: str = "samples") -> None:
        if not self.enabled:
            return
        from core.imageio import save_image

        folder = self.out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        save_image(folder / f"{tag}-{step:08d}.png", grid)
        if self.writer is not None:
            self.writer.add_image(tag, grid, step, dataformats="HWC")

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _truncate_metrics(path: Path, start: int) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= start:
                keep.append(line)
        except json.JSONDecodeError:  # a line cut off by a kill
            continue
    path.write_text("".join(k + "\n" for k in keep))
