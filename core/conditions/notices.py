"""MediaPipe's unasked C++ notices kept out of the process's stderr, and nothing else.

MediaPipe writes a few fixed notices straight to file descriptor 2 (before absl logging is set
up, so GLOG_minloglevel cannot silence them) while a graph is built and runs its first pictures.
``notices_dropped`` points fd 2 at a pipe over those moments. A small child process reads the
pipe and writes every line but those notices to the stderr it was started with, as the lines
arrive: what a native crash prints just before the process dies is still in the pipe, and the
child writes it out when the pipe closes. Captures may overlap (fd 2 stays on the pipe until
the last one ends), so one detector's capture never waits for another's.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# What mediapipe 0.10.21 prints, unasked, for every graph it builds (measured: one XNNPACK line
# and the absl line per process, one or more "Feedback manager" lines per graph, one NORM_RECT
# line for face mesh). Anything else, warnings and errors included, is written back.
MEDIAPIPE_NOTICES = re.compile(
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|W\d{4} [\d:. ]+ \d+ (?:inference_feedback_manager\.cc:\d+\] Feedback manager requires a model with a "
    rb"single signature inference\.|landmark_projection_calculator\.cc:\d+\] Using NORM_RECT without "
    rb"IMAGE_DIMENSIONS is only supported for the square ROI\.).*")

SYNC_SECONDS = 5.0  # the longest a capture's end waits for the child to have written everything before it

# The child: argv = the notices' pattern, the end-of-capture marker. It answers each marker on stdout
# once every line before it is written; it ends when the pipe closes (the parent ended, even by a crash).
_CHILD = r"""
import os, re, sys
notices, marker = re.compile(os.fsencode(sys.argv[1])), os.fsencode(sys.argv[2])
for line in sys.stdin.buffer:
    synced = line.endswith(marker + b"\n")
    text = line[:-len(marker) - 1] if synced else line
    if text and not notices.fullmatch(text.rstrip(b"\r\n")):
        os.write(2, text)
    if synced:
        os.write(1, b"k")
"""


class _Filter:
    """The child process with its two pipes: ``into`` (what fd 2 points at during captures), ``acks``."""

    def __init__(self):
        self.target = _identity(2)  # where the child writes: fd 2 as it is now (pytest swaps it per test)
        self.marker = b"warpaint-stderr-sync-" + secrets.token_hex(8).encode()
        read_end, self.into = os.pipe()
        self.acks, ack_end = os.pipe()
        try:
            self.child = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _CHILD, MEDIAPIPE_NOTICES.pattern.decode(), self.marker.decode()],
                stdin=read_end, stdout=ack_end, start_new_session=True)  # Ctrl+C stops the app, not its log
        except BaseException:
            for fd in (self.into, self.acks):
                os.close(fd)
            raise
        finally:
            os.close(read_end)
            os.close(ack_end)

    def alive_for_current_stderr(self) -> bool:
        return self.child.poll() is None and self.target == _identity(2)

    def sync(self) -> bool:
        """Wait until the child has written everything sent before now; False if it does not answer."""
        try:
            os.write(self.into, self.marker + b"\n")
            ready, _, _ = select.select([self.acks], [], [], SYNC_SECONDS)
            return bool(ready) and os.read(self.acks, 1) == b"k"
        except OSError:
            return False

    def close(self) -> None:
        """End the child once it has written what it holds (the pipe closes; it drains it and exits)."""
        os.close(self.into)
        try:
            self.child.wait(SYNC_SECONDS)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        os.close(self.acks)


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


_lock = threading.Lock()  # guards the fields below; held only for a few system calls, never over a capture
_filter: _Filter | None = None
_active = 0  # captures under way (fd 2 points at the pipe while this is above 0)
_saved: int | None = None  # the real fd 2, while redirected


def _begin() -> bool:
    """Point fd 2 at the filter (the first capture); False when there is nothing to capture or no filter."""
    global _filter, _active, _saved
    with _lock:
        if _active == 0:
            if os.name != "posix" or _identity(2) is None or not sys.executable:
                return False  # no stderr at all, or no way to filter it: everything shows as written
            if _filter is not None and not _filter.alive_for_current_stderr():
                _filter.close()
                _filter = None
            if _filter is None:
                try:
                    _filter = _Filter()
                except (OSError, subprocess.SubprocessError):
                    return False
            if sys.stderr:
                sys.stderr.flush()
            _saved = os.dup(2)
            os.dup2(_filter.into, 2)
        _active += 1
        return True


def _end() -> None:
    """Give fd 2 back (the last capture) once the child has written every line captured."""
    global _filter, _active, _saved
    with _lock:
        _active -= 1
        if _active or _saved is None:
            return
        if sys.stderr:
            sys.stderr.flush()
        os.dup2(_saved, 2)
        os.close(_saved)
        _saved = None
        if _filter is not None and not _filter.sync():  # the child died or hangs: start a new one next time
            _filter.close()
            _filter = None


@atexit.register
def _shutdown() -> None:
    """At exit: the child writes what it still holds and ends (no child left running)."""
    global _filter
    with _lock:
        if _filter is not None and _active == 0:
            _filter.close()
            _filter = None


@contextmanager
def notices_dropped() -> Iterator[None]:
    """fd 2 (C++ and Python writes alike, from every thread) goes through the filter while the body runs:
    MediaPipe's known notices are dropped, every other line is written as it comes."""
    if not _begin():
        yield
        return
    try:
        yield
    finally:
        _end()
