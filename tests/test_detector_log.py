"""MediaPipe's unasked C++ notices stay out of the app's and the CLI's log; every other line still shows."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core.conditions import detectors

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

NOTICES = (b"XNNPACK delegate", b"absl::InitializeLog", b"Feedback manager", b"NORM_RECT")


def test_extracting_prints_none_of_mediapipes_notices():
    """A fresh process looks for a face in noise first (face mesh prints its notice only once it finds a face),
    then extracts a face and a pose (six graphs built): its stderr is free of the notices."""
    script = ("import numpy as np; from PIL import Image; from core.conditions import extract\n"
              f"photo = np.asarray(Image.open({str(ASSETS / 'grace_hopper.jpg')!r}).convert('RGB'))\n"
              "noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)\n"
              "try: extract('face', noise, (256, 256))\n"
              "except Exception as exc: print(type(exc).__name__)\n"
              "for task in ('face', 'pose', 'face'): extract(task, photo, (256, 256))\n"
              "print('done')\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0 and run.stdout.split() == [b"NoSubjectError", b"done"], run.stderr.decode()[-2000:]
    assert not [n for n in NOTICES if n in run.stderr], run.stderr.decode()[-2000:]


class _ChattyGraph:
    """Stands in for a MediaPipe graph: its worker thread writes to fd 2 as the C++ side does."""

    LINES = (b"W0000 00:00:1796081262.657093   17819 inference_feedback_manager.cc:114] Feedback manager "
             b"requires a model with a single signature inference. Disabling support for feedback tensors.\n"
             b"E0000 00:00:1796081262.700000   17819 calculator_graph.cc:887] INTERNAL: a real failure\n"
             b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")

    def process(self, image):
        worker = threading.Thread(target=os.write, args=(2, self.LINES))
        worker.start()
        worker.join()
        print("a Python warning from the same moments", file=sys.stderr)
        return image.shape


def test_only_the_known_notices_are_dropped_and_real_errors_still_show(monkeypatch, capfd):
    monkeypatch.setattr(detectors, "_factories", lambda: {"chatty": _ChattyGraph})
    monkeypatch.setattr(detectors, "_detectors", {})
    monkeypatch.setattr(detectors, "_warmed", set())
    picture = np.zeros((4, 4, 3), np.uint8)
    assert detectors.run("chatty", picture) == (4, 4, 3)
    err = capfd.readouterr().err
    assert "INTERNAL: a real failure" in err and "a Python warning from the same moments" in err
    assert "Feedback manager" not in err and "XNNPACK" not in err
    detectors.run("chatty", picture)  # later runs are not captured at all: everything shows as written
    assert "Feedback manager" in capfd.readouterr().err


@pytest.mark.parametrize("line", [
    b"W0000 00:00:1.5   12 inference_feedback_manager.cc:114] Feedback manager requires a model with a single "
    b"signature inference. Disabling support for feedback tensors.",
    b"W0000 00:00:1796081262.835325   17824 landmark_projection_calculator.cc:186] Using NORM_RECT without "
    b"IMAGE_DIMENSIONS is only supported for the square ROI. Provide IMAGE_DIMENSIONS or use PROJECTION_MATRIX.",
])
def test_the_notice_pattern_is_exact(line):
    assert detectors.MEDIAPIPE_NOTICES.fullmatch(line)
    assert not detectors.MEDIAPIPE_NOTICES.fullmatch(line.replace(b"W0000", b"E0000"))  # an error is kept
    assert not detectors.MEDIAPIPE_NOTICES.fullmatch(b"F0000 00:00:1.5 1 other.cc:1] " + line[40:])
