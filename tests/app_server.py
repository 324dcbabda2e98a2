"""Start the real app (``python app.py``) in a child process on a free port: for the app tests and
``benchmarks/app_bench.py`` (a harness, so it lives outside the app package)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_app(workdir: str | Path, env: dict[str, str] | None = None, timeout: float = 180.0) -> Iterator[str]:
    """Serve the app from ``workdir`` (its temporary folder and log) and yield its URL; stop it afterwards."""
    workdir = Path(workdir)
    (workdir / "temp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    child_env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                 "GRADIO_TEMP_DIR": str(workdir / "temp"), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    url = f"http://127.0.0.1:{port}/"
    log_path = workdir / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=child_env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            _wait_until_serving(url, proc, log_path, timeout)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def _wait_until_serving(url: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the app did not answer on {url} within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
