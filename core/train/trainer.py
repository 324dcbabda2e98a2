"""The training loop: data, iterations (``TrainingStep``), checkpoints, evaluation and logs.

Resumable (``--resume`` restores weights, optimisers, RNG states and the data position, so a
killed run continues exactly) and distributed: under ``torchrun`` every process trains on its
shard of the data (DistributedSampler) with DistributedDataParallel (NCCL on GPU, gloo on CPU);
rank 0 writes checkpoints, logs and images.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader

from core.config import WarpaintConfig
from core.errors import CheckpointError, InputError
from core.model import Warpaint, check_size
from core.train import checkpoint as ckpt
from core.train.data import (
    PAIR_LIST,
    RETRIEVED_KIND,
    ConditionCache,
    ResumableSampler,
    TrainingSet,
    collate,
    find_images,
    read_pair_list,
    split_holdout,
)
from core.train.monitor import Monitor, sample_grid
from core.train.presets import TrainConfig
from core.train.step import TrainingStep
from core.train.vgg import VGG19, find_vgg_weights
from core.vocabulary import CONFIG_FILE

TRAIN_CONFIG = "train.json"


# -- distributed -----------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    active: bool = False  # a process group is up (launched by torchrun, even with one process)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def setup_distributed() -> Dist:
    """Join the torchrun process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:  # a plain run: no process group
        return Dist()
    if not dist.is_initialized():
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), active=True)


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer's bytes: equal digests = identical weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# -- the trainer -----------------------------------------------------------------------------

@dataclass
class TrainResult:
    step: int
    out: Path
    seconds_per_step: float
    last: dict = field(default_factory=dict)  # last logged losses
    evaluation: dict = field(default_factory=dict)  # last eval-warp figures


