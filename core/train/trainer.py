"""The training loop: pseudo-exemplar CoCosNet v2 training, resumable, single process or DDP.

One iteration = one generator step (correspondence + generator, all G losses) then one
discriminator step (hinge), with TTUR Adam as the official code. Under ``torchrun`` every
process trains on its shard of the data (DistributedSampler) with DistributedDataParallel
(NCCL on GPU, gloo on CPU); rank 0 writes checkpoints, logs and images.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader

from core.augment import pseudo_exemplar
from core.config import WarpaintConfig
from core.corr import normalize_features
from core.correspondence import match_pyramid
from core.discriminator import MultiScaleDiscriminator
from core.errors import CheckpointError, InputError
from core.model import Warpaint, WarpaintOutput
from core.train import checkpoint as ckpt
from core.train import losses
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
from core.train.vgg import VGG19, find_vgg_weights

TRAIN_CONFIG = "train.json"


# -- distributed -----------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_distributed() -> Dist:
    """Join the torchrun process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer's bytes: equal digests = identical weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# -- the generator side as one module (what DDP wraps) ---------------------------------------

class GeneratorStep(nn.Module):
    """The model's forward (with the cycle warp) plus the exemplar encoder on (target, condition)
    for the feature-pair loss, in one call so DistributedDataParallel sees every parameter used.
    Same computation as ``Warpaint.forward``, but the condition features are kept for that loss."""

    def __init__(self, model: Warpaint):
        super().__init__()
        self.model = model

    def forward(self, condition: torch.Tensor, exemplar: torch.Tensor, exemplar_condition: torch.Tensor,
                target: torch.Tensor | None = None):
        model, corr, c = self.model, self.model.correspondence, self.model.config
        model.check_size(condition.shape[-2:])
        cond_feats, ex_feats = corr.encode(condition, exemplar, exemplar_condition)
        left, right = corr.match_features(cond_feats, ex_feats)
        levels = match_pyramid(left, right, exemplar, corr.patch_match, c.temperature, c.search_window,
                               c.dilation, cycle=True)
        image = model.generator([lv.warp for lv in levels], condition)
        pair = None
        if target is not None:  # x with its own condition, through the exemplar encoder
            pair = [normalize_features(f) for f in corr.exemplar_encoder(torch.cat([target, condition], 1))]
        return WarpaintOutput(image, levels), cond_feats, pair


