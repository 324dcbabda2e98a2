"""Pose video retargeting: one exemplar person driven through every frame of a clip.

    retargeter = VideoRetargeter(Translator("pose", engine="auto"))
    result = retargeter.run(open_clip("dance.mp4"), load_image("person.jpg"), Path("out.mp4"),
                            VideoOptions(resolution=512), progress=lambda stage, done, total: ...)

Passes: (1) the pose of every frame (MediaPipe on photos, or the OpenPose JSON files), (2) the
track bridged and smoothed over time, (3) every frame rendered with the chosen engine, the
exemplar's condition made once for the clip and, with the training-free engine, each frame's
matching seeded by the previous frame's (``core.video.seeding``), (4) the frames encoded.

A killed run continues where it stopped: the poses and every finished frame are kept in a
hidden folder beside the output (``.<name>.partial/``) together with a fingerprint of the input,
the exemplar and the settings; a run with the same fingerprint reuses them, and the folder is
removed once the video is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core import budget
from core.charts.mirror import prefers_mirror
from core.conditions import Condition, detectors, pose
from core.engine import TrainingFreeEngine
from core.engine_v2 import TrainingFreeEngineV2
from core.errors import InputError, NoSubjectError, WarpaintError
from core.imageio import fit_image, fit_points, from_tensor, to_tensor
from core.learned import LearnedEngine
from core.limits import check_choice
from core.video import seeding, stability
from core.video.clip import Clip
from core.video.encode import check_output, write_video
from core.video.track import smooth_track
from core.vocabulary import MIRROR_MODES

# progress(stage, done, total): stage is "poses", "frames" or "encoding"
VideoProgress = Callable[[str, int, int], None]
STATE_VERSION = 1
FRAME_SETTINGS = ("seeding", "iterations", "seed", "allow_partial", "mirror")  # the options that change the frames


@dataclass
class VideoOptions:
    """Per-run settings (the CLI's flags, the app's controls)."""

    resolution: int | None = None  # square output side (default: the engine's)
    seeding: bool = True  # training-free engine v1: start each frame from the previous frame's matches
    iterations: int | None = None  # PatchMatch iterations of an unseeded frame (engine default)
    allow_partial: bool = False  # engine v2: map what it can when the exemplar lacks a body part a frame needs
    mirror: str = "auto"  # engine v2: use the exemplar mirrored (MIRROR_MODES); "auto" decides once, on the first frame
    batch_size: int = 1  # frames per engine call when frames are independent (learned engine on a GPU)
    seed: int = 0
    measure: bool = False  # flicker and PCK per frame (re-detects the pose on every output)
    frames_dir: Path | None = None  # also keep the output frames (PNG) here
    skeletons_dir: Path | None = None  # also keep every frame's skeleton picture and OpenPose JSON here
    skeleton_video: Path | None = None  # also encode the skeletons as a video


@dataclass
class VideoResult:
    """What a run produced and measured."""

    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    engine: str
    resumed: int = 0  # frames found finished from an earlier, interrupted run
    seconds: dict[str, float] = field(default_factory=dict)  # per rendered frame: wall and process CPU
    iterations: list[int] = field(default_factory=list)  # PatchMatch iterations per rendered frame (-1: unseeded)
    flicker: list[float] = field(default_factory=list)  # per frame t >= 1 (with ``measure``)
    pck: list[float] = field(default_factory=list)  # per frame (with ``measure``)
    messages: list[str] = field(default_factory=list)
    skeleton_video: Path | None = None

    def summary(self) -> dict:
        """Figures for a JSON report (means over frames; NaNs skipped)."""
        def mean(values):
            v = [x for x in values if x == x]
            return round(float(np.mean(v)), 4) if v else None

        return {"frames": self.frames, "fps": self.fps, "size": list(self.size), "engine": self.engine,
                "resumed_frames": self.resumed, **{k: round(v, 4) for k, v in self.seconds.items()},
                "flicker_mean": mean(self.flicker), "pck_mean": mean(self.pck),
                "pck_min": round(min(self.pck), 4) if self.pck else None,
                "flicker": [round(x, 3) for x in self.flicker], "pck": [round(x, 3) for x in self.pck],
                "iterations": self.iterations}


class VideoRetargeter:
    """Runs one clip through a ``Translator`` (pose task): poses, smoothing, frames, encoding."""

    def __init__(self, translator):
        if translator.task != "pose":
            raise InputError("Video retargeting drives a person's pose: use --task pose.")
        self.translator = translator

    def run(self, clip: Clip, exemplar: np.ndarray, output: Path, options: VideoOptions | None = None,
            progress: VideoProgress | None = None) -> VideoResult:
        opts = options or VideoOptions()
        check_choice("mirror setting", opts.mirror, MIRROR_MODES)
        report = progress or (lambda stage, done, total: None)
        output = Path(output)
        check_output(output)
        for extra in (opts.skeleton_video,):
            if extra is not None:
                check_output(Path(extra))
        size = self.translator.output_size(opts.resolution)
        ex_cond = self.translator.prepare_exemplar(exemplar, size, opts.allow_partial)  # once per clip
        engine_id = f"{self.translator.engine_name} ({type(self.translator.engine).__name__})"
        state = _State(output, _fingerprint(clip, exemplar, size, engine_id, opts))
        result = VideoResult(output, clip.count, clip.fps, size, self.translator.engine_name)

        w0, c0 = time.perf_counter(), time.process_time()
        raw = self._poses(clip, size, state, report)
        poses_seconds = (time.perf_counter() - w0, time.process_time() - c0)
        result.frames = clip.count  # the decoded count, should the container have promised more
        try:
            track, track_report = smooth_track(raw, clip.fps, size)
        except ValueError as exc:
            raise NoSubjectError("No person was found in any frame of the clip: use a clip where one person's "
                                 "head and shoulders are visible, or give OpenPose JSON poses.") from exc
        result.messages += track_report.messages()
        self._render(clip, track, ex_cond, size, opts, state, result, report)
        if opts.measure:
            self._measure(clip, track, size, state, result)

        report("encoding", 0, 1)
        w0, c0 = time.perf_counter(), time.process_time()
        write_video(output, (state.read(t) for t in range(clip.count)), clip.fps)
        result.seconds.update(wall_encode_per_frame=(time.perf_counter() - w0) / clip.count,
                              cpu_encode_per_frame=(time.process_time() - c0) / clip.count,
                              wall_poses_per_frame=poses_seconds[0] / clip.count,
                              cpu_poses_per_frame=poses_seconds[1] / clip.count)
        if opts.skeleton_video is not None:
            write_video(opts.skeleton_video, (state.read(t, "skeletons") for t in range(clip.count)), clip.fps)
            result.skeleton_video = Path(opts.skeleton_video)
        if opts.frames_dir is not None:
            state.export("frames", Path(opts.frames_dir))
        if opts.skeletons_dir is not None:
            state.export("skeletons", Path(opts.skeletons_dir))
        report("encoding", 1, 1)
        state.remove()
        return result

    # -- pass 1: poses ---------------------------------------------------------------------------
    def _poses(self, clip: Clip, size: tuple[int, int], state: _State, report: VideoProgress) -> np.ndarray:
        """(T, 18, 3) raw keypoints in output pixels; rows found in the state are not redone."""
        raw = state.load_poses()
        done = len(raw)
        report("poses", done, clip.count)
        if done >= clip.count:
            return raw[: clip.count]
        rows = list(raw)
        source = clip.poses() if clip.kind == "poses" else clip.frames()
        for t, item in enumerate(source):
            if t < done:
                continue
            budget.check()  # the app's time budget per request (a no-op in the CLI)
            rows.append(_fitted_pose(item, size) if clip.kind == "poses" else _detect(item, size))
            if len(rows) % 16 == 0:
                state.save_poses(np.stack(rows))
            report("poses", t + 1, clip.count)
        if len(rows) < clip.count:  # a stream shorter than its packets said: the count follows the frames
            clip.count = len(rows)
        raw = np.stack(rows)
        state.save_poses(raw)
        return raw

    # -- pass 2: frames --------------------------------------------------------------------------
    def _render(self, clip: Clip, track: np.ndarray, ex_cond, size: tuple[int, int], opts: VideoOptions,
                state: _State, result: VideoResult, report: VideoProgress) -> None:
        engine = self.translator.engine  # the engine protocol (core/protocol.py): learned or training-free
        # v1 takes the previous frame's matches (``init=``); v2's charts are not matched iteratively and the
        # exemplar's side of its work (background completion, body parts) is kept by the engine for the clip
        seeded = opts.seeding and isinstance(engine, TrainingFreeEngine)
        ex_tensor = to_tensor(fit_image(ex_cond.image, size)).to(self.translator.device)
        full = opts.iterations if opts.iterations is not None else getattr(engine, "iterations", 0)
        # the learned engine's exemplar encoder runs once per clip, not once per frame
        once = ({"exemplar_features": engine.encode_exemplar(ex_tensor, ex_cond)}
                if isinstance(engine, LearnedEngine) else {})
        batch = 1 if seeded else opts.batch_size  # seeded frames depend on each other: one at a time
        photos = clip.frames() if clip.kind != "poses" else iter(())
        previous = None  # (engine output, pose) of the frame before, for seeding
        mirror = opts.mirror  # "auto" is decided on the first frame, for the whole clip (no frame flips alone)
        first_photo = None
        pending: list[tuple[int, Condition]] = []  # frames waiting for the next batch
        last = max((t for t in range(clip.count) if not state.has(t)), default=-1)  # the last frame to render
        clock = _Clock()
        report("frames", 0, clip.count)
        for t in range(clip.count):
            photo = next(photos, None) if clip.kind != "poses" else None
            first_photo = photo if t == 0 else first_photo  # (a resumed run decides on the same frame)
            if state.has(t):
                result.resumed += 1
                previous = None
                report("frames", t + 1, clip.count)
                continue
            budget.check()
            with clock("condition"):
                pending.append((t, _condition(track[t], size, photo)))
                if mirror == "auto" and isinstance(engine, TrainingFreeEngineV2):
                    first = pending[-1][1] if t == 0 else _condition(track[0], size, first_photo)
                    mirror = "always" if prefers_mirror(first, ex_cond) else "never"
            if len(pending) < batch and t < last:
                continue
            with clock("engine"):
                init, iters = None, opts.iterations
                if seeded and previous is not None:
                    init = seeding.carry_matches(previous[0].levels[-1].positions, previous[1], track[t], size)
                    if init is not None:
                        iters = seeding.iterations_for(seeding.pose_motion(previous[1], track[t], size), full)
                extra = (once if isinstance(engine, LearnedEngine)
                         else {"allow_partial": opts.allow_partial, "mirror": mirror}
                         if isinstance(engine, TrainingFreeEngineV2)
                         else {"init": init} if seeded else {})
                n = len(pending)
                out = engine([c for _, c in pending], ex_tensor.expand(n, -1, -1, -1), [ex_cond] * n,
                             iterations=iters, seed=opts.seed, **extra)
                # the training-free engine averages its batch's seconds per item, the learned one sums them
                clock.add_parts(out.seconds, n if isinstance(engine, TrainingFreeEngine) else 1)
                previous = (out, track[t])
                _add_notes(result.messages, out.notes)
            with clock("write"):
                for i, (done, cond) in enumerate(pending):
                    state.write(done, from_tensor(out.image[i]), cond.preview, track[done], size)
                    result.iterations.append(iters if init is not None else -1)
            clock.frames += n
            pending.clear()
            report("frames", t + 1, clip.count)
        result.seconds = clock.per_frame()

    # -- measurement -----------------------------------------------------------------------------
    def _measure(self, clip: Clip, track: np.ndarray, size: tuple[int, int], state: _State,
                 result: VideoResult) -> None:
        """Flicker (t >= 1) and PCK per frame, from the written frames."""
        photos = clip.frames() if clip.kind != "poses" else iter(())
        before = None  # (output, fitted photo or None)
        for t in range(clip.count):
            photo = next(photos, None)
            fitted = fit_image(photo, size) if photo is not None else None
            out = state.read(t)
            try:
                found = pose.detect_keypoints(out, size)
            except NoSubjectError:
                found = None
            result.pck.append(stability.pck(found, track[t]))
            if before is not None:
                if fitted is not None:
                    flow = stability.input_flow(before[1], fitted)
                    mask = detectors.run("selfie", fitted).segmentation_mask
                    region = np.asarray(mask) > 0.5 if mask is not None else state.read(t, "skeletons").any(2)
                else:
                    flow = stability.keypoint_flow(track[t - 1], track[t], size)
                    region = state.read(t, "skeletons").any(2)
                if flow is not None:
                    result.flicker.append(stability.flicker(before[0], out, flow, stability.person_region(region)))
            before = (out, fitted)


def _add_notes(messages: list[str], notes: list[list[str]] | None) -> None:
    """The engine's remarks on a batch of frames (e.g. which limb stands in for one the exemplar hides),
    each kind once per clip: a remark that differs only in its figures is the same remark."""
    seen = {re.sub(r"\d+(\.\d+)?", "#", m) for m in messages}
    for note in (n for item in notes or () for n in item):
        key = re.sub(r"\d+(\.\d+)?", "#", note)
        if key not in seen:
            seen.add(key)
            messages.append(note)


def _detect(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    try:
        return pose.detect_keypoints(photo, size)
    except NoSubjectError:
        return np.zeros((18, 3))


def _fitted_pose(item: tuple[np.ndarray, tuple[int, int] | None], size: tuple[int, int]) -> np.ndarray:
    """OpenPose keypoints in their canvas -> output pixels (the canvas fitted like a photo)."""
    kp, frame = item
    kp = np.array(kp, np.float64)
    present = kp[:, 2] > 0
    kp[:, :2] = fit_points(kp[:, :2], frame or size, size)
    kp[~present] = 0.0
    return kp


def _condition(keypoints: np.ndarray, size: tuple[int, int], photo: np.ndarray | None):
    """The frame's pose condition from its smoothed keypoints (with the person's silhouette on photos)."""
    cond = pose.from_keypoints(keypoints, size, photo)
    if cond.image is not None:
        seg = detectors.run("selfie", cond.image).segmentation_mask
        if seg is not None:
            cond.subject_mask = np.asarray(seg) > 0.5
    return cond


def _fingerprint(clip: Clip, exemplar: np.ndarray, size, engine: str, opts: VideoOptions) -> dict:
    """What decides the frames: a run with another fingerprint starts afresh."""
    if clip.kind == "video":
        stat = clip.path.stat()
        source = [str(clip.path.resolve()), stat.st_size, stat.st_mtime_ns]
    else:
        source = [str(clip.path.resolve())] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns]
                                               for p in clip.files[: clip.count]]
    return {"version": STATE_VERSION, "kind": clip.kind, "count": clip.count, "fps": clip.fps,
            "source": hashlib.sha256(json.dumps(source).encode()).hexdigest(),
            "exemplar": hashlib.sha256(np.ascontiguousarray(exemplar).tobytes()).hexdigest(),
            "size": list(size), "engine": engine,
            "settings": {k: v for k, v in asdict(opts).items() if k in FRAME_SETTINGS}}


class _Clock:
    """Wall and process-CPU seconds per stage, summed over the rendered frames."""

    def __init__(self):
        self.frames = 0
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stage = ""
        self.parts: dict[str, float] = {}  # the engine's own stages (wall)

    def add_parts(self, seconds: dict[str, float], items: int = 1) -> None:
        """An engine call's own stage times (per item, for ``items`` items)."""
        for key in ("descriptors", "matching", "output", "synthesis", "charts", "map", "completion", "compose"):
            if key in seconds:
                self.parts[key] = self.parts.get(key, 0.0) + seconds[key] * items

    def __call__(self, stage: str) -> _Clock:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._t = (time.perf_counter(), time.process_time())

    def __exit__(self, *exc) -> None:
        w, c = self._t
        self.wall[self._stage] = self.wall.get(self._stage, 0.0) + time.perf_counter() - w
        self.cpu[self._stage] = self.cpu.get(self._stage, 0.0) + time.process_time() - c

    def per_frame(self) -> dict[str, float]:
        """Seconds per rendered frame: ``wall_per_frame``, ``cpu_per_frame`` and each stage's."""
        if not self.frames:
            return {}
        out = {"wall_per_frame": sum(self.wall.values()) / self.frames,
               "cpu_per_frame": sum(self.cpu.values()) / self.frames, "rendered_frames": float(self.frames)}
        for stage in self.wall:
            out[f"wall_{stage}"] = self.wall[stage] / self.frames
            out[f"cpu_{stage}"] = self.cpu[stage] / self.frames
        for key, value in self.parts.items():
            out[f"wall_engine_{key}"] = value / self.frames
        return out


