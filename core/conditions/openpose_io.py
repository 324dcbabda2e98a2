"""Keypoint files people already have: DeepFashionHD candidate/subset txt pairs and OpenPose JSON.

Readers return keypoints in the file's own pixel frame plus that frame's size when the
file says it; callers map them to the output with ``core.imageio.fit_points``. The writer
produces OpenPose-style JSON (``people[0].pose_keypoints_2d`` COCO-18, ``face_keypoints_2d``
70 points, iBUG-68 + 2 pupils) with ``canvas_width`` / ``canvas_height`` as the ControlNet
pose editors write them, so the files open in those tools and come back here unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import InputError

DEEPFASHION_FRAME = (1024, 1024)  # (H, W) of the frames the released DeepFashionHD pose files describe

# OpenPose BODY_25 -> COCO-18: BODY_25 adds MidHip (8) and six foot points (19-24).
BODY25_FOR_COCO = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


@dataclass
class KeypointFile:
    """What a keypoint file holds (arrays are x, y, confidence; confidence 0 = missing)."""

    pose: np.ndarray | None = None  # (18, 3) COCO-18
    face: np.ndarray | None = None  # (68, 3) iBUG
    frame: tuple[int, int] | None = None  # (H, W) the coordinates refer to, if the file says
    normalized: bool = False  # coordinates are fractions of the frame (0..1)
    messages: list[str] = field(default_factory=list)


def body25_to_coco18(keypoints: np.ndarray) -> np.ndarray:
    """(25, 3) OpenPose BODY_25 -> (18, 3) COCO-18."""
    return np.asarray(keypoints, dtype=np.float64)[list(BODY25_FOR_COCO)].copy()


def _pair_paths(path: str | Path) -> tuple[Path, Path]:
    text = str(path)
    if "{}" in text:
        return Path(text.format("candidate")), Path(text.format("subset"))
    for word in ("candidate", "subset"):
        stem = f"_{word}.txt"
        if text.endswith(stem):
            base = text[: -len(stem)]
            return Path(base + "_candidate.txt"), Path(base + "_subset.txt")
    raise InputError(f"{path}: a DeepFashionHD pose file pair is named <name>_candidate.txt and "
                     "<name>_subset.txt; give either file (or the template <name>_{}.txt).")


def read_candidate_subset(path: str | Path) -> KeypointFile:
    """Read a DeepFashionHD / OpenPose-python ``candidate`` + ``subset`` txt pair (one person)."""
    cand_path, sub_path = _pair_paths(path)
    for p in (cand_path, sub_path):
        if not p.is_file():
            raise InputError(f"Keypoint file not found: {p} (both _candidate.txt and _subset.txt are needed).")
    try:
        candidate = np.loadtxt(cand_path, ndmin=2)
        subset = np.loadtxt(sub_path, ndmin=2)
    except ValueError as exc:
        raise InputError(f"Cannot parse {cand_path.name} / {sub_path.name} as numbers: {exc}") from exc
    if subset.shape[1] < 18 or (candidate.size and candidate.shape[1] < 2):
        raise InputError(f"{sub_path.name} needs 18+ columns and {cand_path.name} 2+ columns (x, y).")
    messages = []
    row = 0
    if len(subset) > 1:  # several people: the one with the highest total score (column 18)
        scores = subset[:, 18] if subset.shape[1] > 18 else (subset[:, :18] >= 0).sum(axis=1)
        row = int(np.argmax(scores))
        messages.append(f"{len(subset)} people in {sub_path.name}; used person {row + 1} (highest score).")
    kp = np.zeros((18, 3), np.float64)
    for j in range(18):
        index = int(subset[row, j])
        if index < 0:
            continue
        if index >= len(candidate):
            raise InputError(f"{sub_path.name} points at candidate {index}, but {cand_path.name} "
                             f"has only {len(candidate)} rows.")
        conf = float(candidate[index, 2]) if candidate.shape[1] > 2 else 1.0
        kp[j] = (candidate[index, 0], candidate[index, 1], max(conf, 1e-3))
    return KeypointFile(pose=kp, frame=DEEPFASHION_FRAME, messages=messages)


def _triples(values: object, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size % 3:
        raise InputError(f"{what} must hold x, y, confidence triples; got {arr.size} numbers.")
    return arr.reshape(-1, 3)


def read_openpose_json(path: str | Path) -> KeypointFile:
    """Read OpenPose JSON (COCO-18 or BODY_25 body, 68/70-point face); the most confident person wins."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Keypoint file not found: {path}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # pose editors write a list of frames
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise InputError(f"{path} is not OpenPose JSON: expected {{\"people\": [{{\"pose_keypoints_2d\": "
                         "[x, y, c, ...]}}]}}.")
    if not people:
        raise InputError(f"{path} lists no people: there are no keypoints to use.")
    try:
        parsed = []
        for person in people:
            pose = person.get("pose_keypoints_2d")
            face = person.get("face_keypoints_2d")
            pose_arr = _triples(pose, "pose_keypoints_2d") if pose else None
            face_arr = _triples(face, "face_keypoints_2d") if face else None
            parsed.append((pose_arr, face_arr))
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed keypoints ({exc}).") from exc
    scores = [sum(float(a[:, 2].sum()) for a in p if a is not None) for p in parsed]
    row = int(np.argmax(scores))
    messages = [f"{len(people)} people in {path.name}; used the most confident one."] if len(people) > 1 else []
    pose_arr, face_arr = parsed[row]
    if pose_arr is not None:
        if len(pose_arr) == 25:
            pose_arr = body25_to_coco18(pose_arr)
        elif len(pose_arr) != 18:
            raise InputError(f"{path}: pose_keypoints_2d has {len(pose_arr)} points; expected 18 (COCO) or 25.")
    if face_arr is not None:
        if len(face_arr) not in (68, 70):
            raise InputError(f"{path}: face_keypoints_2d has {len(face_arr)} points; expected 68 or 70.")
        face_arr = face_arr[:68]
    if pose_arr is None and face_arr is None:
        raise InputError(f"{path}: the chosen person has neither pose_keypoints_2d nor face_keypoints_2d.")
    frame = None
    if isinstance(data.get("canvas_width"), (int, float)) and isinstance(data.get("canvas_height"), (int, float)):
        frame = (int(data["canvas_height"]), int(data["canvas_width"]))
    present = np.concatenate([a[a[:, 2] > 0, :2] for a in (pose_arr, face_arr) if a is not None])
    normalized = bool(present.size) and float(np.abs(present).max()) <= 1.0
    return KeypointFile(pose=pose_arr, face=face_arr, frame=frame, normalized=normalized, messages=messages)


