"""Engine v2's speed settings (docs/engine.md, "Engine v2 speed (fifth session)"): one torch thread in
each of its two threads, heap pages reused for its temporaries, the exemplar background's completion
started as soon as the similarity is known, and the same pictures."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

import core.engine_v2 as engine_v2
from core.charts.folds import corner_determinants
from core.pipeline import Translator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """grace_hopper -> the astronaut cropped (a framing whose background must be completed)."""
    import matplotlib.cbook as cbook
    from PIL import Image

    grace = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    return grace, np.ascontiguousarray(data.astronaut()[40:, 60:])


def test_both_completions_run_with_one_torch_thread_and_the_caller_s_setting_comes_back(pair, monkeypatch):
    """The person's completion (this thread) and the exemplar background's (the thread beside) run with
    ``ENGINE_THREADS`` torch threads, whatever the caller set; the caller's setting is restored."""
    seen = []
    real = engine_v2.complete

    def spy(*args, **kwargs):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_v2, "complete", spy)
    caller = torch.get_num_threads()
    torch.set_num_threads(2)
    # a thread beside that starts during this call (it takes the setting in force when it starts)
    monkeypatch.setattr(engine_v2, "_BESIDE", ThreadPoolExecutor(1, thread_name_prefix="warpaint-completion"))
    try:
        Translator("face", engine="training-free").translate(*pair, resolution=256)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(caller)
    names = {name.split("_")[0] for name, _ in seen}
    assert names == {threading.current_thread().name, "warpaint-completion"}, names
    assert all(count == engine_v2.ENGINE_THREADS == 1 for _, count in seen), seen
    assert after == 2


def test_the_background_completion_starts_before_the_person_s_map_is_built(pair, monkeypatch):
    """The exemplar background's completion needs only the similarity: it is handed to the thread beside
    before the surround, the folds and the person's fill are computed (they run beside it)."""
    events = []
    real_submit, real_surround = engine_v2._BESIDE.submit, engine_v2.surround_map

    class Beside:
        def submit(self, *args):
            events.append("background")
            return real_submit(*args)

    def surround(*args, **kwargs):
        events.append("surround")
        return real_surround(*args, **kwargs)

    monkeypatch.setattr(engine_v2, "_BESIDE", Beside())
    monkeypatch.setattr(engine_v2, "surround_map", surround)
    Translator("face", engine="training-free").translate(*pair, resolution=256)
    assert events == ["background", "surround"]


def _earlier_entry() -> tuple:
    """A cached background of another exemplar (as another request on the same engine leaves it)."""
    return (type("Exemplar", (), {})(), None, None, None)


def test_a_background_job_given_up_leaves_the_engine_s_cache_as_it_was():
    """When the view changes after the job started (the exemplar shows the input's own scene), the job is
    given up: waited for, and the completed background it cached is forgotten (the exact view's job
    is completed afresh, not merged with the reframed view's); another exemplar's entry stays."""
    engine = engine_v2.TrainingFreeEngineV2()
    earlier = _earlier_entry()
    engine._backgrounds.put(earlier)
    hole = np.zeros((32, 32), bool)
    hole[8:24, 8:24] = True
    picture = np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)
    exemplar = type("Exemplar", (), {"task": "mask", "image": picture})()
    background = np.stack(np.mgrid[0:32, 0:32], -1).astype(np.float32)
    job = engine._background_job(exemplar, hole, background, np.zeros((32, 32), bool), whole_frame=False)
    covered, seen, fill = job.result()
    assert covered.sum() == hole.sum() and fill is not None and engine._backgrounds.get(exemplar)[3] is fill
    job.cancel()
    assert engine._backgrounds.get(exemplar) is None and engine._backgrounds.get(earlier[0]) is earlier


def test_a_failed_background_job_given_up_raises_nothing_and_restores_the_cache(monkeypatch):
    """A job given up is not wanted: if its completion failed, cancelling it neither raises that error at the
    caller (whose view has changed) nor leaves the engine's cache changed."""
    engine = engine_v2.TrainingFreeEngineV2()
    earlier = _earlier_entry()
    engine._backgrounds.put(earlier)
    exemplar = type("Exemplar", (), {"task": "mask", "image": np.zeros((32, 32, 3), np.uint8)})()

    def fails(*args, **kwargs):
        engine._backgrounds.put((exemplar, "half-done", None, None))
        raise RuntimeError("completion failed")

    monkeypatch.setattr(engine, "_completed_background", fails)
    hole = np.zeros((32, 32), bool)
    hole[8:24, 8:24] = True
    background = np.stack(np.mgrid[0:32, 0:32], -1).astype(np.float32)
    job = engine._background_job(exemplar, hole, background, np.zeros((32, 32), bool), whole_frame=False)
    job.cancel()
    assert engine._backgrounds.get(exemplar) is None and engine._backgrounds.get(earlier[0]) is earlier