class Trainer:
    """``Trainer(config, data, out).fit()`` trains and checkpoints into ``out``."""

    def __init__(self, config: TrainConfig, data: str | Path, out: str | Path, task: str | None = None,
                 pairs: str | Path | None = None, resume: bool = False, cache_dir: str | Path | None = None,
                 device: str | torch.device | None = None):
        self.cfg, self.data, self.out = config, Path(data), Path(out)
        self.dist = setup_distributed()
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.notes: list[str] = []  # messages for the user, shown once training starts
        images = find_images(self.data)
        base_model = config.model_config()
        try:
            check_size(base_model, (config.size, config.size))
        except ValueError as exc:
            raise InputError(f"Training size {config.size} does not suit this model: {exc}.") from exc
        self._check_out(resume)
        torch.manual_seed(config.seed + self.dist.rank)

        # data: conditions cached once (each rank extracts its share), then the split
        self.task = task or base_model.task
        size = (config.size, config.size)
        self.cache = ConditionCache(self.data, self.task, size, cache_dir)
        items = self._prepare_conditions(images)
        train_items, self.heldout = split_holdout(items, config.holdout)
        pair_map, kind = self._pairs(pairs, train_items)
        pair_weight = config.pair_warp_weight
        if pair_weight is None:
            pair_weight = 0.0 if kind == RETRIEVED_KIND else 1.0
        self.dataset = TrainingSet(self.data, train_items, self.cache, config.seed, pair_map,
                                   config.pair_probability if pair_map else 0.0, pair_weight, config.augment_strength)
        channels = int(self.cache.load(train_items[0]).label.shape[0])
        self.model_config = config.model_config(label_channels=channels, task=self.task)
        if self.model_config.label_channels != channels:
            raise InputError(f"The {self.task} conditions have {channels} channels but the model preset "
                             f"{config.model!r} expects {self.model_config.label_channels}: pick a {self.task} preset.")


        # networks, optimisers, AMP
        self.learner = TrainingStep(config, self.model_config, self.device, vgg=self._vgg())
        self.model, self.discriminator = self.learner.model, self.learner.discriminator
        self.step = 0
        if resume:
            self._resume()
        if self.dist.active:
            self.learner.distribute()

    # -- set-up helpers ----------------------------------------------------------------------
    def _check_out(self, resume: bool) -> None:
        if not resume and ckpt.latest_checkpoint(self.out) is not None:
            raise InputError(f"{self.out} already holds a training run: add --resume to continue it, "
                             "or choose another --out.")
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt.clean_partial(self.out)
        self.dist.barrier()

    def _prepare_conditions(self, items: list[str]) -> list[str]:
        """Extract missing conditions (rank r does every world-th photo), then keep the usable ones."""
        todo = [rel for rel in items[self.dist.rank::self.dist.world] if self.cache.status(rel) == "missing"]
        if todo:
            from tqdm import tqdm

            for rel in tqdm(todo, desc=f"conditions ({self.task})", disable=not self.dist.main, unit="photo"):
                self.cache.build(rel)
        self.dist.barrier()
        for rel in items:  # another node's share, when the data folder is not shared between machines
            if self.cache.status(rel) == "missing":
                self.cache.build(rel)
        status = {rel: self.cache.status(rel) for rel in items}
        usable = [rel for rel in items if status[rel] == "ok"]
        skipped = len(items) - len(usable)
        if skipped:
            self.notes.append(f"{skipped} of {len(items)} photos have no usable {self.task} condition and are "
                              f"left out (reasons in {self.cache.folder}/*.skip).")
        if not usable:
            raise InputError(f"None of the {len(items)} photos in {self.data} gave a {self.task} condition.")
        return usable

    def _pairs(self, pairs: str | Path | None, items: list[str]) -> tuple[dict, str]:
        path = Path(pairs) if pairs else self.data / PAIR_LIST
        if not pairs and not path.is_file():
            return {}, "pairs"
        pair_map, kind = read_pair_list(path, items)
        self.notes.append(f"Real exemplars: {len(pair_map)} photos have {kind} exemplars in {path} "
                          f"(used with probability {self.cfg.pair_probability}).")
        return pair_map, kind

    def _vgg(self) -> VGG19 | None:
        cfg = self.cfg
        if not (cfg.weight_vgg > 0 or cfg.weight_perceptual > 0):
            return None
        path = find_vgg_weights(cfg.vgg_weights)
        if path is None:
            self.notes.append("VGG19 weights (vgg19-dcbb9e9d.pth) not found in the torch cache: the VGG "
                              "feature-matching, perceptual and contextual losses are OFF. Pass "
                              "--vgg-weights PATH to turn them on (see docs/training.md).")
            return None
        self.notes.append(f"VGG19 losses on ({path}).")
        return VGG19.from_file(path, cfg.vgg_input).to(self.device)

    def _resume(self) -> None:
        folder = ckpt.latest_checkpoint(self.out)
        if folder is None:
            self.notes.append(f"--resume: no checkpoint in {self.out}; starting from scratch.")
            return
        saved = ckpt.load_checkpoint(folder)
        config = WarpaintConfig.load(folder / CONFIG_FILE)
        if config != self.model_config:
            raise CheckpointError(f"{folder} was trained with another model config; resume with the same "
                                  "--config, or start a new --out.")
        self.model.load_weights(saved["model"], source=str(folder))
        self.discriminator.load_state_dict(saved["discriminator"])
        ema = self.learner.ema
        if ema is not None:
            ema.model.load_state_dict(saved["ema"] if saved["ema"] is not None else saved["model"])
        state = saved["state"]
        self.learner.load_state_dict(state)
        self.step = int(state["step"])
        rngs = state.get("rng", [])
        if len(rngs) == self.dist.world:
            ckpt.set_rng_state(rngs[self.dist.rank])
        else:
            self.notes.append(f"Resumed with {self.dist.world} processes instead of {len(rngs)}: "
                              "random streams are re-seeded (the data order stays seeded).")
        self.notes.append(f"Resumed from {folder} at step {self.step}.")

    # -- evaluation and checkpoints ----------------------------------------------------------------
    @torch.no_grad()
    def evaluate_warp(self, model: Warpaint | None = None) -> dict[str, float]:
        """Warp quality on held-out pseudo pairs (fixed seeds, made as in training): PSNR / SSIM of the
        finest warp against x, beside the identity baseline (T(x) itself); PSNR over the pixels T(x)
        shows (``visible_psnr``); and ``epe``, the finest level's mean end-point error in pixels
        (weighted mean of the candidates' positions vs the augmentation's ground truth)."""
        import kornia.metrics as km

        model = model or (self.learner.ema.model if self.learner.ema is not None else self.model)
        items = self.heldout or self.dataset.items[: max(1, self.cfg.holdout)]
        was_training = model.training
        model.eval()
        scores: dict[str, list[float]] = {k: [] for k in ("psnr", "ssim", "identity_psnr", "identity_ssim",
                                                          "visible_psnr", "epe")}
        for i, rel in enumerate(items):
            image, cond = self.dataset.photo(rel), self.cache.load(rel)
            exemplar, ex_label, positions, known = self.dataset.pseudo_exemplar(
                image, cond, torch.Generator().manual_seed(10_000 + i))
            with self.learner.autocast():
                out = model(cond.label[None].to(self.device), exemplar[None].to(self.device),
                            ex_label[None].to(self.device), synthesize=False)
            x = (image[None].to(self.device).float() + 1) / 2
            warp = ((out.levels[-1].warp.float() + 1) / 2).clamp(0, 1)
            for name, y in (("", warp), ("identity_", (exemplar[None].to(self.device) + 1) / 2)):
                scores[f"{name}psnr"].append(float(km.psnr(y, x, 1.0)))
                scores[f"{name}ssim"].append(float(km.ssim(y, x, 11).mean()))
            shown = known.to(self.device).bool().expand_as(x[0])
            mse = float((warp[0] - x[0])[shown].square().mean()) if shown.any() else float("nan")
            scores["visible_psnr"].append(10 * math.log10(1 / max(mse, 1e-10)))
            finest = out.levels[-1]
            mean = (finest.weights.float().unsqueeze(2) * finest.positions.float()).sum(1)[0]  # (2, H, W)
            error = (mean - positions.to(self.device)).norm(dim=0)[known[0].to(self.device) > 0]
            scores["epe"].append(float(error.mean()) if error.numel() else float("nan"))
        model.train(was_training)
        result = {k: sum(v) / len(v) for k, v in scores.items()}
        result["images"] = len(items)
        result["heldout"] = bool(self.heldout)
        return result

    def save(self) -> Path:
        """Checkpoint (rank 0 writes; every rank contributes its RNG state)."""
        rngs = [ckpt.rng_state()]
        if self.dist.active:
            gathered: list = [None] * self.dist.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        folder = None
        if self.dist.main:
            state = {
                "step": self.step,
                **self.learner.state_dict(),
                "rng": rngs,
                "data": {"samples_per_rank": self.step * self.cfg.batch_size, "world": self.dist.world,
                         "seed": self.cfg.seed},
                "train_config": json.dumps(self.cfg.to_dict()),
            }
            ema = self.learner.ema.model if self.learner.ema is not None else None
            folder = ckpt.save_checkpoint(self.out, self.step, self.model, self.discriminator, state, ema,
                                          self.cfg.keep_checkpoints)
        self.dist.barrier()
        return folder

    def ranks_agree(self) -> bool:
        """True when every process holds bit-identical generator and discriminator weights."""
        digest = weights_digest(self.model) + weights_digest(self.discriminator)
        if not self.dist.active:
            return True
        gathered: list = [None] * self.dist.world
        dist.all_gather_object(gathered, digest)
        return len(set(gathered)) == 1

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, steps: int | None = None) -> TrainResult:
        """Train until ``steps`` (total, counting resumed ones); checkpoint every ``checkpoint_every``."""
        cfg, total = self.cfg, steps if steps is not None else self.cfg.steps
        monitor = Monitor(self.out, total, self.step, enabled=self.dist.main)
        for note in self.notes:
            monitor.message(note)
        if self.dist.main:
            (self.out / TRAIN_CONFIG).write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        sampler = ResumableSampler(len(self.dataset), self.dist.rank, self.dist.world, cfg.seed,
                                   start=self.step * cfg.batch_size)
        loader = DataLoader(self.dataset, batch_sampler=BatchSampler(sampler, cfg.batch_size, drop_last=False),
                            num_workers=cfg.num_workers, collate_fn=collate,
                            pin_memory=self.device.type == "cuda", persistent_workers=cfg.num_workers > 0)
        batches = iter(loader)
        last: dict = {}
        evaluation: dict = {}
        try:
            while self.step < total:
                t0 = time.perf_counter()
                batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
                values, out = self.learner(batch)
                self.step += 1
                values["seconds"] = time.perf_counter() - t0
                last = values
                monitor.step(self.step, {"warp": values["warp"], "g": values["loss_g"]})
                if self.step % cfg.log_every == 0 or self.step == total:
                    monitor.log(self.step, values)
                if self.dist.main and (self.step % cfg.image_every == 0 or self.step == 1):
                    monitor.image(self.step, sample_grid(batch["preview"], batch["exemplar"], out.warps, out.image,
                                                         batch["image"]))
                if self.step % cfg.checkpoint_every == 0 or self.step == total:
                    self.save()
                    agree = self.ranks_agree()
                    if self.dist.main:
                        evaluation = self.evaluate_warp()
                        monitor.log(self.step, {**evaluation, "ranks_agree": agree}, prefix="eval")
                        monitor.message(f"step {self.step}: eval-warp PSNR {evaluation['psnr']:.2f} dB "
                                        f"(identity {evaluation['identity_psnr']:.2f}), correspondence error "
                                        f"{evaluation['epe']:.2f} px, checkpoint saved")
                    if not agree:
                        raise RuntimeError("processes hold different weights: distributed training diverged")
                    self.dist.barrier()
        finally:
            monitor.close()
            del batches
        return TrainResult(self.step, self.out, monitor.seconds_per_step(self.step), last, evaluation)


def train(config: TrainConfig, data: str | Path, out: str | Path, **kwargs) -> TrainResult:
    """Train a model; see ``Trainer`` for the options."""
    trainer = Trainer(config, data, out, **kwargs)
    try:
        return trainer.fit()
    finally:
        if trainer.dist.active and dist.is_initialized():
            dist.destroy_process_group()
