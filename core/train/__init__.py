"""Bundled trainer: pseudo-exemplar training of Warpaint models on a folder of photos.

    from core.train import load_train_config, train
    train(load_train_config("pose-256", steps=1000), "photos/", "runs/pose")

See docs/training.md. ``python -m core train`` and ``python -m core retrieve`` are the CLI.
"""

from core.train.presets import TRAIN_PRESETS, TrainConfig, load_train_config
from core.train.trainer import Trainer, TrainResult, train

__all__ = ["TRAIN_PRESETS", "TrainConfig", "TrainResult", "Trainer", "load_train_config", "train"]
