"""Golden outputs of the training-free engine: a refactor must not move them.

The reference (tests/golden/training_free.npz) pins engine v1 (``version=1``; v2 has its own tests,
tests/test_engine_v2.py). It was written by this test from the code before the
engine protocol refactor (issue 12). A change that is meant to change the output (a new engine)
rewrites it on purpose:  WARPAINT_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage.data

from core.imageio import load_image

GOLDEN = Path(__file__).parent / "golden" / "training_free.npz"
CASES = {  # name -> (task, input photo, exemplar photo, seed)
    "pose": ("pose", "hopper", "astronaut", 3),
    "face": ("face", "astronaut", "hopper", 1),
}
SIZE = 128


@pytest.fixture(scope="module")
def outputs() -> dict[str, np.ndarray]:
    from core.pipeline import Translator

    photos = {"hopper": load_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")),
              "astronaut": skimage.data.astronaut()}
    out = {}
    for name, (task, source, exemplar, seed) in CASES.items():
        result = Translator(task, engine="training-free", version=1).translate(photos[source], photos[exemplar],
                                                                    resolution=SIZE, seed=seed)
        out[f"{name}_image"] = result.image
        out[f"{name}_warped"] = result.warped
        out[f"{name}_confidence"] = result.confidence
        for i, level in enumerate(result.levels):
            out[f"{name}_level{i}_candidates"] = level.candidates
            out[f"{name}_level{i}_weights"] = level.weights
            out[f"{name}_level{i}_confidence"] = level.confidence
    return out


def test_training_free_output_is_unchanged(outputs):
    if os.environ.get("WARPAINT_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        np.savez_compressed(GOLDEN, **outputs)
        pytest.skip(f"wrote {GOLDEN}")
    golden = dict(np.load(GOLDEN))
    assert sorted(outputs) == sorted(golden), "the result has other parts (levels) than the reference"
    for key, want in golden.items():
        got = outputs[key]
        assert got.shape == want.shape and got.dtype == want.dtype, key
        if got.dtype == np.uint8:  # pictures: float noise may move a rounding by one level, rarely
            diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
            assert diff.max() <= 2 and (diff > 0).mean() < 0.01, f"{key}: {(diff > 0).mean():.2%} pixels changed"
        else:
            np.testing.assert_allclose(got, want, atol=2e-3, rtol=0, err_msg=key)
