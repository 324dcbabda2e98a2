"""The inference API: engine choice (auto / learned / training-free), promised result parts, errors."""

import os
import threading

import matplotlib
import numpy as np
import pytest
import skimage.data
import torch

from core.config import get_preset
from core.errors import CheckpointError, InputError, WarpaintError
from core.imageio import load_image
from core.model import Warpaint
from core.pipeline import Translator, find_checkpoints
from core.results import TranslationResult

ASSETS = os.path.join(os.path.dirname(__file__), "..", "assets")


@pytest.fixture(scope="module")
def photos():
    hopper = load_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    return hopper, skimage.data.astronaut()


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """checkpoints/ with a tiny random pose model and a face folder."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    Warpaint(get_preset("tiny")).save_pretrained(root / "tiny-pose")
    Warpaint(get_preset("tiny", task="face", label_channels=10)).save_pretrained(root / "tiny-face")
    (root / "not-a-model").mkdir()
    return root


def _check_result(result: TranslationResult, size: tuple[int, int], engine: str) -> None:
    h, w = size
    assert result.image.shape == result.warped.shape == (h, w, 3) and result.image.dtype == np.uint8
    assert result.input_condition.shape == result.exemplar_condition.shape == (h, w, 3)
    assert result.engine == engine and result.messages[0] == f"Engine: {engine}."
    assert result.confidence.shape == (h, w) and 0 <= result.confidence.min() <= result.confidence.max() <= 1
    assert result.flow.shape == (h, w, 3) and result.flow.dtype == np.uint8
    assert len(result.levels) >= 2
    sides = [lv.size[0] for lv in result.levels]
    assert sides == sorted(sides)  # coarsest first
    for lv in result.levels:
        lh, lw = lv.size
        k = lv.weights.shape[-1]
        assert lv.warp.shape == lv.flow.shape == (h, w, 3)
        assert lv.confidence.shape == (lh, lw)
        assert lv.candidates.shape == (lh, lw, k, 2) and lv.weights.shape == (lh, lw, k)
        assert np.allclose(lv.weights.sum(-1), 1, atol=1e-3)
        assert lv.candidates.min() >= -0.5 and lv.candidates[..., 0].max() <= w and lv.candidates[..., 1].max() <= h
    assert all(v >= 0 for v in result.seconds.values())


def test_find_checkpoints_filters_by_task(tiny_root, tmp_path):
    assert [p.name for p in find_checkpoints(tiny_root)] == ["tiny-face", "tiny-pose"]
    assert [p.name for p in find_checkpoints(tiny_root, "pose")] == ["tiny-pose"]
    assert find_checkpoints(tiny_root, "mask") == []
    assert find_checkpoints(tmp_path / "missing") == []


def test_auto_without_checkpoint_is_training_free(tmp_path):
    assert Translator("mask", checkpoints_root=tmp_path).engine_name == "training-free"


def test_learned_without_checkpoint_says_where_to_put_weights(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoints/README.md") as err:
        Translator("pose", engine="learned", checkpoints_root=tmp_path)
    assert "training-free" in str(err.value)


def test_wrong_checkpoint_and_bad_options_are_clear(tiny_root):
    with pytest.raises(CheckpointError, match="'face' task"):
        Translator("pose", checkpoint=tiny_root / "tiny-face")
    with pytest.raises(CheckpointError, match="not a model folder"):
        Translator("pose", checkpoint=tiny_root / "not-a-model")
    with pytest.raises(InputError):
        Translator("cats")
    with pytest.raises(InputError):
        Translator("pose", engine="magic")
    with pytest.raises(InputError, match="GPU"):
        Translator("pose", device="cpu", precision="fp16")


def test_training_free_translation_has_every_part(photos):
    seen = []
    translator = Translator("pose", engine="training-free")
    result = translator.translate(photos[0], photos[1], resolution=128, progress=lambda f, m: seen.append(f))
    _check_result(result, (128, 128), "training-free")
    assert seen[0] < 0.5 and seen[-1] == 1.0 and seen == sorted(seen)


def test_ready_condition_input(photos):
    skeleton = load_image(os.path.join(ASSETS, "skeleton_raised_arm.png"))
    translator = Translator("pose", engine="training-free")  # v2, the default for pose
    assert translator.v2
    # The exemplar (the astronaut, waist up) shows no left elbow: a stand-in draws the raised arm, said so.
    result = translator.translate(skeleton, photos[1], resolution=128, source_is_condition=True)
    _check_result(result, (128, 128), "training-free")
    assert any("stands in" in m for m in result.messages)
    assert any("drawn with the texture" in m for m in result.messages)
    v1 = Translator("pose", engine="training-free", version=1)
    assert not v1.v2
    _check_result(v1.translate(skeleton, photos[1], resolution=128, source_is_condition=True), (128, 128),
                  "training-free")


def test_a_painted_mask_given_as_a_photo_is_read_as_one_and_refused_as_the_exemplar(photos):
    """The mask task, from the CLI or the library as in the app: a painted ADE20K mask given as the input photo
    is read as the painted mask it is (the same result as given as a condition, and a note), and as the
    exemplar it is refused with what to do. A photo is still segmented."""
    painted = load_image(os.path.join(ASSETS, "mask_cameraman.png"))
    translator = Translator("mask", engine="training-free")
    as_photo = translator.translate(painted, photos[0], resolution=128)
    as_condition = translator.translate(painted, photos[0], resolution=128, source_is_condition=True)
    assert np.array_equal(as_photo.image, as_condition.image)
    assert "read as a painted mask" in as_photo.messages[1]
    assert not any("painted mask" in m for m in as_condition.messages)
    photo = translator.translate(photos[1], photos[0], resolution=128)
    assert not any("read as a painted mask" in m for m in photo.messages)
    with pytest.raises(InputError, match="The exemplar is a painted mask.*Give a photo as the exemplar"):
        translator.translate(photos[1], painted, resolution=128)


def test_auto_uses_learned_checkpoint(tiny_root, photos):
    translator = Translator("pose", checkpoints_root=tiny_root)
    assert translator.engine_name == f"learned ({tiny_root / 'tiny-pose'})"
    seen = []
    result = translator.translate(photos[0], photos[1], resolution=64, progress=lambda f, m: seen.append(m))
    _check_result(result, (64, 64), translator.engine_name)
    assert any("synthesizing" in m for m in seen) and any("level 3/3" in m for m in seen)
    assert translator.output_size(70) == (68, 68)  # rounded down to the model's stride (4)


def test_learned_model_is_shared_between_threads(tiny_root, photos):
    translator = Translator("pose", checkpoints_root=tiny_root)
    first = translator.translate(photos[0], photos[1], resolution=64, seed=3)
    results = [None, None]

    def work(i):
        results[i] = Translator("pose", checkpoints_root=tiny_root).translate(photos[0], photos[1], resolution=64,
                                                                              seed=3)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert translator.engine.model is Translator("pose", checkpoints_root=tiny_root).engine.model
    for r in results:
        assert np.array_equal(r.image, first.image)


def test_both_engines_follow_one_protocol(tiny_root, photos):
    """The same call, the same output type, the same shapes: Translator needs no branch per engine."""
    import dataclasses

    import torch

    from core.imageio import to_tensor
    from core.protocol import EngineOutput

    learned = Translator("pose", checkpoints_root=tiny_root)
    free = Translator("pose", engine="training-free")
    src, ex = learned.prepare(photos[0], photos[1], (64, 64))
    outputs = []
    for translator in (learned, free):
        engine = translator.engine
        assert isinstance(engine.name, str) and engine.stride >= 1 and engine.resolution >= 64
        seen = []
        out = engine([src, src], torch.cat([to_tensor(ex.image)] * 2), [ex, ex], iterations=1, temperature=0.02,
                     seed=1, progress=lambda f, m, seen=seen: seen.append(f))
        assert type(out) is EngineOutput and seen and seen == sorted(seen)
        assert out.image.shape == out.warped.shape == (2, 3, 64, 64)
        assert out.positions.shape == (2, 2, 64, 64) and out.confidence.shape == (2, 1, 64, 64)
        for level in out.levels:
            k = level.weights.shape[1]
            assert level.positions.shape[:3] == (2, k, 2) and level.warp.shape[:2] == (2, 3)
        assert [f.name for f in dataclasses.fields(out)] == [f.name for f in dataclasses.fields(EngineOutput)]
        outputs.append(out)
    assert torch.equal(outputs[1].item(0).image, outputs[1].item(1).image)  # same pair, same result


def test_batch_keeps_going_past_a_bad_pair(photos):
    translator = Translator("pose", engine="training-free")
    blank = np.full((200, 200, 3), 255, np.uint8)  # no person in it
    out = translator.translate_batch([photos[0], blank], [photos[1], photos[1]], resolution=128)
    assert isinstance(out[0], TranslationResult)
    assert isinstance(out[1], WarpaintError)


def test_views_are_made_when_first_read(photos):
    """The per-level views and the flow picture (about a tenth of a v2 translation at 512) are made only
    for callers that read them, and then equal what ``flow_picture`` gives for the final map."""
    from core.pipeline import flow_picture
    from core.utils.deferred import Deferred, raw

    result = Translator("pose", engine="training-free").translate(photos[0], photos[1], resolution=128)
    assert isinstance(raw(result, "levels"), Deferred) and isinstance(raw(result, "flow"), Deferred)
    _check_result(result, (128, 128), "training-free")
    assert not isinstance(raw(result, "levels"), Deferred)  # made once, then kept
    assert np.array_equal(result.flow, flow_picture(torch.from_numpy(result.positions).permute(2, 0, 1), (128, 128)))
