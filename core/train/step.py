"""One training iteration of CoCosNet v2: the networks, their optimisers, and a generator step
(correspondence + translation, every G loss) followed by a discriminator step (hinge).

TTUR Adam as the official code (G lr/2 with eps 1e-3, D lr*2, betas (0, 0.9)), mixed precision
on CUDA (bf16, or fp16 with loss scaling), gradient clipping, optional EMA of the generator.
``TrainingStep`` knows nothing about files or data: the loop (trainer.py) and the benchmark
(benchmarks/train_step.py) both drive it.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from core.config import WarpaintConfig
from core.discriminator import MultiScaleDiscriminator
from core.model import Warpaint, WarpaintOutput
from core.train import losses
from core.train.presets import TrainConfig
from core.train.vgg import VGG19


class GeneratorStep(nn.Module):
    """The model's one forward (with the cycle warp and the input's encoder features) plus the
    exemplar encoder on (target, condition) for the feature-pair loss, in one call so
    DistributedDataParallel sees every parameter used."""

    def __init__(self, model: Warpaint, cycle: bool = True):
        super().__init__()
        self.model = model
        self.cycle = cycle  # build the coarsest level's full matrix for the cycle warp (its loss is on)

    def forward(self, condition: torch.Tensor, exemplar: torch.Tensor, exemplar_condition: torch.Tensor,
                target: torch.Tensor | None = None):
        out = self.model(condition, exemplar, exemplar_condition, cycle=self.cycle, return_features=True)
        pair = None
        if target is not None:  # x with its own condition, through the exemplar encoder
            pair = self.model.correspondence.encode_exemplar(target, condition)
        return out, out.source_features, pair


class EMA:
    """Exponential moving average of the generator's parameters (buffers are copied)."""

    def __init__(self, model: Warpaint, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - self.decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


class TrainingStep:
    """The generator (a ``Warpaint``), the discriminator, their optimisers and one iteration."""

    def __init__(self, cfg: TrainConfig, model_config: WarpaintConfig, device: torch.device,
                 vgg: VGG19 | None = None):
        self.cfg, self.device, self.vgg = cfg, torch.device(device), vgg
        self.model = Warpaint(model_config).to(self.device).train()
        in_channels = model_config.image_channels + model_config.label_channels
        self.discriminator = MultiScaleDiscriminator(in_channels, cfg.ndf, cfg.d_layers, cfg.d_scales).to(self.device)
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        g_lr, d_lr = (cfg.lr / 2, cfg.lr * 2) if cfg.ttur else (cfg.lr, cfg.lr)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=g_lr, betas=betas, eps=1e-3)  # official G eps
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=d_lr, betas=betas)
        self.amp_dtype = amp_dtype(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        if cfg.checkpointing:
            self.model.enable_gradient_checkpointing()
        self.g_step: nn.Module = GeneratorStep(self.model, cycle=cfg.weight_cycle > 0)
        self.d_net: nn.Module = self.discriminator

    def distribute(self) -> None:
        """Wrap both networks in DistributedDataParallel (call once the process group is up)."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.g_step = DistributedDataParallel(self.g_step, device_ids=ids)
        self.d_net = DistributedDataParallel(self.discriminator, device_ids=ids)

    def state_dict(self) -> dict:
        return {"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], WarpaintOutput]:
        """One generator step then one discriminator step; returns the loss values and the output."""
        cfg = self.cfg
        cond, target = batch["condition"], batch["image"]
        exemplar, ex_cond, weight = batch["exemplar"], batch["exemplar_condition"], batch["sample_weight"]
        use_d = cfg.weight_gan > 0 or cfg.weight_gan_feat > 0

        # generator (correspondence + translation)
        self.discriminator.requires_grad_(False)
        with self.autocast():
            out, cond_feats, pair = self.g_step(cond, exemplar, ex_cond, target if cfg.weight_featpair > 0 else None)
            terms: dict[str, torch.Tensor] = {}
            warp_total, per_level = losses.warp_loss(out.levels, target, weight, batch.get("warp_mask"))
            terms["warp"] = cfg.weight_warp * warp_total
            corr_levels: list[torch.Tensor] = []
            if cfg.weight_correspondence > 0 and "correspondence" in batch:
                corr_total, corr_levels = losses.correspondence_loss(out.levels, batch["correspondence"],
                                                                     batch["correspondence_mask"])
                terms["correspondence"] = cfg.weight_correspondence * corr_total
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
        values.update({f"correspondence_level{i}": float(t.detach()) for i, t in enumerate(corr_levels)})
        values["grad_norm_g"] = self._clip_and_step(self.opt_g, self.model.parameters())
        if self.ema is not None:
            self.ema.update(self.model)

        # discriminator
        if use_d:
            self.discriminator.requires_grad_(True)
            fake = out.image.detach()
            with self.autocast():
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


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mode`` (auto: bf16 on CUDA where supported, else fp16; off on CPU)."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16
