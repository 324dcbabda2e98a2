"""The official CoCosNet v2 checkpoint format, converted and run by our classes, reproduces the
official inference (fixture made with github microsoft/CoCosNet-v2 at 5ebd60c; see its README).

Tolerances come from the fixture README: the official PatchMatch turns offsets into indices with
float32 arithmetic and truncation, so float rounding flips a few indices (the official code run
with 1 thread instead of 2 already differs in 0.05% of indices and warp pixels; in float64, in
9-27%). Hence: warp_out_64 within 1e-3 everywhere; finer warps within 1e-3 on >= 99% of pixels;
candidate indices equal for >= 99%; the generator fed the stored warps within 1e-5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.model import Warpaint
from core.official import load_official

FIXTURE = Path(os.environ.get("WARPAINT_OFFICIAL_FIXTURE",
                              Path(__file__).resolve().parents[2] / "shared/fixtures/cocosnet2_official"))
pytestmark = pytest.mark.skipif(not (FIXTURE / "netCorr.pth").is_file(),
                                reason=f"official fixture not found at {FIXTURE}")
SIZES = (64, 128, 256, 512)


@pytest.fixture(scope="module")
def fixture_data():
    inputs = torch.load(FIXTURE / "inputs.pt")
    outputs = torch.load(FIXTURE / "outputs.pt")
    draws = json.loads((FIXTURE / "draws.json").read_text())["draws"]
    levels = sorted({d["level"] for d in draws})
    orders = [[d["horizontal_first"] for d in draws if d["level"] == lv] for lv in levels]
    return inputs, outputs, orders


@pytest.fixture(scope="module")
def official_run(fixture_data):
    inputs, _, orders = fixture_data
    model = load_official(FIXTURE / "netCorr.pth", FIXTURE / "netG.pth")
    with torch.inference_mode():
        out = model(inputs["seg_map"], inputs["ref_img"], inputs["ref_seg_map"], orders=orders)
    return model, out


def test_config_is_read_from_the_weights():
    model = load_official(FIXTURE / "netCorr.pth", FIXTURE / "netG.pth")
    c = model.config
    assert (c.nef, c.ngf, c.levels, c.label_channels, c.candidates, c.matching) == (8, 8, 4, 20, 16, "official")


def test_warps_match_official(fixture_data, official_run):
    _, outputs, _ = fixture_data
    _, out = official_run
    for size, level in zip(SIZES, out.levels, strict=True):
        ours, ref = level.warp, outputs[f"warp_out_{size}"]
        assert ours.shape == ref.shape
        off = (ours - ref).abs().amax(1)  # (1, H, W): worst channel per pixel
        if size == SIZES[0]:
            assert off.max() < 1e-3, f"coarsest warp differs by {off.max():.2e}"
        else:
            frac = (off > 1e-3).float().mean().item()
            assert frac < 0.01, f"warp_out_{size}: {frac:.3%} of pixels differ by more than 1e-3"


def test_candidate_indices_match_official(fixture_data, official_run):
    _, outputs, _ = fixture_data
    _, out = official_run
    top1 = out.levels[0].indices[:, :, :1]
    assert (top1 == outputs["level0_top1_inds"]).float().mean() > 0.99
    for i in (1, 2, 3):
        ours, ref = out.levels[i].indices, outputs[f"level{i}_matching_inds"]
        assert ours.shape == ref.shape and ours.dtype == torch.int64
        same = (ours == ref).float().mean().item()
        assert same > 0.99, f"level {i}: only {same:.3%} of candidate indices equal"


def test_image_matches_official(fixture_data, official_run):
    inputs, outputs, _ = fixture_data
    model, out = official_run
    diff = (out.image - outputs["fake_image"]).abs()
    assert diff.mean() < 1e-4 and (diff > 1e-3).float().mean() < 0.001
    stored = [outputs[f"warp_out_{s}"] for s in SIZES]
    with torch.inference_mode():
        image = model.generator(stored, inputs["seg_map"])
    assert (image - outputs["fake_image"]).abs().max() < 1e-5


def test_convert_cli_writes_a_loadable_folder(tmp_path, fixture_data, official_run, repo_root):
    out_dir = tmp_path / "deepfashionHD"
    cmd = [sys.executable, "-m", "core", "convert-official", "--corr", str(FIXTURE / "netCorr.pth"),
           "--gen", str(FIXTURE / "netG.pth"), "--out", str(out_dir)]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    converted = Warpaint.from_pretrained(out_dir)
    model, _ = official_run
    assert converted.config == model.config
    ours, theirs = converted.state_dict(), model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    card = (out_dir / "README.md").read_text()  # the model card, as `push` would write it
    assert card.startswith("---\n") and "task: pose" in card and "Converted from the official CoCosNet v2" in card


def test_module_prefix_is_accepted(tmp_path):
    for name in ("netCorr", "netG"):
        state = torch.load(FIXTURE / f"{name}.pth", weights_only=True)
        torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / f"{name}.pth")
    model = load_official(tmp_path / "netCorr.pth", tmp_path / "netG.pth")
    assert model.config.nef == 8


def test_swapped_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="looks like the generator"):
        load_official(FIXTURE / "netG.pth", FIXTURE / "netG.pth")
    with pytest.raises(CheckpointError, match="looks like the correspondence"):
        load_official(FIXTURE / "netCorr.pth", FIXTURE / "netCorr.pth")


def test_truncated_file_is_reported(tmp_path):
    data = (FIXTURE / "netCorr.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_official(tmp_path / "cut.pth", FIXTURE / "netG.pth")


def test_shape_mismatch_is_reported(tmp_path):
    state = torch.load(FIXTURE / "netCorr.pth", weights_only=True)
    state["theta_1.weight"] = torch.zeros(8, 7, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_official(tmp_path / "bad.pth", FIXTURE / "netG.pth")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError):
        load_official(tmp_path / "evil.pth", FIXTURE / "netG.pth")


def test_released_corr_file_with_stray_copies_loads(tmp_path):
    """The released latest_net_Corr.pth has D and G copies at the top of its zip (official issue #3)."""
    import shutil
    import zipfile

    path = tmp_path / "latest_net_Corr.pth"
    shutil.copy(FIXTURE / "netCorr.pth", path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("latest_net_D.pth", b"stray")
        zf.writestr("latest_net_G.pth", b"stray")
    with pytest.raises(RuntimeError, match="not in a subdirectory"):
        torch.load(path, weights_only=True)
    model = load_official(path, FIXTURE / "netG.pth")
    reference = load_official(FIXTURE / "netCorr.pth", FIXTURE / "netG.pth")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_pose_from_our_extractor_feeds_the_official_model_unchanged():
    """A photo -> our pose label -> the official architecture, with no adapter in between."""
    from skimage.data import astronaut

    from core.conditions import extract

    cond = extract("pose", astronaut(), size=(256, 256))  # any size: the model is resolution-free
    assert cond.label.shape == (20, 256, 256)
    model = load_official(FIXTURE / "netCorr.pth", FIXTURE / "netG.pth", iterations=1)
    label = cond.label.unsqueeze(0)
    exemplar = torch.from_numpy(cond.image).permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1
    with torch.inference_mode():
        out = model(label, exemplar, label)
    assert out.image.shape == (1, 3, 256, 256) and torch.isfinite(out.image).all()
