"""The small inference API the app and the CLIs use: photo / condition + exemplar -> result.

    translator = Translator("pose")                   # engine "auto": learned if a checkpoint is found
    result = translator.translate(photo, exemplar)    # TranslationResult (numpy, ready to show)
    translator.engine_name                            # "learned (checkpoints/deepfashionHD)" or "training-free"

Models are loaded once per process and shared between threads (each behind its own lock).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

# OpenMP threads that spin while waiting fight MediaPipe's threads (and other processes) for the
# cores: on a busy 2-core machine a 512x512 translation took ~5 s instead of ~1.4 s. This only
# takes effect when it runs before torch is first imported (the app and CLIs import us first);
# a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.conditions import Condition, extract, from_user_condition
from core.corr import pixel_grid
from core.engine import TrainingFreeEngine
from core.engine_v2 import V2_TASKS, TrainingFreeEngineV2
from core.errors import CheckpointError, InputError, NoSubjectError, WarpaintError
from core.imageio import fit_image, from_tensor, to_tensor
from core.patchmatch import LevelMatch
from core.precision import PRECISIONS, inference_context, resolve_device
from core.results import LevelView, TranslationResult
from core.utils.flow_viz import flow_to_image

Progress = Callable[[float, str], None]
TASKS = ("pose", "face", "mask")
ENGINES = ("auto", "learned", "training-free")
DEFAULT_RESOLUTION = 512
CHECKPOINT_FILES = ("config.json", "model.safetensors")

_models: dict[tuple, tuple[torch.nn.Module, threading.Lock]] = {}
_models_lock = threading.Lock()


def find_checkpoints(root: Path = Path("checkpoints"), task: str | None = None) -> list[Path]:
    """Model folders (config.json + model.safetensors) directly under ``root``, sorted by name;
    with ``task``, only those whose config says that task. Unreadable configs are skipped."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not all((folder / name).is_file() for name in CHECKPOINT_FILES):
            continue
        if task is not None and _checkpoint_task(folder) != task:
            continue
        found.append(folder)
    return found


