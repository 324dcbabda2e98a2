"""The small inference API the app and the CLIs use: photo / condition + exemplar -> result.

    translator = Translator("pose")                   # engine "auto": learned if a checkpoint is found
    result = translator.translate(photo, exemplar)    # TranslationResult (numpy, ready to show)
    translator.engine_name                            # "learned (checkpoints/deepfashionHD)" or "training-free"

The translator picks its engine once (``translator.engine``); every engine follows the protocol
of core/protocol.py and returns the same ``EngineOutput``, which becomes a ``TranslationResult``
here. Learned models are loaded once per process and shared between threads (core/learned.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core import hub
from core.conditions import Condition, extract, from_user_condition
from core.conditions.masks import looks_painted
from core.corr import pixel_grid
from core.engine import TrainingFreeEngine
from core.engine_v2 import V2_DEFAULT, V2_TASKS, TrainingFreeEngineV2
from core.errors import CheckpointError, InputError, NoSubjectError, WarpaintError
from core.imageio import fit_image, from_tensor, to_tensor
from core.learned import LearnedEngine
from core.limits import ITERATIONS, RESOLUTION, SEED, TEMPERATURE, check_choice
from core.patchmatch import LevelMatch
from core.precision import resolve_device
from core.protocol import Engine, EngineOutput, Progress, mean_positions
from core.results import LevelView, TranslationResult
from core.utils.deferred import Deferred
from core.utils.flow_viz import flow_to_image
from core.vocabulary import (
    AUTO,
    CHECKPOINTS_HELP,
    CONFIG_FILE,
    ENGINES,
    FRONT_ENDS,
    LEARNED,
    MIRROR_MODES,
    MODEL_FILES,
    PAINTED_EXEMPLAR,
    PRECISIONS,
    TASKS,
    TRAINING_FREE,
    WEIGHTS_FILE,
    about,
    missing_in_exemplar,
    subject_word,
    unknown,
    worded,
)


def find_checkpoints(root: Path = Path("checkpoints"), task: str | None = None) -> list[Path]:
    """Model folders (``MODEL_FILES``: config + weights) directly under ``root``, sorted by name;
    with ``task``, only those whose config says that task. Unreadable configs are skipped."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not all((folder / name).is_file() for name in MODEL_FILES):
            continue
        if task is not None and _checkpoint_task(folder) != task:
            continue
        found.append(folder)
    return found


def _checkpoint_task(folder: Path) -> str | None:
    try:
        return json.loads((folder / CONFIG_FILE).read_text()).get("task", "pose")
    except (OSError, ValueError, AttributeError):
        return None