def test_requests_at_once_on_one_engine_keep_each_other_s_completed_backgrounds(monkeypatch):
    """Two requests (threads) on one engine, each a clip of two frames with its own exemplar: each exemplar's
    background is completed once, its second frame reuses it although the other request cached one in
    between; a job given up in one request does not drop the other's entry."""
    engine = engine_v2.TrainingFreeEngineV2(completion_side=32)
    completed = []
    real_complete = engine_v2.complete

    def counted(picture, where, *args, **kwargs):
        completed.append(where is hole)
        return real_complete(picture, where, *args, **kwargs)

    monkeypatch.setattr(engine_v2, "complete", counted)
    hole = np.zeros((32, 32), bool)
    hole[8:24, 8:24] = True
    background = np.stack(np.mgrid[0:32, 0:32], -1).astype(np.float32)
    rng = np.random.default_rng(0)
    exemplars = [type("Exemplar", (), {"task": "mask", "image": rng.integers(0, 255, (32, 32, 3), np.uint8)})()
                 for _ in range(2)]
    between_frames, fills, errors = threading.Barrier(2, timeout=60), {}, []

    def clip(i: int) -> None:
        try:
            for frame in range(2):
                job = engine._background_job(exemplars[i], hole, background, np.zeros((32, 32), bool), False)
                fills[i, frame] = job.result()[2]
                between_frames.wait()  # both requests have cached their first frame's background
            engine._background_job(exemplars[i], ~hole, background, np.zeros((32, 32), bool), False).cancel()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=clip, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert completed.count(True) == 2  # once per exemplar (the jobs given up are over another hole)
    assert fills[0, 0] is fills[0, 1] and fills[1, 0] is fills[1, 1] and fills[0, 0] is not fills[1, 0]
    assert [engine._backgrounds.get(ex)[3] for ex in exemplars] == [fills[0, 0], fills[1, 0]]


def test_the_completed_backgrounds_are_a_small_lru():
    cache = engine_v2.CompletedBackgrounds(size=2)
    entries = [_earlier_entry() for _ in range(3)]
    cache.put(entries[0])
    cache.put(entries[1])
    assert cache.get(entries[0][0]) is entries[0]  # used last: kept
    cache.put(entries[2])
    assert [cache.get(e[0]) for e in entries] == [entries[0], None, entries[2]]
    cache.restore(entries[2][0], None)
    assert cache.get(entries[2][0]) is None and cache.get(entries[0][0]) is entries[0]


def _faults_probe():
    """Minor page faults of one 256 face translation with the default allocator mode, without and with the
    engine's heap scope (fresh process: no free heap chunk left by other tests serves the temporaries)."""
    import contextlib
    import resource

    import matplotlib.cbook as cbook
    from PIL import Image

    from core.environment import set_malloc

    assert set_malloc("default")
    grace = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    source, exemplar = grace, np.ascontiguousarray(data.astronaut()[40:, 60:])
    translator = Translator("face", engine="training-free")

    def faults() -> int:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        translator.translate(source, exemplar, resolution=256)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

    real = engine_v2.reuse_heap
    engine_v2.reuse_heap = contextlib.nullcontext  # without the scope first: afterwards the heap would serve
    faults()
    without = faults()
    engine_v2.reuse_heap = real
    scoped = faults()
    assert scoped < 0.5 * without, (scoped, without)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_the_engine_s_temporaries_reuse_heap_pages():
    """In the default allocator mode (every block >= 128 KiB its own mapping) each 512 translation's numpy
    temporaries were ~400 000 fresh pages (~0.8 s of system time); inside the engine's heap scope they
    reuse the heap's pages: under half the page faults (at 256: about a tenth)."""
    code = "import tests.test_engine_v2_speed as t; t._faults_probe(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_corner_determinants_are_each_cell_s_edge_cross_products():
    """The fold measure's four corner determinants, computed from shared neighbour differences, equal the
    cross products of each cell's own two edges at that corner."""
    rng = np.random.default_rng(0)
    positions = np.stack(np.mgrid[0:7, 0:9], -1) + rng.normal(0, 0.6, (7, 9, 2))
    got = corner_determinants(positions)
    for i in range(6):
        for j in range(8):
            p00, p01, p10, p11 = positions[i, j], positions[i, j + 1], positions[i + 1, j], positions[i + 1, j + 1]
            cross = [(down, across) for across in (p01 - p00, p11 - p10) for down in (p10 - p00, p11 - p01)]
            want = [down[0] * across[1] - across[0] * down[1] for down, across in cross]
            assert np.allclose(got[i, j], want, rtol=0, atol=1e-12), (i, j)


def test_a_background_job_given_up_stops_at_the_completion_s_next_pass(monkeypatch):
    """Giving a job up (the exemplar shows the input's own scene) tells its completion to stop: the round
    under way ends it, nothing is cached, and the caller waits for one round, not the whole completion."""
    import time

    import core.compose as compose

    engine = engine_v2.TrainingFreeEngineV2(completion_side=64)
    hole = np.zeros((64, 64), bool)
    hole[16:48, 16:48] = True
    picture = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    exemplar = type("Exemplar", (), {"task": "mask", "image": picture})()
    background = np.stack(np.mgrid[0:64, 0:64], -1).astype(np.float32)
    beyond = np.zeros((64, 64), bool)
    rounds, started, held = [], threading.Event(), {}
    real_fill = compose._fill

    def first_round_waits(*args):  # the watched job's first round holds on until it is given up (<= 5 s)
        rounds.append(1)
        if len(rounds) == 1 and "job" in held:
            started.set()
            end = time.monotonic() + 5
            while time.monotonic() < end and not (held["job"] is not None and held["job"].stop.is_set()):
                time.sleep(0.005)
        return real_fill(*args)

    monkeypatch.setattr(compose, "_fill", first_round_waits)
    full = engine._background_job(exemplar, hole, background, beyond, whole_frame=False)
    assert full.result()[2] is not None
    all_rounds = len(rounds)
    engine._backgrounds = engine_v2.CompletedBackgrounds()
    rounds.clear()
    held["job"] = None  # (set before the job's thread can reach its first round)
    held["job"] = job = engine._background_job(exemplar, hole, background, beyond, whole_frame=False)
    assert started.wait(5)
    job.cancel()
    assert len(rounds) == 1 < all_rounds and job.future.result() is None
    assert engine._backgrounds.get(exemplar) is None