def _checkpoint_task(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("task", "pose")
    except (OSError, ValueError, AttributeError):
        return None


class Translator:
    """One task, one engine: extracts conditions and translates inputs to exemplars' looks."""

    def __init__(self, task: str, engine: str = "auto", checkpoint: str | Path | None = None,
                 device: str | None = None, precision: str = "fp32", checkpoints_root: Path = Path("checkpoints"),
                 version: int = 2):
        if task not in TASKS:
            raise InputError(f"Unknown task {task!r}: choose one of {', '.join(TASKS)}.")
        if engine not in ENGINES:
            raise InputError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
        if precision not in PRECISIONS:
            raise InputError(f"Unknown precision {precision!r}: choose fp32, bf16 or fp16.")
        self.task = task
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise InputError("fp16 needs a GPU; on CPU use bf16 (fast with AMX) or fp32.")
        self.precision = precision
        self.checkpoint: Path | None = None
        if engine != "training-free":
            self.checkpoint = self._resolve_checkpoint(engine, checkpoint, Path(checkpoints_root))
        if version not in (1, 2):
            raise InputError(f"Unknown training-free engine version {version!r}: use 2 (default) or 1.")
        # v2 (charts, full-resolution sampling, compositing) where it has charts; v1 elsewhere and on request.
        self.v2 = self.checkpoint is None and version == 2 and task in V2_TASKS
        self.engine_name = (f"learned ({self.checkpoint})" if self.checkpoint is not None
                            else "training-free v2" if self.v2 else "training-free")
        self.engine = TrainingFreeEngine()
        self.engine_v2 = TrainingFreeEngineV2()

    def _resolve_checkpoint(self, engine: str, checkpoint: str | Path | None, root: Path) -> Path | None:
        if checkpoint is not None:
            folder = Path(checkpoint)
            missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
            if missing:
                raise CheckpointError(f"{folder} is not a model folder (missing {', '.join(missing)}): a model "
                                      "folder holds config.json + model.safetensors; see checkpoints/README.md.")
            found_task = _checkpoint_task(folder)
            if found_task != self.task:
                raise CheckpointError(f"{folder} is a model for the {found_task!r} task, not {self.task!r}: "
                                      "pick a checkpoint made for this task.")
            return folder
        found = find_checkpoints(root, self.task)
        if found:
            return found[0]
        if engine == "learned":
            raise CheckpointError(
                f"No learned checkpoint for the {self.task} task under {root}/: put a model folder there "
                f"(config.json + model.safetensors, e.g. {root}/deepfashionHD from the official weights, "
                "see checkpoints/README.md), pass --checkpoint DIR, or use --engine training-free.")
        return None

    # -- conditions ------------------------------------------------------------------------------
    def extract(self, image: np.ndarray, size: tuple[int, int], ready_condition: bool = False) -> Condition:
        """A photo (or, with ``ready_condition``, a skeleton / sketch / painted mask) -> Condition at (H, W)."""
        if ready_condition:
            return from_user_condition(self.task, image, size)
        return extract(self.task, image, size)

    # -- translation -----------------------------------------------------------------------------
    def output_size(self, resolution: int | None) -> tuple[int, int]:
        """Square output size, rounded down to what the engine's pyramid accepts."""
        stride = 32
        res = int(resolution) if resolution else DEFAULT_RESOLUTION
        if self.checkpoint is not None:
            config = self._model().config
            stride = config.stride
            res = int(resolution) if resolution else config.resolution
        if not 64 <= res <= 2048:
            raise InputError(f"Resolution {res} is out of range: use 64 to 2048 (512 is the usual size).")
        res = max(stride, res - res % stride)
        return res, res

    def prepare(self, source: np.ndarray | Condition, exemplar: np.ndarray | Condition, size: tuple[int, int],
                source_is_condition: bool = False, allow_partial: bool = False) -> tuple[Condition, Condition]:
        """Both conditions; the exemplar's carries its photo (``.image``). The input's is at ``size``; the
        exemplar's too, except for engine v2: at its own working size (its whole frame), carrying the
        original photo (``.photo``) so the output samples the original pixels."""
        if isinstance(source, Condition):
            src = source
            if src.size != size:
                raise InputError(f"The input condition is {src.size[1]}x{src.size[0]}, not {size[1]}x{size[0]}: "
                                 "extract it at the size you translate at.")
        else:
            try:
                src = self.extract(source, size, ready_condition=source_is_condition)
            except NoSubjectError as exc:
                raise NoSubjectError(f"The input: {exc}") from exc
        if isinstance(exemplar, Condition):
            ex_cond = exemplar
            if ex_cond.image is None:
                raise InputError("The exemplar must be a photo (or a Condition extracted from one, with its image).")
            if ex_cond.size != size and not self.v2:
                raise InputError(f"The exemplar condition is {ex_cond.size}, the input {size}: "
                                 "extract both at one size.")
        elif self.v2:
            ex_cond = exemplar_condition(self.task, exemplar, max(size), allow_partial)
        else:
            try:
                ex_cond = extract(self.task, exemplar, size)
            except NoSubjectError as exc:
                raise NoSubjectError(f"The exemplar: {exc}") from exc
            if ex_cond.image is None:
                ex_cond.image = fit_image(exemplar, size)
        return src, ex_cond

    def translate(self, source: np.ndarray | Condition, exemplar: np.ndarray | Condition, *,
                  resolution: int | None = None, iterations: int | None = None, temperature: float | None = None,
                  seed: int = 0, source_is_condition: bool = False, allow_partial: bool = False,
                  progress: Progress | None = None) -> TranslationResult:
        """Translate ``source`` (photo, condition picture or Condition) to the looks of ``exemplar``
        (photo, or a Condition extracted from one). Progress goes through extraction, every level
        and synthesis. ``allow_partial``: engine v2 maps what it can when the exemplar lacks a part
        the input needs (e.g. no face) instead of refusing."""
        report = progress or (lambda fraction, text: None)
        t0 = time.perf_counter()
        size = source.size if isinstance(source, Condition) else self.output_size(resolution)
        report(0.02, "extracting the conditions of the input and the exemplar")
        src, ex_cond = self.prepare(source, exemplar, size, source_is_condition, allow_partial)
        extract_s = time.perf_counter() - t0
        report(0.2, "conditions ready")
        result = self._translate_conditions([src], [ex_cond], iterations, temperature, seed,
                                            lambda f, text: report(0.2 + 0.78 * f, text), allow_partial)[0]
        result.seconds = {"extract": extract_s, **result.seconds}
        report(1.0, "done")
        return result

    def translate_batch(self, sources: list, exemplars: list, *, resolution: int | None = None,
                        iterations: int | None = None, temperature: float | None = None, seed: int = 0,
                        source_is_condition: bool = False, allow_partial: bool = False
                        ) -> list[TranslationResult | WarpaintError]:
        """Translate pairs; a pair that fails (unreadable, no subject...) yields its error instead of a
        result, the others go on. The learned engine runs the good pairs as one batch."""
        size = self.output_size(resolution)
        out: list[TranslationResult | WarpaintError | None] = [None] * len(sources)
        ready, conds = [], []
        for i, (source, exemplar) in enumerate(zip(sources, exemplars)):
            try:
                conds.append(self.prepare(source, exemplar, size, source_is_condition, allow_partial))
                ready.append(i)
            except WarpaintError as exc:
                out[i] = exc
        if ready:
            results = self._translate_conditions([c[0] for c in conds], [c[1] for c in conds], iterations,
                                                 temperature, seed, None, allow_partial)
            for i, result in zip(ready, results):
                out[i] = result
        return out  # type: ignore[return-value]

    def _translate_conditions(self, srcs: list[Condition], ex_conds: list[Condition], iterations: int | None,
                              temperature: float | None, seed: int, progress: Progress | None,
                              allow_partial: bool = False) -> list[TranslationResult]:
        report = progress or (lambda fraction, text: None)
        size = srcs[0].size
        seconds: dict[str, float] = {}
        exemplars = torch.cat([to_tensor(fit_image(c.image, size)) for c in ex_conds]).to(self.device)
        notes: list[list[str]] = [[] for _ in srcs]
        if self.v2:
            outs = [self.engine_v2(src, ex, allow_partial=allow_partial, seed=seed,
                                   progress=report if len(srcs) == 1 else None)
                    for src, ex in zip(srcs, ex_conds)]
            notes = [o.messages for o in outs]
        if self.checkpoint is None:
            if not self.v2:
                outs = [self.engine(src, exemplars[i:i + 1], ex, iterations=iterations, temperature=temperature,
                                    seed=seed, progress=report if len(srcs) == 1 else None)
                        for i, (src, ex) in enumerate(zip(srcs, ex_conds))]
            image = torch.cat([o.image for o in outs])
            warped = torch.cat([o.warped for o in outs])
            positions = torch.cat([o.positions for o in outs])
            confidence = torch.cat([o.confidence for o in outs])
            per_item = [o.levels for o in outs]
            for o in outs:
                for k, v in o.seconds.items():
                    if k != "total":
                        seconds[k] = seconds.get(k, 0.0) + v / len(outs)
        else:
            image, levels, times = self._run_learned(srcs, exemplars, ex_conds, iterations, temperature, seed, report)
            seconds.update(times)
            warped = F.interpolate(levels[-1].warp.float(), size=size, mode="bilinear", align_corners=False)
            positions = _upsample_positions(_mean_positions(levels[-1]), size)
            confidence = F.interpolate(levels[-1].confidence.float(), size=size, mode="bilinear", align_corners=False)
            per_item = [[_item(lv, i) for lv in levels] for i in range(len(srcs))]
        results = []
        for i, (src, ex_cond) in enumerate(zip(srcs, ex_conds)):
            t1 = time.perf_counter()
            final_flow = positions[i].cpu() - pixel_grid(*size, "cpu")
            messages = ([f"Engine: {self.engine_name}."] + list(src.messages)
                        + [f"Exemplar: {m}" for m in ex_cond.messages] + notes[i])
            result = TranslationResult(
                image=from_tensor(image[i]), warped=from_tensor(warped[i]), input_condition=src.preview,
                exemplar_condition=ex_cond.preview, levels=level_views(per_item[i], size), engine=self.engine_name,
                messages=messages, seconds=dict(seconds),
                confidence=confidence[i, 0].float().cpu().numpy(),
                flow=flow_to_image(final_flow.flip(0).permute(1, 2, 0).numpy()))
            result.seconds["views"] = time.perf_counter() - t1
            results.append(result)
        return results

    # -- the learned engine ----------------------------------------------------------------------
    def _model(self) -> torch.nn.Module:
        return self._model_and_lock()[0]

    def _model_and_lock(self) -> tuple[torch.nn.Module, threading.Lock]:
        key = (str(Path(self.checkpoint).resolve()), str(self.device))
        with _models_lock:
            if key not in _models:
                from core.model import Warpaint

                model = Warpaint.from_pretrained(self.checkpoint, device=self.device)
                if self.device.type == "cpu" or self.device.type == "cuda":
                    model = model.to(memory_format=torch.channels_last)
                _models[key] = (model, threading.Lock())
            return _models[key]

    def _run_learned(self, srcs: list[Condition], exemplar: torch.Tensor, ex_conds: list[Condition],
                     iterations: int | None, temperature: float | None, seed: int, progress: Progress):
        model, lock = self._model_and_lock()
        config = model.config
        for name, cond in (("input", srcs[0]), ("exemplar", ex_conds[0])):
            if cond.label.shape[0] != config.label_channels:
                raise CheckpointError(
                    f"{self.checkpoint} expects a {config.label_channels}-channel label but the {name} condition "
                    f"has {cond.label.shape[0]}: this checkpoint was made for another kind of condition.")
        try:
            model.check_size(srcs[0].size)
        except ValueError as exc:
            raise InputError(f"{self.checkpoint}: {exc}; translate at a resolution that is a multiple of "
                             f"{config.stride}.") from exc
        cond = torch.stack([c.label for c in srcs]).to(self.device)
        ex_label = torch.stack([c.label for c in ex_conds]).to(self.device)
        iters = int(iterations) if iterations else config.iterations
        gen = torch.Generator().manual_seed(int(seed))
        orders = [[bool(b) for b in torch.rand(iters, generator=gen) < 0.5] for _ in range(config.levels - 1)]
        times: dict[str, float] = {}
        with lock:
            corr = model.correspondence
            saved = (corr.config, corr.patch_match.iterations, corr.patch_match.temperature)
            temp = float(temperature) if temperature else config.temperature
            corr.config = config.replace(temperature=temp, iterations=iters)
            corr.patch_match.iterations, corr.patch_match.temperature = iters, temp
            done = [0]

            def hook(*_):
                done[0] += 1
                progress(0.1 + 0.7 * done[0] / max(config.levels - 1, 1),
                         f"matched level {done[0] + 1}/{config.levels}")

            handle = corr.patch_match.register_forward_hook(hook)
            try:
                with inference_context(self.device, self.precision):
                    progress(0.0, f"encoding and matching {config.levels} levels ({self.engine_name})")
                    t = time.perf_counter()
                    levels = corr(cond, exemplar, ex_label, orders)
                    times["matching"] = time.perf_counter() - t
                    progress(0.85, "synthesizing")
                    t = time.perf_counter()
                    image = model.generator([lv.warp for lv in levels], cond)
                    times["synthesis"] = time.perf_counter() - t
            finally:
                handle.remove()
                corr.config, corr.patch_match.iterations, corr.patch_match.temperature = saved
        levels = [_float_level(lv) for lv in levels]
        return image.float(), levels, times


def _item(level: LevelMatch, i: int) -> LevelMatch:
    """Batch item ``i`` of a level."""
    return LevelMatch(level.warp[i:i + 1], level.positions[i:i + 1], level.weights[i:i + 1],
                      level.confidence[i:i + 1], None if level.indices is None else level.indices[i:i + 1])


def _float_level(level: LevelMatch) -> LevelMatch:
    return LevelMatch(level.warp.float(), level.positions.float(), level.weights.float(),
                      level.confidence.float(), level.indices, level.cycle)


def exemplar_condition(task: str, photo: np.ndarray, side: int, allow_partial: bool = False) -> Condition:
    """The exemplar's condition over its whole frame, at a working size with the longer side ``side``,
    carrying the original photo (``.photo``) for full-resolution sampling. With ``allow_partial``, an
    exemplar without a face still gives a condition (photo only) that engine v2 maps around."""
    h, w = photo.shape[:2]
    scale = side / max(h, w)
    size = (max(32, round(h * scale)), max(32, round(w * scale)))
    try:
        cond = extract(task, photo, size)
    except NoSubjectError as exc:
        if not allow_partial:
            what = "face" if task == "face" else "subject"
            raise NoSubjectError(f"The exemplar has no {what} to paint the input with ({exc}) Choose an exemplar "
                                 f"that shows a {what}, or allow a partial result (--allow-partial).") from exc
        image = fit_image(photo, size)
        cond = Condition(task=task, label=torch.zeros(1, *size), preview=image, image=image,
                         messages=[f"No subject found ({exc})."])
    if cond.image is None:
        cond.image = fit_image(photo, size)
    cond.photo = photo
    return cond


# -- views for the UI ------------------------------------------------------------------------------

def _mean_positions(level: LevelMatch) -> torch.Tensor:
    """(B, 2, h, w): the candidates' weighted mean position (row, col) at the level."""
    return (level.weights.unsqueeze(2) * level.positions).sum(1)


def _upsample_positions(positions: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = positions.shape[-2:]
    scale = torch.tensor([size[0] / h, size[1] / w], device=positions.device).view(1, 2, 1, 1)
    return F.interpolate((positions + 0.5) * scale - 0.5, size=size, mode="bilinear", align_corners=False)


def level_views(levels: list[LevelMatch], size: tuple[int, int]) -> list[LevelView]:
    """Every level's warp and flow picture at the output size, its confidence, and its candidates
    as (x, y) in output pixels with their weights (first batch item)."""
    flows = []
    for lv in levels:
        h, w = lv.weights.shape[-2:]
        scale = torch.tensor([size[0] / h, size[1] / w]).view(2, 1, 1)
        disp = (_mean_positions(lv)[0].cpu() - pixel_grid(h, w, "cpu")) * scale  # (2, h, w) output pixels
        flows.append(disp)
    radius = max(float(torch.sqrt((f**2).sum(0)).amax()) for f in flows) if flows else 1.0
    views = []
    for lv, disp in zip(levels, flows):
        h, w = lv.weights.shape[-2:]
        warp = F.interpolate(lv.warp[:1].float().cpu(), size=size, mode="bilinear", align_corners=False)
        flow = flow_to_image(disp.flip(0).permute(1, 2, 0).numpy(), max_radius=radius)
        flow = cv2.resize(flow, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        pos = lv.positions[0].float().cpu()  # (K, 2, h, w) (row, col) in level pixels
        xy = torch.stack([(pos[:, 1] + 0.5) * size[1] / w - 0.5, (pos[:, 0] + 0.5) * size[0] / h - 0.5], -1)
        views.append(LevelView(
            size=(h, w), warp=from_tensor(warp), flow=np.ascontiguousarray(flow),
            confidence=lv.confidence[0, 0].float().cpu().numpy(),
            candidates=xy.permute(1, 2, 0, 3).contiguous().numpy(),  # (h, w, K, 2)
            weights=lv.weights[0].float().cpu().permute(1, 2, 0).contiguous().numpy()))
    return views
