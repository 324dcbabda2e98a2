"""What the app's events do, independent of the layout: extract, translate, inspect a click.

Each function takes plain values (paths, arrays, numbers) and returns plain values, so the
UI, the API endpoints and the tests share them.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app import drawing, models, settings
from app.engine import friendly_errors, gpu, load_picture, load_upload, translator_for
from core import budget
from core.limits import check_choice, check_flag
from core.results import LevelView, TranslationResult
from core.vocabulary import ENGINES, MIRROR_MODES, TASKS, TRAINING_FREE

Progress = Callable[[float, str], None]


@dataclass
class InspectState:
    """What click-to-inspect needs after a run (kept per browser session in a ``gr.State``)."""

    exemplar: np.ndarray  # (H, W, 3) uint8: the exemplar as the model saw it, at output size
    size: tuple[int, int]  # output (H, W)
    levels: list[LevelView]  # candidates/weights stored as float16 to keep sessions small
    flow: np.ndarray | None = None  # (H, W, 3) uint8: the final flow picture, when the engine gives one
    confidence: np.ndarray | None = None  # (H, W) float32: the final confidence, when the engine gives one


@dataclass
class Outcome:
    result: TranslationResult
    state: InspectState
    seconds: float  # wall time of the whole request, reading pictures included

    def status(self) -> str:
        return status_markdown(self.result, self.seconds)

    def info(self) -> dict:
        r = self.result
        return {"engine": r.engine, "messages": list(r.messages), "size": list(r.image.shape[:2]),
                "wall_seconds": round(self.seconds, 3),
                "seconds": {k: round(v, 3) for k, v in r.seconds.items()}, "levels": [list(lv.size) for lv in r.levels]}


def check_resolution(resolution: object) -> int | None:
    """The app's resolution limit (``settings.RESOLUTION``); None = the engine's default."""
    return settings.RESOLUTION.check_optional(resolution)


# The filter's cost grows with the fourth power of the side (its neighbourhood grows with the picture): 0.4 s CPU
# at 1024, 2.4 s at 2048, about 85 s for a 25 MP square, in one call no time budget can stop. Twice the largest
# output side is plenty for an exemplar.
OIL_MAX_SIDE = 2048


def oil_paint(picture: np.ndarray) -> np.ndarray:
    """The oil-paint look of assets/make_assets.py (OpenCV contrib's xphoto.oilPainting), scaled to the picture,
    which is first brought down to ``OIL_MAX_SIDE``."""
    import cv2

    from core.imageio import oil_paint as oil_filter  # torch and cv2 load on first use, not at start-up

    height, width = picture.shape[:2]
    scale = OIL_MAX_SIDE / max(height, width)
    if scale < 1:  # at least one pixel a side: a 70000x16 strip's 16 would round to 0
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    return oil_filter(picture, max(2, round(4 * min(picture.shape[:2]) / 512)))


@gpu  # outermost: on ZeroGPU the gr.Error raised inside travels back to the UI
@friendly_errors
def extract(task: str, image, ready_condition: bool = False, resolution: float | None = 256) -> tuple[np.ndarray, str]:
    """A photo (or a ready condition) -> the picture of its condition, and the extractor's messages."""
    task = check_choice("task", task, TASKS)
    ready = check_flag("ready_condition", ready_condition)
    res = check_resolution(resolution) or 256
    picture, palette = load_upload(image, "picture")
    budget.check()
    # core decides what a photo is (a painted mask is read as one) and smooths a palette photo's dithering
    condition = translator_for(task, TRAINING_FREE, None).extract(picture, (res, res), ready_condition=ready,
                                                                  palette=palette)
    return condition.preview, "\n".join(condition.messages)


@gpu  # outermost: on ZeroGPU the gr.Error raised inside travels back to the UI
@friendly_errors
def translate(task: str, source, exemplar, *, source_is_condition: bool = False, resolution: float | None = None,
              engine: str = "auto", checkpoint: str | None = None, iterations: float | None = None,
              temperature: float | None = None, seed: float | None = 0, oil_paint_exemplar: bool = False,
              mirror: str = "auto", progress: Progress | None = None) -> Outcome:
    """Translate ``source`` (photo or condition) to the looks of ``exemplar``; everything the UI shows.
    Every value is checked first (``settings`` limits, model names), before any picture is read.
    ``mirror`` (``MIRROR_MODES``): whether engine v2 may use the exemplar mirrored (a mirror image mirrors text)."""
    start = time.perf_counter()
    task = check_choice("task", task, TASKS)
    options = dict(source_is_condition=check_flag("source_is_condition", source_is_condition),
                   resolution=check_resolution(resolution), iterations=settings.ITERATIONS.check_optional(iterations),
                   temperature=settings.TEMPERATURE.check_optional(temperature),
                   seed=settings.SEED.check(0 if seed is None else seed),
                   mirror=check_choice("mirror setting", mirror, MIRROR_MODES))
    oil = check_flag("oil_paint_exemplar", oil_paint_exemplar)
    engine = check_choice("engine", engine, ENGINES)
    folder = models.resolve(task, checkpoint)
    if folder is None and engine != TRAINING_FREE:
        folder = models.default(task)  # a Hub model the operator allowed counts as much as a local folder
    user_report = progress or (lambda fraction, text: None)

    def report(fraction: float, text: str) -> None:
        budget.check()  # also between the stages that do not check themselves
        user_report(fraction, text)

    report(0.0, "reading pictures")
    src, palette = load_upload(source, "input")
    ex = load_picture(exemplar, "exemplar")
    if oil:
        ex = oil_paint(ex)
    result = translator_for(task, engine, folder).translate(src, ex, progress=report, source_palette=palette,
                                                            **options)
    result.engine = models.public_text(result.engine)
    result.messages = [models.public_text(m) for m in result.messages]
    return Outcome(result, inspect_state(result, ex), time.perf_counter() - start)


def inspect_state(result: TranslationResult, exemplar: np.ndarray) -> InspectState:
    """Keep what a click needs: the exemplar at output size and each level's candidates (float16)."""
    from core.imageio import fit_image

    size = tuple(int(s) for s in result.image.shape[:2])
    levels = [LevelView(size=lv.size, warp=lv.warp, flow=lv.flow, confidence=lv.confidence.astype(np.float32),
                        candidates=lv.candidates.astype(np.float16), weights=lv.weights.astype(np.float16))
              for lv in result.levels]
    return InspectState(exemplar=fit_image(exemplar, size), size=size, levels=levels,
                        flow=getattr(result, "flow", None), confidence=getattr(result, "confidence", None))


def status_markdown(result: TranslationResult, seconds: float) -> str:
    """Engine in use, wall time with the engine's own stage timings, and the extractors' / engine's messages."""
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in result.seconds.items())
    text = f"**Engine:** {result.engine}  \n**Time:** {seconds:.2f} s" + (f" (stages: {stages})" if stages else "")
    notes = [m for m in result.messages if not m.startswith("Engine:")]  # already the first line
    if notes:
        text += "\n\n" + "\n".join(f"- {m}" for m in notes)
    return text


