"""MediaPipe graphs built once per process and shared between threads.

Building a graph costs 50-200 ms and a graph is not safe to call from two threads at
once (Gradio serves requests from a thread pool), so each detector is created lazily,
cached, and every call to it holds that detector's own lock. Only models bundled in the
mediapipe 0.10.21 wheel are used: nothing is downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from core.errors import WarpaintError

_registry_lock = threading.Lock()
_detectors: dict[str, tuple[Any, threading.Lock]] = {}


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
        "selfie": lambda: s.selfie_segmentation.SelfieSegmentation(model_selection=0),
        # Holistic: used for its two 21-point hands (body charts); its pose model is the same as "pose".
        "holistic": lambda: s.holistic.Holistic(static_image_mode=True, model_complexity=1,
                                                refine_face_landmarks=False, min_detection_confidence=0.5),
    }


def _get(name: str) -> tuple[Any, threading.Lock]:
    with _registry_lock:
        if name not in _detectors:
            _detectors[name] = (_factories()[name](), threading.Lock())
        return _detectors[name]


def run(name: str, image: np.ndarray) -> Any:
    """Run the cached detector ``name`` on an (H, W, 3) uint8 RGB picture and return its result."""
    detector, lock = _get(name)
    with lock:
        return detector.process(np.ascontiguousarray(image))
