"""Atomic, resumable training checkpoints.

    OUT/config.json, OUT/model.safetensors     the model to use (EMA weights when EMA is on):
                                              ``Warpaint.from_pretrained(OUT)`` loads it
    OUT/checkpoints/step-00002500/            one complete checkpoint:
        config.json, model.safetensors        the trained weights (a from_pretrained folder too)
        ema.safetensors                       EMA weights (when EMA is on)
        discriminator.safetensors
        state.pt                              optimizers, loss scaler, step, RNG states, data position
    OUT/checkpoints/latest                    name of the newest complete checkpoint

A checkpoint is written into a hidden temporary folder and renamed into place, and ``latest``
is replaced atomically afterwards, so a run killed at any moment leaves the previous one whole.
``state.pt`` holds only tensors and plain Python values (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from core.errors import CheckpointError
from core.vocabulary import MODEL_FILES, WEIGHTS_FILE

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE = "state.pt"
DISCRIMINATOR = "discriminator.safetensors"
EMA = "ema.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def rng_state() -> dict:
    """This process's random generators (torch, CUDA, NumPy, Python) as plain values."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(out: Path, step: int, model: nn.Module, discriminator: nn.Module, state: dict,
                    ema: nn.Module | None = None, keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, export the usable model to ``out``
    and keep only the newest ``keep`` checkpoints. ``model`` (and ``ema``) are ``Warpaint`` models."""
    root = Path(out) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
    try:
        model.save_pretrained(tmp)
        save_file(_tensors(discriminator), str(tmp / DISCRIMINATOR))
        if ema is not None:
            save_file(_tensors(ema), str(tmp / EMA))
        torch.save(state, tmp / STATE)
        final = root / name
        if final.exists():  # the same step again (a resumed run): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _write_atomic(root / LATEST, name + "\n")
    (ema if ema is not None else model).save_pretrained(out)
    for old in sorted(_complete(root))[:-keep] if keep > 0 else []:
        if old[1] != final:
            shutil.rmtree(old[1], ignore_errors=True)
    return final


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _complete(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint folder that holds all its files."""
    found = []
    for p in root.iterdir() if root.is_dir() else []:
        m = _STEP_DIR.match(p.name)
        if m and all((p / f).is_file() for f in (*MODEL_FILES, DISCRIMINATOR, STATE)):
            found.append((int(m.group(1)), p))
    return found


def latest_checkpoint(out: Path) -> Path | None:
    """The checkpoint ``latest`` names, or the newest complete one if that is missing; None if none."""
    root = Path(out) / CHECKPOINTS
    pointer = root / LATEST
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if any(folder == p for _, p in _complete(root)):
            return folder
    found = sorted(_complete(root))
    return found[-1][1] if found else None


def clean_partial(out: Path) -> None:
    """Remove what a killed run may have left half-written (hidden temporary files and folders)."""
    for folder in (Path(out), Path(out) / CHECKPOINTS):
        for p in folder.glob(".*") if folder.is_dir() else []:
            if p.name.endswith(".tmp") or _STEP_DIR.match(p.name[1:].rsplit("-", 1)[0] or ""):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def load_checkpoint(folder: Path) -> dict:
    """Read one checkpoint: {"model", "discriminator", "ema" (or None): state dicts, "state": dict}."""
    folder = Path(folder)
    try:
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
        model = load_file(str(folder / WEIGHTS_FILE))
        disc = load_file(str(folder / DISCRIMINATOR))
        ema = load_file(str(folder / EMA)) if (folder / EMA).is_file() else None
    except Exception as exc:
        raise CheckpointError(f"Checkpoint {folder} cannot be read ({exc}). Delete it to resume from an "
                              "older one, or start a new run without --resume.") from exc
    return {"model": model, "discriminator": disc, "ema": ema, "state": state}