def read_keypoints(path: str | Path) -> KeypointFile:
    """Read any supported keypoint file, chosen by its name (.json or a _candidate/_subset .txt)."""
    text = str(path)
    if text.lower().endswith(".json"):
        return read_openpose_json(path)
    if text.lower().endswith(".txt"):
        return read_candidate_subset(path)
    raise InputError(f"{path}: keypoints must be OpenPose JSON (.json) or a DeepFashionHD "
                     "<name>_candidate.txt / <name>_subset.txt pair.")


def write_keypoints_json(path: str | Path, size: tuple[int, int], pose: np.ndarray | None = None,
                         face: np.ndarray | None = None) -> None:
    """Write OpenPose-style JSON for one person; ``size`` = (H, W) of the keypoints' frame."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    person: dict[str, list[float]] = {}
    if pose is not None:
        person["pose_keypoints_2d"] = _flatten(pose)
    if face is not None:
        pupils = np.zeros((2, 3))
        person["face_keypoints_2d"] = _flatten(np.concatenate([np.asarray(face, np.float64)[:68], pupils]))
    doc = {"version": 1.3, "generator": "warpaint", "canvas_height": int(size[0]), "canvas_width": int(size[1]),
           "people": [person]}
    try:
        path.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Cannot write {path}: {exc}.") from exc


def _flatten(points: np.ndarray) -> list[float]:
    arr = np.asarray(points, dtype=np.float64).copy()
    arr[arr[:, 2] <= 0] = 0.0  # OpenPose writes missing points as 0, 0, 0
    return [round(float(v), 3) for v in arr.reshape(-1)]
