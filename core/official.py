"""The official CoCosNet v2 checkpoint (latest_net_Corr.pth + latest_net_G.pth) as a Warpaint
model: a mapping of names onto the same classes, plus the config its shapes imply."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import torch

from core.config import WarpaintConfig
from core.errors import CheckpointError
from core.model import Warpaint

# (pattern, replacement) applied in order to the official names, after the net prefix
_ENCODER_RULES = [
    (r"^layer1\.0\.", "stem.0."),
    (r"^layer(\d)\.0\.0\.", lambda m: f"downs.{int(m[1]) - 2}.0.0."),
    (r"^layer(\d)\.1\.relu\.", lambda m: f"downs.{int(m[1]) - 2}.1.act."),
    (r"^layer(\d)\.1\.model\.1\.", lambda m: f"downs.{int(m[1]) - 2}.1.conv1."),
    (r"^layer(\d)\.1\.model\.5\.", lambda m: f"downs.{int(m[1]) - 2}.1.conv2."),
    (r"^head_0\.", "ups.0."),
    (r"^G_middle_(\d)\.", lambda m: f"ups.{int(m[1]) + 1}."),
]
_SPECTRAL = [(r"\.weight_orig$", ".parametrizations.weight.original"),
             (r"\.weight_u$", ".parametrizations.weight.0._u"),
             (r"\.weight_v$", ".parametrizations.weight.0._v")]
_DUPLICATE = re.compile(r"layer\d\.1\.model\.3\.weight$")  # the PReLU stored a second time


def _apply(rules, name: str) -> str:
    for pattern, repl in rules:
        name = re.sub(pattern, repl, name)
    return name


def corr_name(key: str) -> str | None:
    """Official netCorr key -> Warpaint key (None for a duplicate to drop)."""
    if _DUPLICATE.search(key):
        return None
    if m := re.match(r"^adaptive_model_(seg|img)\.(.*)$", key):
        enc = "condition_encoder" if m[1] == "seg" else "exemplar_encoder"
        key = f"{enc}.{_apply(_ENCODER_RULES, m[2])}"
    elif m := re.match(r"^(theta|phi)_(\d+)\.(.*)$", key):
        key = f"{m[1]}.{m[2]}.{m[3]}"
    elif key.startswith("patch_match.initial_layer."):
        key = key.replace("patch_match.initial_layer.", "patch_match.initial_layer.layers.")
    return "correspondence." + _apply(_SPECTRAL, key)


def generator_name(key: str) -> str:
    """Official netG key -> Warpaint key."""
    if not key.startswith(("fc.", "conv_img.")):
        key = "blocks." + key
    return "generator." + _apply(_SPECTRAL, key)


def load_official_file(path: str | Path, expect: str) -> dict[str, torch.Tensor]:
    """Read one official .pth safely (weights_only) and check it is the expected net."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        state = torch.load(_without_stray_entries(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses pickled code; zip and EOF errors for truncation
        raise CheckpointError(f"{path} cannot be read (truncated, or not a PyTorch checkpoint): {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    is_corr = any(k.startswith("adaptive_model_seg.") for k in state)
    is_gen = "conv_img.weight" in state and "fc.weight" in state
    if expect == "corr" and not is_corr:
        hint = " (it looks like the generator, latest_net_G.pth)" if is_gen else ""
        raise CheckpointError(f"{path} is not the official correspondence net latest_net_Corr.pth{hint}")
    if expect == "gen" and not is_gen:
        hint = " (it looks like the correspondence net, latest_net_Corr.pth)" if is_corr else ""
        raise CheckpointError(f"{path} is not the official generator latest_net_G.pth{hint}")
    return state


def _without_stray_entries(path: Path) -> Path | io.BytesIO:
    """The released latest_net_Corr.pth carries copies of the D and G files at the top of its zip,
    which torch.load rejects ("file in archive is not in a subdirectory", official issues #3/#16).
    Keep only the checkpoint's own folder, in memory; any other file is returned untouched."""
    if not zipfile.is_zipfile(path):
        return path
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        roots = {n.split("/", 1)[0] for n in names if n.endswith("/data.pkl") and n.count("/") == 1}
        if len(roots) != 1 or all("/" in n for n in names):
            return path
        root = roots.pop()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
            for name in names:
                if name.startswith(root + "/"):
                    out.writestr(name, zf.read(name))
    buffer.seek(0)
    return buffer


def official_config(corr: dict[str, torch.Tensor], gen: dict[str, torch.Tensor], **overrides) -> WarpaintConfig:
    """The config implied by the official weights' shapes (official matching mode)."""
    levels = sum(1 for k in corr if re.fullmatch(r"theta_\d+\.weight", k))
    nef = corr["theta_0.weight"].shape[0]
    label = corr["adaptive_model_seg.layer1.0.weight_orig"].shape[1]
    k = corr["patch_match.refine_net.flow_head.conv2.weight"].shape[0] // 2
    window = int(round(k**0.5))
    cfg = dict(task="pose", label_channels=label, levels=levels, nef=nef, ngf=gen["conv_img.weight"].shape[1],
               search_window=window, gru_hidden=corr["patch_match.initial_layer.0.weight"].shape[0],
               spade_hidden=gen["head_0.norm_0.mlp_shared.1.weight"].shape[0],
               gru_motion=corr["patch_match.refine_net.gru.convz1.weight"].shape[1]
               - corr["patch_match.initial_layer.0.weight"].shape[0],
               resolution=512, matching="official")
    cfg.update(overrides)
    return WarpaintConfig(**cfg)


def convert_state(corr: dict[str, torch.Tensor], gen: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Both official state dicts -> one Warpaint state dict."""
    out = {}
    for key, value in corr.items():
        name = corr_name(key)
        if name is not None:
            out[name] = value.float()
    for key, value in gen.items():
        out[generator_name(key)] = value.float()
    return out


def load_official(corr_path: str | Path, gen_path: str | Path, device: str | torch.device = "cpu",
                  **overrides) -> Warpaint:
    """Build a Warpaint model from the two official .pth files."""
    corr = load_official_file(corr_path, "corr")
    gen = load_official_file(gen_path, "gen")
    try:
        config = official_config(corr, gen, **overrides)
    except KeyError as exc:
        raise CheckpointError(f"official checkpoint lacks an expected weight: {exc}") from exc
    model = Warpaint(config)
    model.load_weights(convert_state(corr, gen), source=f"{corr_path} + {gen_path}")
    return model.to(device).eval()
