"""MediaPipe graphs built once per process and shared between threads.

Building a graph costs 50-200 ms and a graph is not safe to call from two threads at
once (Gradio serves requests from a thread pool), so each detector is created lazily,
cached, and every call to it holds that detector's own lock. Only models bundled in the
mediapipe 0.10.21 wheel are used: nothing is downloaded.

MediaPipe's C++ side prints a few fixed notices while a graph is built and runs its first
pictures (until one in which it finds something); ``notices.notices_dropped`` keeps them out of
the log and writes every other line as it comes. Each graph is built under its own lock: one
detector's build or first run never waits for another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from core.conditions.notices import notices_dropped
from core.errors import WarpaintError

_registry_lock = threading.Lock()  # held for dictionary look-ups only, never over a build or a run
_detectors: dict[str, tuple[Any, threading.Lock]] = {}
_builds: dict[str, threading.Lock] = {}  # one per detector: a graph is built once, others' builds go on
_warmed: set[str] = set()  # detectors that have found something once: later calls print nothing


def _solutions() -> Any:
    try:
        from mediapipe.python import solutions
    except Exception as exc:  # pragma: no cover - depends on the install
        raise WarpaintError(
            "MediaPipe is not usable here (pip install mediapipe==0.10.21, which needs numpy<2): "
            f"{exc}") from exc
    return solutions


def _factories() -> dict[str, Callable[[], Any]]:
    s = _solutions()
    return {
        # model_complexity=1 is the only Pose model shipped inside the wheel.
        # Its body segmentation (nearly free beside the landmarks) leaves out what the person holds.
        "pose": lambda: s.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                    min_detection_confidence=0.5),
        # refine_landmarks: 478 points (the 468 + 2 x 5 iris points), eyes and lips refined.
        "face_mesh": lambda: s.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                  refine_landmarks=True, min_detection_confidence=0.5),
        # model 1 = full range: also finds small faces in wide shots; model 0 = close-ups.
        "face_detection_far": lambda: s.face_detection.FaceDetection(model_selection=1,
                                                                     min_detection_confidence=0.5),
        "face_detection_near": lambda: s.face_detection.FaceDetection(model_selection=0,
                                                                      min_detection_confidence=0.5),
        # The 468-point landmark model alone on a picture that is already the face's crop: no face
        # detector and no presence gate in front of it (painted faces, see face_detect).
        "face_landmark_model": _landmark_model,
        "selfie": lambda: s.selfie_segmentation.SelfieSegmentation(model_selection=0),
        # Holistic: used for its two 21-point hands (body charts); its pose model is the same as "pose".
        "holistic": lambda: s.holistic.Holistic(static_image_mode=True, model_complexity=1,
                                                refine_face_landmarks=False, min_detection_confidence=0.5),
    }


LANDMARK_MODEL_GRAPH = """
input_stream: "image"
output_stream: "points"
output_stream: "presence"
node { calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:input"
  options { [mediapipe.ImageToTensorCalculatorOptions.ext] { output_tensor_width: 192 output_tensor_height: 192
    keep_aspect_ratio: false output_tensor_float_range { min: 0.0 max: 1.0 } } } }
node { calculator: "InferenceCalculator" input_stream: "TENSORS:input" output_stream: "TENSORS:output"
  options { [mediapipe.InferenceCalculatorOptions.ext] {
    model_path: "mediapipe/modules/face_landmark/face_landmark.tflite" delegate { xnnpack {} } } } }
node { calculator: "SplitTensorVectorCalculator" input_stream: "output" output_stream: "points_tensor"
  output_stream: "presence_tensor"
  options { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges { begin: 0 end: 1 } ranges { begin: 1 end: 2 } } } }
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:points_tensor" output_stream: "FLOATS:points" }
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:presence_tensor"
  output_stream: "FLOATS:presence" }
"""


def _landmark_model() -> Any:
    """FaceMesh's bundled landmark model (192 x 192 in; 468 x, y, z in input pixels and a presence logit out)."""
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2
    from mediapipe.python.solution_base import SolutionBase

    config = text_format.Parse(LANDMARK_MODEL_GRAPH, calculator_pb2.CalculatorGraphConfig())
    return SolutionBase(graph_config=config, outputs=["points", "presence"])


def _get(name: str) -> tuple[Any, threading.Lock]:
    with _registry_lock:
        if name in _detectors:
            return _detectors[name]
        build = _builds.setdefault(name, threading.Lock())
    with build:  # the first caller builds; callers of the same detector wait for it, others do not
        with _registry_lock:
            if name in _detectors:
                return _detectors[name]
        made = (_factories()[name](), threading.Lock())
        with _registry_lock:
            _detectors[name] = made
        return made


PERSON_THRESHOLD = 0.5  # the selfie model's person probability from which a pixel is the person's


def person_mask(photo: np.ndarray) -> np.ndarray:
    """(H, W) bool person silhouette of an RGB photo (MediaPipe selfie segmentation; all False without a mask)."""
    seg = run("selfie", photo).segmentation_mask
    return np.asarray(seg) > PERSON_THRESHOLD if seg is not None else np.zeros(photo.shape[:2], bool)


def run(name: str, image: np.ndarray) -> Any:
    """Run the cached detector ``name`` on an (H, W, 3) uint8 RGB picture and return its result."""
    picture = np.ascontiguousarray(image)
    if name in _warmed:
        detector, lock = _get(name)
        with lock:
            return detector.process(picture)
    # A graph's build and first runs print (its worker threads too, just after the build returns): one capture
    # over both, so nothing falls between two.
    with notices_dropped():
        detector, lock = _get(name)
        with lock:
            result = detector.process(picture)
    if _found_something(result):
        _warmed.add(name)
    return result


def _found_something(result: Any) -> bool:
    """Whether a run went down the whole graph: face mesh prints its NORM_RECT notice the first time it finds
    a face, not at its first run (measured on noise, then photos, for every detector above)."""
    fields = getattr(result, "_fields", None)  # mediapipe's SolutionOutputs: one field per output stream
    return fields is None or any(getattr(result, field) is not None for field in fields)