class Translator:
    """One task, one engine: extracts conditions and translates inputs to exemplars' looks."""

    def __init__(self, task: str, engine: str = AUTO, checkpoint: str | Path | None = None,
                 device: str | None = None, precision: str = "fp32", checkpoints_root: Path = Path("checkpoints"),
                 version: int | None = None, front_end: str = "cli"):
        if task not in TASKS:
            raise InputError(unknown("task", task, TASKS))
        if engine not in ENGINES:
            raise InputError(unknown("engine", engine, ENGINES))
        if precision not in PRECISIONS:
            raise InputError(unknown("precision", precision, PRECISIONS))
        self.task = task
        self.front_end = check_choice("front end", front_end, FRONT_ENDS)  # whose words messages use (OPTION_WORDS)
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise InputError("fp16 needs a GPU; on CPU use bf16 (fast with AMX) or fp32.")
        self.precision = precision
        self.checkpoint: Path | None = None
        if engine != TRAINING_FREE:
            self.checkpoint = self._resolve_checkpoint(engine, checkpoint, Path(checkpoints_root))
        if version not in (None, 1, 2):
            raise InputError(f"Unknown training-free engine version {version!r}: use 2 or 1 (default: per task).")
        # v2 (charts, full-resolution sampling, compositing) by default where it is ready (face, pose, mask:
        # core.engine_v2.V2_DEFAULT); v1 elsewhere and on request (``version=1``: for comparisons).
        self.v2 = self.checkpoint is None and task in (V2_DEFAULT if version is None else V2_TASKS if version == 2
                                                       else ())
        self.engine: Engine = (LearnedEngine(self.checkpoint, self.device, precision) if self.checkpoint is not None
                               else TrainingFreeEngineV2() if self.v2 else TrainingFreeEngine())
        if checkpoint is not None and self.checkpoint is not None and hub.is_hub_id(checkpoint):
            self.engine.name = f"{LEARNED} ({checkpoint})"  # the id, not the cache folder
        self.engine_name = self.engine.name

    def _resolve_checkpoint(self, engine: str, checkpoint: str | Path | None, root: Path) -> Path | None:
        if checkpoint is not None:
            folder = hub.resolve_model(checkpoint)  # a Hub id -> its folder in the Hugging Face cache
            missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
            if missing:
                raise CheckpointError(f"{folder} is not a model folder (missing {', '.join(missing)}): a model "
                                      f"folder holds {CONFIG_FILE} + {WEIGHTS_FILE}; see {CHECKPOINTS_HELP}.")
            found_task = _checkpoint_task(folder)
            if found_task != self.task:
                raise CheckpointError(f"{folder} is a model for the {found_task!r} task, not {self.task!r}: "
                                      "pick a checkpoint made for this task.")
            return folder
        found = find_checkpoints(root, self.task)
        if found:
            return found[0]
        if engine == LEARNED:
            raise CheckpointError(
                f"No learned checkpoint for the {self.task} task under {root}/: put a model folder there "
                f"({CONFIG_FILE} + {WEIGHTS_FILE}, e.g. {root}/deepfashionHD from the official weights, "
                f"see {CHECKPOINTS_HELP}), $choose_checkpoint, or $choose_training_free.")
        return None

    # -- conditions ------------------------------------------------------------------------------
    def extract(self, image: np.ndarray, size: tuple[int, int], ready_condition: bool = False,
                palette: bool = False) -> Condition:
        """A photo (or, with ``ready_condition``, a skeleton / sketch / painted mask) -> Condition at (H, W).
        ``palette``: the photo was stored with a colour palette (dithered; see ``core.conditions.extract``)."""
        cond = (from_user_condition(self.task, image, size) if ready_condition
                else extract(self.task, image, size, palette))
        cond.messages = [worded(m, self.front_end) for m in cond.messages]
        return cond

    # -- translation -----------------------------------------------------------------------------
    def output_size(self, resolution: int | None) -> tuple[int, int]:
        """Square output size, rounded down to what the engine's pyramid accepts."""
        stride = self.engine.stride
        res = RESOLUTION.check(resolution) if resolution else self.engine.resolution
        res = max(stride, res - res % stride)
        return res, res

    def prepare(self, source: np.ndarray | Condition, exemplar: np.ndarray | Condition, size: tuple[int, int],
                source_is_condition: bool = False, allow_partial: bool = False, source_palette: bool = False
                ) -> tuple[Condition, Condition]:
        """Both conditions; the exemplar's carries its photo (``.image``). The input's is at ``size``; the
        exemplar's too, except for engine v2: at its own working size (its whole frame), carrying the
        original photo (``.photo``) so the output samples the original pixels. ``source_palette``: the input
        photo was stored with a colour palette (``extract``'s ``palette``)."""
        if isinstance(source, Condition):
            src = source
            if src.size != size:
                raise InputError(f"The input condition is {src.size[1]}x{src.size[0]}, not {size[1]}x{size[0]}: "
                                 "extract it at the size you translate at.")
        else:
            try:
                src = self.extract(source, size, ready_condition=source_is_condition, palette=source_palette)
            except NoSubjectError as exc:
                raise NoSubjectError(about("input", exc.args[0])) from exc
        return src, self.prepare_exemplar(exemplar, size, allow_partial)

    def prepare_exemplar(self, exemplar: np.ndarray | Condition, size: tuple[int, int],
                         allow_partial: bool = False) -> Condition:
        """The exemplar's condition for an output of ``size`` (see ``prepare``); made once, it serves
        any number of inputs (a video's frames)."""
        if isinstance(exemplar, Condition):
            ex_cond = exemplar
            if ex_cond.image is None:
                raise InputError("The exemplar must be a photo (or a Condition extracted from one, with its image).")
            if ex_cond.size != size and not self.v2:
                raise InputError(f"The exemplar condition is {ex_cond.size}, the input {size}: "
                                 "extract both at one size.")
        elif self.task == "mask" and looks_painted(exemplar):
            raise InputError(PAINTED_EXEMPLAR)
        elif self.v2:
            ex_cond = exemplar_condition(self.task, exemplar, max(size), allow_partial)
        else:
            try:
                ex_cond = extract(self.task, exemplar, size)
            except NoSubjectError as exc:
                raise NoSubjectError(missing_in_exemplar(subject_word(self.task), exc.args[0], False)) from exc
            if ex_cond.image is None:
                ex_cond.image = fit_image(exemplar, size)
        return ex_cond

    def translate(self, source: np.ndarray | Condition, exemplar: np.ndarray | Condition, *,
                  resolution: int | None = None, iterations: int | None = None, temperature: float | None = None,
                  seed: int = 0, source_is_condition: bool = False, allow_partial: bool = False,
                  mirror: str = "auto", source_palette: bool = False, progress: Progress | None = None
                  ) -> TranslationResult:
        """Translate ``source`` (photo, condition picture or Condition) to the looks of ``exemplar``
        (photo, or a Condition extracted from one). Progress goes through extraction, every level
        and synthesis. ``allow_partial``: engine v2 maps what it can when the exemplar lacks a part
        the input needs (e.g. no face) instead of refusing. ``mirror`` (engine v2; ``MIRROR_MODES``):
        "auto" uses the exemplar mirrored when it mirrors the input's scene or its face is turned the other
        way (a mask pair: only the face), "never" keeps it as given (a mirrored exemplar mirrors any text it
        shows), "always" mirrors it.
        ``source_palette``: the input photo was stored with a colour palette (dithered; smoothed for extraction)."""
        report = progress or (lambda fraction, text: None)
        mirror = check_choice("mirror setting", mirror, MIRROR_MODES)
        t0 = time.perf_counter()
        size = source.size if isinstance(source, Condition) else self.output_size(resolution)
        report(0.02, "extracting the conditions of the input and the exemplar")
        src, ex_cond = self.prepare(source, exemplar, size, source_is_condition, allow_partial, source_palette)
        extract_s = time.perf_counter() - t0
        report(0.2, "conditions ready")
        result = self._translate_conditions([src], [ex_cond], iterations, temperature, seed,
                                            lambda f, text: report(0.2 + 0.78 * f, text), allow_partial, mirror)[0]
        result.seconds = {"extract": extract_s, **result.seconds}
        report(1.0, "done")
        return result

    def translate_batch(self, sources: list, exemplars: list, *, resolution: int | None = None,
                        iterations: int | None = None, temperature: float | None = None, seed: int = 0,
                        source_is_condition: bool = False, allow_partial: bool = False, mirror: str = "auto",
                        source_palettes: list[bool] | None = None) -> list[TranslationResult | WarpaintError]:
        """Translate pairs; a pair that fails (unreadable, no subject...) yields its error instead of a
        result, the others go on. The learned engine runs the good pairs as one batch. ``source_palettes``:
        per input, whether its photo was stored with a colour palette (``translate``'s ``source_palette``)."""
        mirror = check_choice("mirror setting", mirror, MIRROR_MODES)
        palettes = [False] * len(sources) if source_palettes is None else source_palettes
        if not len(sources) == len(exemplars) == len(palettes):
            raise InputError(f"translate_batch pairs inputs with exemplars one to one: got {len(sources)} inputs, "
                             f"{len(exemplars)} exemplars and {len(palettes)} palette flags.")
        size = self.output_size(resolution)
        out: list[TranslationResult | WarpaintError | None] = [None] * len(sources)
        ready, conds = [], []
        for i, (source, exemplar, palette) in enumerate(zip(sources, exemplars, palettes)):
            try:
                conds.append(self.prepare(source, exemplar, size, source_is_condition, allow_partial, palette))
                ready.append(i)
            except WarpaintError as exc:
                out[i] = exc
        if ready:
            results = self._translate_conditions([c[0] for c in conds], [c[1] for c in conds], iterations,
                                                 temperature, seed, None, allow_partial, mirror)
            for i, result in zip(ready, results):
                out[i] = result
        return out  # type: ignore[return-value]

    def _translate_conditions(self, srcs: list[Condition], ex_conds: list[Condition], iterations: int | None,
                              temperature: float | None, seed: int, progress: Progress | None,
                              allow_partial: bool = False, mirror: str = "auto") -> list[TranslationResult]:
        iterations, temperature = ITERATIONS.check_optional(iterations), TEMPERATURE.check_optional(temperature)
        seed = SEED.check(seed)
        size = srcs[0].size
        # v2's exemplar conditions keep their own size (and photo); the tensor is the fitted view.
        exemplars = torch.cat([to_tensor(fit_image(c.image, size)) for c in ex_conds]).to(self.device)
        extra = {"allow_partial": allow_partial, "mirror": mirror} if self.v2 else {}
        out = self.engine(srcs, exemplars, ex_conds, iterations=iterations, temperature=temperature, seed=seed,
                          progress=progress, **extra)
        return [self._result(out.item(i), src, ex_cond, size) for i, (src, ex_cond) in enumerate(zip(srcs, ex_conds))]

    def _result(self, out: EngineOutput, src: Condition, ex_cond: Condition, size: tuple[int, int]
                ) -> TranslationResult:
        t1 = time.perf_counter()
        messages = ([f"Engine: {self.engine_name}."] + list(src.messages) + [f"Exemplar: {m}" for m in ex_cond.messages]
                    + [m for notes in out.notes for m in notes])
        messages = [worded(m, self.front_end) for m in messages]
        result = TranslationResult(
            image=from_tensor(out.image[0]), warped=from_tensor(out.warped[0]), input_condition=src.preview,
            exemplar_condition=ex_cond.preview, levels=Deferred(lambda: level_views(out.levels, size)),
            engine=self.engine_name,
            messages=messages, seconds={k: v for k, v in out.seconds.items() if k != "total"},
            confidence=out.confidence[0, 0].float().cpu().numpy(),
            flow=Deferred(lambda: flow_picture(out.positions[0], size)),
            positions=out.positions[0].float().cpu().permute(1, 2, 0).contiguous().numpy(),
            mapped=None if out.fill is None else (out.fill[0, 0] < 0.5).cpu().numpy(),
            mirrored=bool(out.stats and out.stats[0].get("mirrored")))
        result.seconds["views"] = time.perf_counter() - t1
        return result


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
            raise NoSubjectError(missing_in_exemplar(subject_word(task), exc.args[0])) from exc
        image = fit_image(photo, size)
        cond = Condition(task=task, label=torch.zeros(1, *size), preview=image, image=image,
                         messages=[f"No subject found ({exc})."])
    if cond.image is None:
        cond.image = fit_image(photo, size)
    cond.photo = photo
    return cond


# -- views for the UI ------------------------------------------------------------------------------

def flow_picture(positions: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(2, H, W) (row, col) positions -> the flow (output -> exemplar) as a colour-wheel picture."""
    flow = positions.cpu() - pixel_grid(*size, "cpu")
    return flow_to_image(flow.flip(0).permute(1, 2, 0).numpy())


def level_views(levels: list[LevelMatch], size: tuple[int, int]) -> list[LevelView]:
    """Every level's warp and flow picture at the output size, its confidence, and its candidates
    as (x, y) in output pixels with their weights (first batch item)."""
    flows = []
    for lv in levels:
        h, w = lv.weights.shape[-2:]
        scale = torch.tensor([size[0] / h, size[1] / w]).view(2, 1, 1)
        disp = (mean_positions(lv)[0].cpu() - pixel_grid(h, w, "cpu")) * scale  # (2, h, w) output pixels
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
