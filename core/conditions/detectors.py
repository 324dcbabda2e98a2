"""MediaPipe graphs built once per process and shared between threads.

Building a graph costs 50-200 ms and a graph is not safe to call from two threads at
once (Gradio serves requests from a thread pool), so each detector is created lazily,
cached, and every call to it holds that detector's own lock. Only models bundled in the
mediapipe 0.10.21 wheel are used: nothing is downloaded.

MediaPipe's C++ side writes a few fixed notices straight to the process's stderr (file
descriptor 2, before absl logging is set up, so GLOG_minloglevel cannot silence them) while
a graph is built and runs its first pictures (until one in which it finds something):
``_mediapipe_notices_dropped`` captures fd 2 over those moments only and writes back every
line but those notices.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from core.errors import WarpaintError

_registry_lock = threading.Lock()
_detectors: dict[str, tuple[Any, threading.Lock]] = {}
_warmed: set[str] = set()  # detectors that have found something once: later calls print nothing
_capture_lock = threading.Lock()  # fd 2 is one per process: one capture at a time

# What mediapipe 0.10.21 prints, unasked, for every graph it builds (measured: one XNNPACK line
# and the absl line per process, one or more "Feedback manager" lines per graph, one NORM_RECT
# line for face mesh). Anything else, warnings and errors included, is written back.
MEDIAPIPE_NOTICES = re.compile(
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|W\d{4} [\d:. ]+ \d+ (?:inference_feedback_manager\.cc:\d+\] Feedback manager requires a model with a "
    rb"single signature inference\.|landmark_projection_calculator\.cc:\d+\] Using NORM_RECT without "
    rb"IMAGE_DIMENSIONS is only supported for the square ROI\.).*")


@contextmanager
def _mediapipe_notices_dropped() -> Iterator[None]:
    """Capture fd 2 (C++ and Python writes alike, from every thread) while the body runs, then write
    back every captured line except MediaPipe's known notices: nothing else is hidden, only delayed."""
    with _capture_lock, tempfile.TemporaryFile() as capture:
        if sys.stderr:
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to tidy
            yield
            return
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            if sys.stderr:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True)
                    if not MEDIAPIPE_NOTICES.fullmatch(line.rstrip(b"\r\n"))]
            if kept:
                os.write(2, b"".join(kept))


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
        if name not in _detectors:
            with _mediapipe_notices_dropped():
                _detectors[name] = (_factories()[name](), threading.Lock())
        return _detectors[name]


PERSON_THRESHOLD = 0.5  # the selfie model's person probability from which a pixel is the person's


def person_mask(photo: np.ndarray) -> np.ndarray:
    """(H, W) bool person silhouette of an RGB photo (MediaPipe selfie segmentation; all False without a mask)."""
    seg = run("selfie", photo).segmentation_mask
    return np.asarray(seg) > PERSON_THRESHOLD if seg is not None else np.zeros(photo.shape[:2], bool)


def run(name: str, image: np.ndarray) -> Any:
    """Run the cached detector ``name`` on an (H, W, 3) uint8 RGB picture and return its result."""
    detector, lock = _get(name)
    with lock:
        if name in _warmed:
            return detector.process(np.ascontiguousarray(image))
        with _mediapipe_notices_dropped():  # a graph's first runs open its calculators, which print
            result = detector.process(np.ascontiguousarray(image))
        if _found_something(result):
            _warmed.add(name)
        return result


def _found_something(result: Any) -> bool:
    """Whether a run went down the whole graph: face mesh prints its NORM_RECT notice the first time it finds
    a face, not at its first run (measured on noise, then photos, for every detector above)."""
    fields = getattr(result, "_fields", None)  # mediapipe's SolutionOutputs: one field per output stream
    return fields is None or any(getattr(result, field) is not None for field in fields)
