"""Training settings: one dataclass with the official CoCosNet v2 defaults, named presets, YAML files.

A preset names a model preset (``core.config.PRESETS``) plus the optimisation and loss settings
that suit it. A YAML file starts from a preset (``base:``) and changes fields; its ``model:``
mapping changes model config fields::

    base: mask-256
    batch_size: 8
    weight_contextual: 0.5
    model: {nef: 16}
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from core.config import WarpaintConfig, get_preset
from core.errors import InputError
from core.train.vgg import VGG_INPUTS

AMP_MODES = ("auto", "off", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data and output folders."""

    model: str = "pose-256"  # model preset in core.config.PRESETS
    model_overrides: dict = field(default_factory=dict)  # WarpaintConfig fields to change
    resolution: int | None = None  # training size (square); None = the model preset's resolution
    steps: int = 100_000
    batch_size: int = 4  # per process
    seed: int = 0
    # optimisation (official: Adam, TTUR G lr/2 and D lr*2, betas (0, 0.9), G eps 1e-3)
    lr: float = 1e-4
    ttur: bool = True
    beta1: float = 0.0
    beta2: float = 0.9
    grad_clip: float = 10.0  # max gradient norm per network; 0 = off
    ema: float = 0.0  # EMA decay of the generator (e.g. 0.999); 0 = off
    amp: str = "auto"  # auto: bf16 (or fp16 + loss scaling) on CUDA, off on CPU
    checkpointing: bool = False  # activation checkpointing: much less memory, about a third more compute
    # discriminator
    ndf: int = 64
    d_layers: int = 4
    d_scales: int = 2
    # loss weights (official defaults, see docs/training.md). The official warp and VGG feature-matching
    # terms divide by the per-GPU batch (2 in its run: --weight_warp_self 500, --weight_fm_ratio 1);
    # ours are true means over the samples, hence 250 and 0.5 for the same strength.
    weight_warp: float = 250.0  # per-level warp L1 against the downsampled target
    weight_correspondence: float = 1.0  # every level's candidates vs the augmentation's ground truth (pixels)
    weight_cycle: float = 1.0  # coarsest-level warp mapped back onto the exemplar
    weight_featpair: float = 10.0  # domain alignment: condition features vs (target + condition) features
    weight_gan: float = 10.0  # hinge GAN
    weight_gan_feat: float = 10.0  # discriminator feature matching
    weight_vgg: float = 10.0  # VGG19 feature matching (x weight_fm_ratio) and contextual (x weight_contextual)
    weight_fm_ratio: float = 0.5
    weight_perceptual: float = 0.001  # MSE of VGG relu4_2 features
    weight_contextual: float = 1.0
    vgg_weights: str | None = None  # path to vgg19-dcbb9e9d.pth; None = look in the torch cache
    vgg_input: str = "caffe"  # VGG input scaling the VGG loss weights were tuned for (core/train/vgg.py)
    # exemplars
    pair_probability: float = 0.5  # chance to use a listed real exemplar when the image has one
    pair_warp_weight: float | None = None  # warp/feature-matching weight of listed pairs; None = from the list kind
    augment_strength: float = 1.0  # pseudo exemplar T(x): scale of crop, rotation and elastic warp
    # bookkeeping
    checkpoint_every: int = 2500
    keep_checkpoints: int = 2
    log_every: int = 50
    image_every: int = 500
    holdout: int = 8  # images kept out of training for eval-warp at each checkpoint
    num_workers: int = 2

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise InputError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.vgg_input not in VGG_INPUTS:
            raise InputError(f"vgg_input must be one of {VGG_INPUTS}, got {self.vgg_input!r}")
        if self.batch_size < 1 or self.steps < 0:
            raise InputError("batch_size must be >= 1 and steps >= 0")

    def model_config(self, label_channels: int | None = None, task: str | None = None) -> WarpaintConfig:
        """The model config this run trains. A preset with ``label_channels`` 0 takes the data's
        channel count and task (``tiny`` does: it trains on any task)."""
        overrides = dict(self.model_overrides)
        if self.resolution is not None:
            overrides.setdefault("resolution", self.resolution)
        cfg = get_preset(self.model, **overrides)
        if cfg.label_channels == 0 and label_channels:
            cfg = cfg.replace(label_channels=label_channels, task=task or cfg.task)
        return cfg

    @property
    def size(self) -> int:
        return self.resolution or get_preset(self.model).resolution

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # batch sizes are per process (per GPU); the official 512 run used 2 per GPU on 8 GPUs
    "pose-256": TrainConfig(model="pose-256", batch_size=4),
    "pose-512": TrainConfig(model="pose-512", batch_size=2),
    "face-512": TrainConfig(model="face-512", batch_size=2),
    "face-1024": TrainConfig(model="face-1024", batch_size=1),
    "mask-256": TrainConfig(model="mask-256", batch_size=4),
    # For tests and smoke runs: the tiny model at 64x64, a small discriminator, frequent checkpoints.
    "tiny": TrainConfig(model="tiny", model_overrides={"label_channels": 0}, resolution=64, batch_size=2,
                        steps=20, ndf=16, d_layers=3, checkpoint_every=10, log_every=1, image_every=10, holdout=1,
                        num_workers=0),
}


def load_train_config(name_or_path: str, **overrides) -> TrainConfig:
    """A preset name or a YAML file, then ``overrides`` (fields; None values are ignored)."""
    path = Path(name_or_path)
    if name_or_path in TRAIN_PRESETS:
        cfg = TRAIN_PRESETS[name_or_path]
    elif path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        cfg = _from_yaml(path)
    else:
        raise InputError(f"Unknown training config {name_or_path!r}: use a preset "
                         f"({', '.join(TRAIN_PRESETS)}) or a YAML file.")
    changes = {k: v for k, v in overrides.items() if v is not None}
    _check_keys(changes, name_or_path)
    return cfg.replace(**changes) if changes else cfg


def _from_yaml(path: Path) -> TrainConfig:
    if not path.is_file():
        raise InputError(f"Training config {path} not found.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping of settings (key: value).")
    base = data.pop("base", "pose-256")
    if base not in TRAIN_PRESETS:
        raise InputError(f"{path}: base {base!r} is not a preset ({', '.join(TRAIN_PRESETS)}).")
    model = data.pop("model", None)
    if isinstance(model, dict):  # a mapping of model config changes (a string names the model preset)
        data["model_overrides"] = {**TRAIN_PRESETS[base].model_overrides, **model}
    elif model is not None:
        data["model"] = model
    _check_keys(data, str(path))
    model_fields = {f.name for f in fields(WarpaintConfig)}
    unknown = sorted(set(data.get("model_overrides", {})) - model_fields)
    if unknown:
        raise InputError(f"{path}: unknown model settings {unknown}; see core/config.py.")
    return TRAIN_PRESETS[base].replace(**data)


def _check_keys(data: dict, source: str) -> None:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{source}: unknown training settings {unknown}; see core/train/presets.py.")
