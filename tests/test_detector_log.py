"""MediaPipe's unasked C++ notices stay out of the app's and the CLI's log; every other line still shows, a
native crash's last words included; one detector's build or first run does not hold up another's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core.conditions import detectors, notices

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


@pytest.fixture
def fresh_registry(monkeypatch):
    """An empty detector registry; ``factories`` (name -> maker) stand in for MediaPipe's graphs."""
    factories: dict = {}
    monkeypatch.setattr(detectors, "_factories", lambda: factories)
    monkeypatch.setattr(detectors, "_detectors", {})
    monkeypatch.setattr(detectors, "_builds", {}, raising=False)
    monkeypatch.setattr(detectors, "_warmed", set())
    return factories


def test_only_the_known_notices_are_dropped_and_real_errors_still_show(fresh_registry, capfd):
    fresh_registry["chatty"] = _ChattyGraph
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
    assert notices.MEDIAPIPE_NOTICES.fullmatch(line)
    assert not notices.MEDIAPIPE_NOTICES.fullmatch(line.replace(b"W0000", b"E0000"))  # an error is kept
    assert not notices.MEDIAPIPE_NOTICES.fullmatch(b"F0000 00:00:1.5 1 other.cc:1] " + line[40:])


def test_a_native_crash_during_a_captured_run_still_shows_its_last_words():
    """A graph's first run (captured) prints an error and a line without its newline, then the process dies
    (abort, as a failed C++ check does): both reach the real stderr, with faulthandler's traceback; the notice
    before them does not."""
    script = ("import os, numpy as np\n"
              "from core.conditions import detectors\n"
              "class Crashing:\n"
              "    def process(self, image):\n"
              f"        os.write(2, {_ChattyGraph.LINES.splitlines(keepends=True)[0]!r})\n"
              "        os.write(2, b'F0000 00:00:1.5 1 graph.cc:1] Check failed: the last words\\n')\n"
              "        os.write(2, b'*** and no newline')\n"
              "        os.abort()\n"
              "detectors._factories = lambda: {'crashing': Crashing}\n"
              "detectors.run('crashing', np.zeros((4, 4, 3), np.uint8))\n")
    run = subprocess.run([sys.executable, "-X", "faulthandler", "-c", script], cwd=ROOT, capture_output=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == -signal.SIGABRT, run.stderr.decode()[-2000:]
    assert b"Check failed: the last words\n" in run.stderr and b"*** and no newline" in run.stderr
    assert b"Fatal Python error: Aborted" in run.stderr and b"Feedback manager" not in run.stderr


class _Gate:
    """A stand-in graph whose building (``at="build"``) or first run (``at="run"``) waits until it is opened."""

    def __init__(self, at: str):
        self.at, self.entered, self.opened = at, threading.Event(), threading.Event()

    def maker(self):
        if self.at == "build":
            self._wait()
        return self

    def process(self, image):
        if self.at == "run":
            self._wait()
        return "found"

    def _wait(self):
        self.entered.set()
        assert self.opened.wait(30)


@pytest.mark.parametrize("at", ["build", "run"])
def test_one_detector_s_build_or_first_run_does_not_hold_up_another_s_build(fresh_registry, at):
    """While one detector is being built or runs its first (captured) picture, another is built and run in a
    second thread; once the first goes on, both are done and fd 2 is the real stderr again."""
    slow, quick = _Gate(at), _Gate("never")
    fresh_registry.update(slow=slow.maker, quick=quick.maker)
    picture, results, before = np.zeros((4, 4, 3), np.uint8), {}, os.fstat(2)
    first = threading.Thread(target=lambda: results.setdefault("slow", detectors.run("slow", picture)))
    first.start()
    try:
        assert slow.entered.wait(30)
        second = threading.Thread(target=lambda: results.setdefault("quick", detectors.run("quick", picture)))
        second.start()
        second.join(10)
        assert results.get("quick") == "found", "the second detector waited for the first"
    finally:
        slow.opened.set()
        first.join(30)
    assert results == {"slow": "found", "quick": "found"} and "slow" in detectors._warmed
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_a_detector_is_built_once_when_two_threads_ask_for_it_at_once(fresh_registry):
    made = []
    gate = _Gate("build")
    fresh_registry["shared"] = lambda: made.append(1) or gate.maker()
    got = []
    threads = [threading.Thread(target=lambda: got.append(detectors._get("shared"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert gate.entered.wait(30)
    gate.opened.set()
    for thread in threads:
        thread.join(30)
    assert len(made) == 1 and len(got) == 2 and got[0] is got[1]


def test_a_filter_that_died_is_started_again(fresh_registry, capfd):
    """The child that writes the captured lines was killed: the next capture starts a new one, nothing is lost."""
    fresh_registry.update(first=_ChattyGraph, second=_ChattyGraph)
    picture = np.zeros((4, 4, 3), np.uint8)
    detectors.run("first", picture)
    capfd.readouterr()
    notices._filter.child.kill()
    notices._filter.child.wait()
    detectors.run("second", picture)
    err = capfd.readouterr().err
    assert "INTERNAL: a real failure" in err and "Feedback manager" not in err


@pytest.fixture
def new_filter():
    """The next capture starts a new filter child (its pipes get the lowest free fds at that moment)."""
    def drop():
        with notices._lock:
            if notices._filter is not None:
                notices._filter.close()
                notices._filter = None
    drop()
    yield
    drop()


def test_a_capture_works_with_fds_from_1024_up(fresh_registry, capfd, new_filter):
    """select.select refused fds from 1024 up (ValueError, and the detector was then never warmed: every later
    run raised too); with more than 1024 files open the filter's pipes are above that and a capture works."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"the hard limit on open files ({hard}) is under the 1,200 this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    opened = []
    try:
        while not opened or opened[-1] < 1100:  # fills every gap below, so the filter's pipes come above 1100
            opened.append(os.open(os.devnull, os.O_RDONLY))
        fresh_registry["chatty"] = _ChattyGraph
        assert detectors.run("chatty", np.zeros((4, 4, 3), np.uint8)) == (4, 4, 3)
        assert notices._filter.acks > 1024 and "chatty" in detectors._warmed
    finally:
        for fd in opened:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    err = capfd.readouterr().err
    assert "INTERNAL: a real failure" in err and "Feedback manager" not in err


@pytest.mark.parametrize("how", ["not a python", "frozen"])
def test_no_filter_that_cannot_run_is_used(fresh_registry, capfd, new_filter, monkeypatch, how):
    """sys.executable is not a Python (an embedded interpreter: /bin/false stands for it), or the app is frozen
    (its sys.executable is the app): nothing is captured, so a real error line still shows (it was lost)."""
    if how == "frozen":
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    else:
        monkeypatch.setattr(sys, "executable", "/bin/false")
    began = notices._begin()
    if began:
        notices._end()
    assert not began
    fresh_registry["chatty"] = _ChattyGraph
    detectors.run("chatty", np.zeros((4, 4, 3), np.uint8))
    assert notices._filter is None and "INTERNAL: a real failure" in capfd.readouterr().err


def test_a_filter_that_dies_during_a_capture_loses_no_line_and_breaks_no_write(capfd, new_filter):
    """The child dies in the middle of a capture: the lines written after its death, from this thread and another,
    reach stderr, more than a pipe holds too (Python's writes raised BrokenPipeError, the C++ side's were lost),
    and fd 2 is the real stderr again."""
    before = os.fstat(2)
    with notices.notices_dropped():
        os.write(2, b"E0000 before the death\n")
        assert notices._filter.sync()  # written by the child (what it has read but not yet written dies with it)
        notices._filter.child.kill()
        notices._filter.child.wait()
        os.write(2, b"E0000 just after the death\n")
        worker = threading.Thread(target=lambda: print("a Python line from another thread", file=sys.stderr))
        worker.start()
        worker.join()
        sys.stderr.flush()
        flood = threading.Thread(target=os.write, args=(2, b"E0000 one of many lines\n" * 10_000))
        flood.start()  # more than a pipe holds: it waited for the capture's end, here in this very thread
        flood.join(20)
        assert not flood.is_alive(), "a write after the child's death waits for the capture's end"
        print("the capturing thread's own line", file=sys.stderr)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    err = capfd.readouterr().err
    for line in ("before the death", "just after the death", "from another thread", "capturing thread's own"):
        assert line in err, err


def test_a_fork_while_the_lock_is_held_does_not_hang_the_forked_process(capfd, new_filter):
    """ZeroGPU runs spaces.GPU work in a forked process: a fork while another thread held the lock (here: during
    a capture, with the lock held) left the forked process blocked on its first capture. It now has its real
    fd 2 back and captures with a filter of its own."""
    import time
    import warnings
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork here")
    real = os.fstat(2)
    with notices.notices_dropped():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "use of fork() may lead to deadlocks"
            with notices._lock:
                pid = os.fork()
        if pid == 0:
            code = 1
            try:
                now = os.fstat(2)
                assert (now.st_dev, now.st_ino) == (real.st_dev, real.st_ino)
                with notices.notices_dropped():
                    os.write(2, _ChattyGraph.LINES)
                code = 0 if notices._filter is not None and notices._filter.child.poll() is None else 2
            finally:
                os._exit(code)
    deadline, status = time.monotonic() + 20, None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked process hung on its first capture")
    assert os.waitstatus_to_exitcode(status) == 0
    err = capfd.readouterr().err
    assert "INTERNAL: a real failure" in err and "Feedback manager" not in err
