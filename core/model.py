"""Warpaint = correspondence + generator. A model is a folder: config.json + model.safetensors
(``core.vocabulary.MODEL_FILES``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from core import hub
from core.checkpointing import run_block
from core.config import WarpaintConfig
from core.correspondence import Correspondence, OnLevel
from core.errors import CheckpointError
from core.generator import Generator
from core.patchmatch import LevelMatch
from core.timing import stage
from core.vocabulary import CONFIG_FILE, WEIGHTS_FILE


@dataclass
class WarpaintOutput:
    """The synthesized image and every level's correspondence (coarsest first)."""

    image: torch.Tensor | None  # (B, 3, H, W) in [-1, 1]; None when synthesis was skipped
    levels: list[LevelMatch]
    source_features: list[torch.Tensor] | None = None  # unit encoder features of the input (return_features)

    @property
    def warps(self) -> list[torch.Tensor]:
        return [level.warp for level in self.levels]


class Warpaint(nn.Module):
    """Exemplar-based translation with hierarchical correspondence (after CoCosNet v2).

    ``model(source_label, exemplar, exemplar_label, iterations=..., ...)`` is the one forward that
    the pipeline, the trainer, bench and eval call. The config is the architecture plus defaults
    of the per-call settings; a call never writes into the model.
    """

    def __init__(self, config: WarpaintConfig):
        super().__init__()
        self.config = config
        self.correspondence = Correspondence(config)
        self.generator = Generator(config)
        self.gradient_checkpointing = False

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Trade compute for memory in training: the encoders, every PatchMatch level and the
        generator keep only their inputs and run again in the backward pass (same gradients)."""
        self.gradient_checkpointing = self.correspondence.gradient_checkpointing = enabled

    def forward(self, source_label: torch.Tensor, exemplar: torch.Tensor, exemplar_label: torch.Tensor, *,
                iterations: int | None = None, temperature: float | None = None,
                orders: Sequence[Sequence[bool]] | None = None, on_level: OnLevel | None = None,
                cycle: bool = False, synthesize: bool = True, return_features: bool = False,
                lower_encoders: bool | None = None, exemplar_features: Sequence[torch.Tensor] | None = None
                ) -> WarpaintOutput:
        """source_label (B, label, H, W); exemplar (B, 3, H, W) in [-1, 1] and its label. H and W
        must be multiples of ``config.stride``.

        iterations, temperature: PatchMatch iterations per fine level and softmax temperature
            (None: the config's); orders[i]: level i+1's propagation orders (True = horizontal
            first; default alternating); on_level(i, match): called after every level.
        cycle: also warp the coarsest level back (training's cycle loss); synthesize: run the
            generator; return_features: keep the input's encoder features (feature-pair loss);
            lower_encoders: let bf16/fp16 autocast reach the encoders (None: by matching mode, see
                ``encoder_precision``).
        exemplar_features: the exemplar's ``correspondence.encode_exemplar`` pyramid when it is already
            known (one exemplar for many inputs: a video's frames); a batch of one serves every item.
        """
        self.check_size(source_label.shape[-2:], synthesize)
        c, corr = self.config, self.correspondence
        with stage("encoders", source_label.device):
            if exemplar_features is None:
                source_feats, exemplar_feats = corr.encode(source_label, exemplar, exemplar_label, lower_encoders)
            else:
                source_feats = corr.encode_condition(source_label, lower_encoders)
                exemplar_feats = [f.expand(source_label.shape[0], -1, -1, -1) for f in exemplar_features]
            left, right = corr.match_features(source_feats, exemplar_feats)
            kept = source_feats if return_features else None
            del source_feats, exemplar_feats  # free the encoder pyramids before matching
        levels = corr.match(left, right, exemplar, iterations=c.iterations if iterations is None else int(iterations),
                            temperature=c.temperature if temperature is None else float(temperature),
                            orders=orders, cycle=cycle, on_level=on_level)
        del left, right  # the matching features too: the generator's activations can take their memory
        image = None
        if synthesize:
            with stage("generator", source_label.device):
                warps = [lv.warp for lv in levels]
                image = run_block(self.generator, warps, source_label,
                                  checkpointing=self.gradient_checkpointing).float()  # fp32 under autocast too
        return WarpaintOutput(image, levels, kept)

    def check_size(self, size, synthesize: bool = True) -> None:
        """Refuse sizes the correspondence (or, when synthesizing, the generator) cannot take."""
        check_size(self.config, size, synthesize)

    # -- config + weights folder -----------------------------------------------------------
    def save_pretrained(self, folder: str | Path, push_to_hub: bool = False, repo_id: str | None = None,
                        **push_options) -> None:
        """Write the config and the weights (atomically: temp file, then rename); with ``push_to_hub``,
        also a model card and an upload to ``repo_id`` (``core.hub.push_model``)."""
        if push_to_hub and not repo_id:
            raise ValueError("push_to_hub needs repo_id='org/name'")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        _atomic(folder / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
        _atomic(folder / CONFIG_FILE, lambda p: self.config.save(p))
        if push_to_hub:
            hub.push_model(folder, repo_id, **push_options)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu", revision: str | None = None,
                        **config_overrides) -> Warpaint:
        """Load a model folder, or a Hub id ``org/name`` (+ ``revision``) through the Hugging Face cache
        (``core.hub``). ``config_overrides`` change config fields (e.g. the default iterations)."""
        folder = hub.resolve_model(folder, revision)
        cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise CheckpointError(f"{p} is missing: a model folder holds {CONFIG_FILE} and {WEIGHTS_FILE}")
        try:
            config = WarpaintConfig.load(cfg_path)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{cfg_path} is not a Warpaint config: {exc}") from exc
        if config_overrides:
            config = config.replace(**config_overrides)
        try:
            state = load_file(str(w_path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{w_path} cannot be read (truncated or not safetensors): {exc}") from exc
        model = cls(config)
        model.load_weights(state, source=str(w_path))
        return model.to(device).eval()

    def load_weights(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Strict load with a readable error for missing, unexpected or mis-shaped weights."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            parts = []
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
                if keys:
                    parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
            raise CheckpointError(f"{source} does not fit this model config: " + "; ".join(parts))
        self.load_state_dict(state, strict=True)


def check_size(config: WarpaintConfig, size, synthesize: bool = True) -> None:
    """ValueError, saying which sizes work, for an input (H, W) this model config cannot take."""
    s, up = config.stride, config.generator_upsamples
    if any(side % s for side in size) or any(side < s for side in size):
        raise ValueError(f"input sides must be multiples of {s} (got {tuple(size)})")
    # the generator starts at ceil(side / 2**up) and reflection-pads by 1 there: it needs 2 pixels
    if synthesize and any(side <= 2**up for side in size):
        raise ValueError(f"input sides must be at least {(2**up // s + 1) * s} for this model (got {tuple(size)}): "
                         f"its generator starts at 1/{2**up} of the size and needs 2 pixels there")


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