def level_pictures(state: InspectState | None, level: object) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Flow picture and confidence picture of one level; by default (no level picked: ``picked_level``) the final
    ones (else the finest level's)."""
    if state is None or not state.levels:
        return None, None
    level = picked_level(state, level)
    if level is None and state.flow is not None and state.confidence is not None:
        return state.flow, drawing.confidence_picture(state.confidence, state.size)
    lv = state.levels[len(state.levels) - 1 if level is None else level]
    return lv.flow, drawing.confidence_picture(lv.confidence, state.size)


def picked_level(state: InspectState | None, level: object) -> int | None:
    """The level a client picked, as the warp gallery sends it (its index: a whole number from 0 to the number of
    levels - 1); anything else is no pick (None): numbers as text ("2"), booleans, fractions, NaN, lists and
    indices out of range are not clipped or converted into some level."""
    if state is None or isinstance(level, bool) or not isinstance(level, numbers.Integral):
        return None
    return int(level) if 0 <= level < len(state.levels) else None


def _click_point(point: object) -> tuple[float, float] | None:
    """A click's (x, y) as a client sends it: a list or tuple of two finite numbers, else None (a string such
    as "12" is no click, nor are booleans or numbers given as text)."""
    if not isinstance(point, (list, tuple)) or len(point) != 2:
        return None
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in point):
        return None
    try:
        x, y = float(point[0]), float(point[1])
    except (TypeError, ValueError, OverflowError):  # an integer too large for a float
        return None
    return (x, y) if np.isfinite((x, y)).all() else None


def inspect(state: InspectState | None, level: object, point: object) -> tuple[np.ndarray | None, str]:
    """A click at output pixel (x, y) -> the exemplar with that pixel's K candidates marked, and a caption.
    The click's values come from the client: anything but two finite numbers is no click, and a level that is
    not one the gallery can send is the finest (``picked_level``)."""
    if state is None:
        return None, "Run a translation first, then click a point of the output or of the input's condition."
    point = _click_point(point)
    if point is None:
        return state.exemplar, "Click a point of the output or of the input's condition."
    i = picked_level(state, level)
    i = len(state.levels) - 1 if i is None else i  # no pick: the finest level
    lv = state.levels[i]
    cell = drawing.grid_cell(point, state.size, lv.size)
    candidates = lv.candidates[cell].astype(np.float32)  # (K, 2) (x, y) in output pixels
    weights = lv.weights[cell].astype(np.float32)  # (K,)
    marked = drawing.mark_candidates(state.exemplar, candidates, weights)
    return marked, drawing.describe_match(i, lv, len(state.levels), point, cell, weights, candidates)
