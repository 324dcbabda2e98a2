"""MediaPipe's unasked C++ notices kept out of the process's stderr, and nothing else.

MediaPipe writes a few fixed notices straight to file descriptor 2 (before absl logging is set
up, so GLOG_minloglevel cannot silence them) while a graph is built and runs its first pictures.
``notices_dropped`` points fd 2 at a pipe over those moments. A small child process reads the
pipe and writes every line but those notices to the stderr it was started with, as the lines
arrive: what a native crash prints just before the process dies is still in the pipe, and the
child writes it out when the pipe closes. Captures may overlap (fd 2 stays on the pipe until
the last one ends), so one detector's capture never waits for another's. No capture without a child
that answered; if the child dies during one, fd 2 is given back at once and what it left in the pipe
is written (what it had read but not written is lost). A forked process starts its own child.
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
    """The child process with its pipes: ``into`` (what fd 2 points at during captures), its read end (kept here
    too, so a write to fd 2 after the child died waits in the pipe instead of failing), ``acks``."""

    def __init__(self):
        self.target = _identity(2)  # where the child writes: fd 2 as it is now (pytest swaps it per test)
        self.marker = b"warpaint-stderr-sync-" + secrets.token_hex(8).encode()
        self.closing = False
        self.out, self.into = os.pipe()
        self.acks, ack_end = os.pipe()
        try:
            self.child = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _CHILD, MEDIAPIPE_NOTICES.pattern.decode(), self.marker.decode()],
                stdin=self.out, stdout=ack_end, start_new_session=True)  # Ctrl+C stops the app, not its log
        except BaseException:
            self.close_fds()
            raise
        finally:
            os.close(ack_end)
        if not self.sync():  # sys.executable is no Python (an embedded interpreter), or the child failed at once
            self.close()
            raise OSError(f"the stderr filter ({sys.executable}) did not start")
        threading.Thread(target=self._watch, name="stderr-filter-watch", daemon=True).start()

    def alive_for_current_stderr(self) -> bool:
        return self.child.poll() is None and self.target == _identity(2)

    def sync(self) -> bool:
        """Wait until the child has written everything sent before now; False if it does not answer."""
        try:
            os.write(self.into, self.marker + b"\n")
            poller = select.poll()  # not select.select: it refuses fds from 1024 up
            poller.register(self.acks, select.POLLIN)
            return bool(poller.poll(SYNC_SECONDS * 1000)) and os.read(self.acks, 1) == b"k"
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        """End the child once it has written what it holds (the pipe closes; it drains it and exits); what a dead
        child left in the pipe is written here (to fd 2, which the caller has given back)."""
        self.closing = True
        os.close(self.into)
        try:
            self.child.wait(SYNC_SECONDS)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        self._drain()
        os.close(self.out)
        os.close(self.acks)

    def close_fds(self) -> None:
        """Close this process's ends only (a forked process: the child is its parent's to end)."""
        self.closing = True
        for fd in (self.into, self.out, self.acks):
            try:
                os.close(fd)
            except OSError:
                pass

    def _drain(self) -> None:
        """Write to fd 2 what is still in the pipe (the child is gone), less the notices and the markers."""
        left = b""
        poller = select.poll()
        poller.register(self.out, select.POLLIN)
        try:
            while poller.poll(0) and (chunk := os.read(self.out, 65536)):
                left += chunk
            lines = left.replace(self.marker + b"\n", b"").splitlines(keepends=True)
            kept = b"".join(line for line in lines if not MEDIAPIPE_NOTICES.fullmatch(line.rstrip(b"\r\n")))
            while kept:
                kept = kept[os.write(2, kept):]
        except OSError:
            pass

    def _watch(self) -> None:
        """The child died during a capture: give fd 2 back at once (the rest of the capture is not filtered) and
        write what the child left unread, so nothing waits on a full pipe or is lost."""
        global _filter, _saved
        self.child.wait()
        with _lock:
            if self.closing or _filter is not self:
                return
            if _saved is not None:
                if sys.stderr:
                    try:
                        sys.stderr.flush()
                    except (OSError, ValueError):
                        pass
                os.dup2(_saved, 2)
                os.close(_saved)
                _saved = None
            self.close()
            _filter = None


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


# Guards the fields below. Held while a capture begins or ends (the first begin starts the child and waits for
# its answer, the last end waits for the child's sync: up to SYNC_SECONDS each), never over a capture's body.
_lock = threading.Lock()
_filter: _Filter | None = None
_active = 0  # captures under way (fd 2 points at the pipe while this is above 0 and _saved is set)
_saved: int | None = None  # the real fd 2, while redirected


def _after_fork_in_child() -> None:
    """A forked process (ZeroGPU runs ``spaces.GPU`` work in one) gets a lock of its own (the parent's may have
    been held by a thread that does not exist here), its real fd 2 back, and no filter (the child is the
    parent's: its fds are closed here, it is not waited for); its first capture starts its own filter."""
    global _lock, _filter, _active, _saved
    _lock = threading.Lock()
    if _saved is not None:
        os.dup2(_saved, 2)
        os.close(_saved)
    if _filter is not None:
        _filter.close_fds()
    _filter, _active, _saved = None, 0, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _begin() -> bool:
    """Point fd 2 at the filter (the first capture); False when there is nothing to capture or no filter."""
    global _filter, _active, _saved
    with _lock:
        if _active == 0:
            if (os.name != "posix" or _identity(2) is None or not sys.executable
                    or getattr(sys, "frozen", False)):  # a frozen app's sys.executable is the app, not a Python
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
        if _active == 0:
            return  # begun before a fork, ended in the forked process: nothing is redirected here
        _active -= 1
        if _active or _saved is None:
            return
        if sys.stderr:
            sys.stderr.flush()
        # Sync before fd 2 is given back: every line written before this end is out before any written after it.
        synced = _filter is not None and _filter.sync()
        os.dup2(_saved, 2)
        os.close(_saved)
        _saved = None
        if _filter is not None and not synced:  # the child died or hangs: start a new one next time
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