class EMA:
    """Exponential moving average of the generator's parameters (buffers are copied)."""

    def __init__(self, model: Warpaint, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - self.decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


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
        self._check_out(resume)
        torch.manual_seed(config.seed + self.dist.rank)

        # data: conditions cached once (each rank extracts its share), then the split
        base_model = config.model_config()
        self.task = task or base_model.task
        size = (config.size, config.size)
        self.cache = ConditionCache(self.data, self.task, size, cache_dir)
        items = self._prepare_conditions(find_images(self.data))
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
        self.model = Warpaint(self.model_config).to(self.device).train()
        self.discriminator = MultiScaleDiscriminator(
            self.model_config.image_channels + channels, config.ndf, config.d_layers, config.d_scales).to(self.device)
        self.ema = EMA(self.model, config.ema) if config.ema > 0 else None
        g_lr, d_lr = (config.lr / 2, config.lr * 2) if config.ttur else (config.lr, config.lr)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=g_lr, betas=betas, eps=1e-3)  # official G eps
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=d_lr, betas=betas)
        self.amp_dtype = self._amp_dtype(config.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.vgg = self._vgg()
        self.step = 0
        if resume:
            self._resume()
        self.g_step = GeneratorStep(self.model)
        self.d_net: nn.Module = self.discriminator
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_step = DistributedDataParallel(self.g_step, device_ids=ids)
            self.d_net = DistributedDataParallel(self.discriminator, device_ids=ids)

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

    def _amp_dtype(self, mode: str) -> torch.dtype | None:
        if mode == "off" or (mode == "auto" and self.device.type != "cuda"):
            return None
        if mode == "fp16":
            return torch.float16
        if mode == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

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
        return VGG19.from_file(path).to(self.device)

    def _resume(self) -> None:
        folder = ckpt.latest_checkpoint(self.out)
        if folder is None:
            self.notes.append(f"--resume: no checkpoint in {self.out}; starting from scratch.")
            return
        saved = ckpt.load_checkpoint(folder)
        config = WarpaintConfig.load(folder / "config.json")
        if config != self.model_config:
            raise CheckpointError(f"{folder} was trained with another model config; resume with the same "
                                  "--config, or start a new --out.")
        self.model.load_weights(saved["model"], source=str(folder))
        self.discriminator.load_state_dict(saved["discriminator"])
        if self.ema is not None:
            self.ema.model.load_state_dict(saved["ema"] if saved["ema"] is not None else saved["model"])
        state = saved["state"]
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        rngs = state.get("rng", [])
        if len(rngs) == self.dist.world:
            ckpt.set_rng_state(rngs[self.dist.rank])
        else:
            self.notes.append(f"Resumed with {self.dist.world} processes instead of {len(rngs)}: "
                              "random streams are re-seeded (the data order stays seeded).")
        self.notes.append(f"Resumed from {folder} at step {self.step}.")

    # -- one iteration -------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], WarpaintOutput]:
        """One generator step then one discriminator step; returns the loss values and the output."""
        cfg = self.cfg
        cond, target = batch["condition"], batch["image"]
        exemplar, ex_cond, weight = batch["exemplar"], batch["exemplar_condition"], batch["sample_weight"]
        use_d = cfg.weight_gan > 0 or cfg.weight_gan_feat > 0

        # generator (correspondence + translation)
        self.discriminator.requires_grad_(False)
        with self._autocast():
            out, cond_feats, pair = self.g_step(cond, exemplar, ex_cond, target if cfg.weight_featpair > 0 else None)
            terms: dict[str, torch.Tensor] = {}
            warp_total, per_level = losses.warp_loss(out.levels, target, weight)
            terms["warp"] = cfg.weight_warp * warp_total
            if cfg.weight_cycle > 0:
                terms["cycle"] = cfg.weight_cycle * losses.cycle_loss(out.levels[0], exemplar)
            if pair is not None:
                terms["featpair"] = cfg.weight_featpair * losses.feature_pair_loss(cond_feats, pair)
            if use_d:
                pred_fake = self.discriminator(torch.cat([cond, out.image], 1))
                with torch.no_grad():
                    pred_real = self.discriminator(torch.cat([cond, target], 1))
                terms["gan"] = cfg.weight_gan * losses.g_hinge_loss(pred_fake)
                if cfg.weight_gan_feat > 0:
                    terms["gan_feat"] = cfg.weight_gan_feat * losses.gan_feature_loss(pred_fake, pred_real)
            if self.vgg is not None:
                fake_f = self.vgg(out.image.float())
                with torch.no_grad():
                    real_f, ex_f = self.vgg(target), self.vgg(exemplar)
                terms["vgg_fm"] = cfg.weight_vgg * cfg.weight_fm_ratio * losses.vgg_feature_matching_loss(
                    fake_f, real_f, weight)
                terms["perceptual"] = cfg.weight_perceptual * losses.perceptual_loss(fake_f[-2], real_f[-2])
                if cfg.weight_contextual > 0:
                    terms["contextual"] = cfg.weight_vgg * cfg.weight_contextual * losses.contextual_style_loss(
                        fake_f, ex_f)
            loss_g = sum(terms.values())
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        values = {k: float(v.detach()) for k, v in terms.items()}
        values.update({f"warp_level{i}": float(t.detach()) for i, t in enumerate(per_level)})
        values["grad_norm_g"] = self._clip_and_step(self.opt_g, self.model.parameters())
        if self.ema is not None:
            self.ema.update(self.model)

        # discriminator
        if use_d:
            self.discriminator.requires_grad_(True)
            fake = out.image.detach()
            with self._autocast():
                pred = self.d_net(torch.cat([torch.cat([cond, fake], 1), torch.cat([cond, target], 1)], 0))
                n = fake.shape[0]
                d_fake, d_real = losses.d_hinge_loss([[t[:n] for t in s] for s in pred],
                                                     [[t[n:] for t in s] for s in pred])
                loss_d = cfg.weight_gan * (d_fake + d_real)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(loss_d).backward()
            values["d_fake"], values["d_real"] = float(d_fake.detach()), float(d_real.detach())
            values["grad_norm_d"] = self._clip_and_step(self.opt_d, self.discriminator.parameters())
        self.scaler.update()
        values["loss_g"] = float(loss_g.detach())
        return values, out

    def _clip_and_step(self, optimizer: torch.optim.Optimizer, params) -> float:
        self.scaler.unscale_(optimizer)
        params = [p for p in params if p.grad is not None]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.scaler.step(optimizer)
        return float(norm)

    # -- evaluation and checkpoints ----------------------------------------------------------------
    @torch.no_grad()
    def evaluate_warp(self, model: Warpaint | None = None) -> dict[str, float]:
        """Warp quality on held-out pseudo pairs (fixed seeds): PSNR / SSIM of the finest warp against x,
        beside the identity baseline (T(x) itself)."""
        import kornia.metrics as km

        model = model or (self.ema.model if self.ema is not None else self.model)
        items = self.heldout or self.dataset.items[: max(1, self.cfg.holdout)]
        was_training = model.training
        model.eval()
        scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "identity_psnr": [], "identity_ssim": []}
        for i, rel in enumerate(items):
            image = self.dataset.photo(rel)[None].to(self.device)
            label = self.cache.load(rel).label[None].to(self.device)
            pair = pseudo_exemplar(image.cpu(), label.cpu(), generator=torch.Generator().manual_seed(10_000 + i),
                                   strength=self.cfg.augment_strength, label_mode=self.dataset.label_mode)
            with self._autocast():
                out = model(label, pair.image.to(self.device), pair.label.to(self.device), synthesize=False)
            x = (image.float() + 1) / 2
            for name, y in (("", out.levels[-1].warp.float()), ("identity_", pair.image.to(self.device))):
                y = ((y + 1) / 2).clamp(0, 1)
                scores[f"{name}psnr"].append(float(km.psnr(y, x, 1.0)))
                scores[f"{name}ssim"].append(float(km.ssim(y, x, 11).mean()))
        model.train(was_training)
        result = {k: sum(v) / len(v) for k, v in scores.items()}
        result["images"] = len(items)
        result["heldout"] = bool(self.heldout)
        return result

    def save(self) -> Path:
        """Checkpoint (rank 0 writes; every rank contributes its RNG state)."""
        rngs = [ckpt.rng_state()]
        if self.dist.world > 1:
            gathered: list = [None] * self.dist.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        folder = None
        if self.dist.main:
            state = {
                "step": self.step,
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rngs,
                "data": {"samples_per_rank": self.step * self.cfg.batch_size, "world": self.dist.world,
                         "seed": self.cfg.seed},
                "train_config": json.dumps(self.cfg.to_dict()),
            }
            folder = ckpt.save_checkpoint(self.out, self.step, self.model, self.discriminator, state,
                                          self.ema.model if self.ema is not None else None, self.cfg.keep_checkpoints)
        self.dist.barrier()
        return folder

    def ranks_agree(self) -> bool:
        """True when every process holds bit-identical generator and discriminator weights."""
        digest = weights_digest(self.model) + weights_digest(self.discriminator)
        if self.dist.world == 1:
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
                values, out = self.train_step(batch)
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
                                        f"(identity {evaluation['identity_psnr']:.2f}), checkpoint saved")
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
        if trainer.dist.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