class _State:
    """The hidden folder beside the output that lets a killed run continue."""

    def __init__(self, output: Path, fingerprint: dict):
        self.root = output.parent / f".{output.name}.partial"
        stamp = self.root / "state.json"
        if self.root.is_dir():
            try:
                same = json.loads(stamp.read_text()) == fingerprint
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.root)
        for sub in ("frames", "skeletons"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            for stale in (self.root / sub).glob("*.tmp.*"):  # a write the kill interrupted
                stale.unlink()
        stamp.write_text(json.dumps(fingerprint))

    def _path(self, t: int, kind: str = "frames", suffix: str = ".png") -> Path:
        return self.root / kind / f"{t:06d}{suffix}"

    def load_poses(self) -> np.ndarray:
        try:
            return np.load(self.root / "poses.npy")
        except (OSError, ValueError):
            return np.zeros((0, 18, 3))

    def save_poses(self, raw: np.ndarray) -> None:
        tmp = self.root / "poses.tmp.npy"
        np.save(tmp, raw)
        tmp.replace(self.root / "poses.npy")

    def has(self, t: int) -> bool:
        return self._path(t).is_file()

    def write(self, t: int, image: np.ndarray, skeleton: np.ndarray, keypoints: np.ndarray,
              size: tuple[int, int]) -> None:
        """Skeleton and keypoints first, the frame last (its presence marks the frame done), each by rename."""
        from core.conditions.openpose_io import write_keypoints_json

        write_keypoints_json(self._path(t, "skeletons", ".json"), size, pose=keypoints)
        for kind, picture in (("skeletons", skeleton), ("frames", image)):
            tmp = self._path(t, kind, ".tmp.png")
            if not cv2.imwrite(str(tmp), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                raise WarpaintError(f"Cannot write {tmp}: is the disk full?")
            tmp.replace(self._path(t, kind))

    def read(self, t: int, kind: str = "frames") -> np.ndarray:
        picture = cv2.imread(str(self._path(t, kind)), cv2.IMREAD_COLOR)
        if picture is None:
            raise WarpaintError(f"Frame {t} is missing from {self.root}: run the command again to redo it.")
        return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)

    def export(self, kind: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted((self.root / kind).iterdir()):
            shutil.copyfile(path, folder / path.name)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
