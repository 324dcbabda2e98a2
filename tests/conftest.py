"""Shared test set-up: make the repo importable, keep torch to the machine's cores."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Sleeping (not spinning) OpenMP workers: tests share 2 cores with MediaPipe and app subprocesses.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def one_thread():
    """One torch thread for tiny-model tests: faster than two on a shared 2-core machine, and
    repeatable (bit-exact resume checks depend on it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
