"""Whole training runs with the ``tiny`` preset at 64x64 on a synthetic mask set (textured shapes +
ADE20K index masks, made here): the warp loss falls; a SIGKILLed run resumes to exactly the weights
of an uninterrupted one; two torchrun processes (gloo) agree; the output folder is a usable model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.model import Warpaint
from core.train import Trainer, load_train_config
from core.train.synthetic import make_mask_dataset

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["--config", "tiny", "--task", "mask", "--lr", "1e-3", "--checkpoint-every", "2", "--ema", "0.9"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_mask_dataset(tmp_path_factory.mktemp("toy"), count=5, size=(64, 64), seed=1)


def _env(threads: int = 1) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}


def _train_cli(*args, threads: int = 1, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "train", *TRAIN, *args], cwd=ROOT, env=_env(threads),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """4 steps in one go (checkpoints at 2 and 4)."""
    out = tmp_path_factory.mktemp("straight")
    _finish(_train_cli("--data", str(data), "--out", str(out), "--steps", "4"))
    return out


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    found = {}
    for name in ("model.safetensors", "ema.safetensors", "discriminator.safetensors"):
        found.update({f"{name}:{k}": v for k, v in load_file(str(folder / name)).items()})
    return found


def test_short_run_improves_the_held_out_warp(tmp_path):
    """12 steps (seeded, one thread) on 4 generated photos: on 2 held-out photos' pseudo pairs the
    finest warp gains at least 2 dB PSNR over step 0 (measured: 10.4 -> 14.3 dB) and the
    correspondence end-point error falls by at least 1.5 px (31.1 -> 27.1 px at 64x64)."""
    data = make_mask_dataset(tmp_path / "toy", count=6, size=(64, 64), seed=1)
    cfg = load_train_config("tiny", steps=12, lr=1e-3, holdout=2, checkpoint_every=12, image_every=12)
    trainer = Trainer(cfg, data, tmp_path / "run", task="mask")
    assert len(trainer.heldout) == 2 and not set(trainer.heldout) & set(trainer.dataset.items)
    before = trainer.evaluate_warp()
    result = trainer.fit()
    after = trainer.evaluate_warp()
    assert after["psnr"] > before["psnr"] + 2.0, (before, after)
    assert after["epe"] < before["epe"] - 1.5, (before, after)
    terms = {"warp", "correspondence", "cycle", "featpair", "gan", "gan_feat", "d_fake", "d_real", "grad_norm_g",
             "loss_g"}
    assert terms <= set(result.last) and all(torch.isfinite(torch.tensor(result.last[k])) for k in terms)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["kind"] == "train"] == list(range(1, 13))
    evaluation = [x for x in lines if x["kind"] == "eval"][-1]  # the logged figures are the same evaluation
    assert evaluation["psnr"] == pytest.approx(after["psnr"], abs=1e-4) and "identity_psnr" in evaluation
    assert (tmp_path / "run" / "samples" / "samples-00000012.png").is_file()
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))


def test_killed_run_resumes_to_the_same_weights(data, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    proc = _train_cli("--data", str(data), "--out", str(out), "--steps", "1000")
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not latest.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-run: right after its first checkpoint (step 2)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert latest.read_text().strip() == "step-00000002"

    with pytest.raises(AssertionError):  # without --resume the folder is protected
        _finish(_train_cli("--data", str(data), "--out", str(out), "--steps", "4"))
    log = _finish(_train_cli("--data", str(data), "--out", str(out), "--steps", "4", "--resume"))
    assert "at step 2" in log
    resumed = _weights(out / "checkpoints" / "step-00000004")
    straight = _weights(uninterrupted / "checkpoints" / "step-00000004")
    assert resumed.keys() == straight.keys()
    different = [k for k in straight if not torch.equal(resumed[k], straight[k])]
    assert not different, different[:5]
    # the metrics file holds each step once, as if the run had never stopped
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "train"]
    assert steps == list(range(1, 5))


def test_output_folder_is_a_model_for_the_app_and_cli(data, uninterrupted, tmp_path):
    model = Warpaint.from_pretrained(uninterrupted)
    assert model.config.task == "mask" and model.config.label_channels == 151
    ema = load_file(str(uninterrupted / "checkpoints" / "step-00000004" / "ema.safetensors"))
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())  # the EMA weights are exported

    from core.conditions.masks import from_index
    from core.imageio import load_image
    from core.pipeline import Translator

    def condition(i: int):
        index = load_image(data / "masks" / f"{i:04d}.png")[..., 0]
        return from_index(index, (64, 64), image=load_image(data / "images" / f"{i:04d}.png"))

    translator = Translator("mask", engine="learned", checkpoint=uninterrupted)
    result = translator.translate(condition(0), condition(1))
    assert result.image.shape == (64, 64, 3) and len(result.levels) == 3
    assert "learned" in result.engine

    # the translate CLI: a painted (index) mask in the looks of a photo whose person mask is extracted
    from skimage import data as skdata

    from core.__main__ import main
    from core.imageio import save_image

    save_image(tmp_path / "astronaut.png", skdata.astronaut())
    output = tmp_path / "out.png"
    assert main(["translate", "--task", "mask", "--input", str(data / "masks" / "0002.png"), "--input-is-condition",
                 "--exemplar", str(tmp_path / "astronaut.png"), "--engine", "learned", "--checkpoint",
                 str(uninterrupted), "--output", str(output), "--resolution", "64"]) == 0
    assert load_image(output).shape == (64, 64, 3)


def test_torchrun_two_processes_agree(data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "core",
           "train", *TRAIN, "--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(1), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    evaluation = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()
                  if json.loads(x)["kind"] == "eval"]
    assert evaluation and evaluation[-1]["ranks_agree"] is True  # SHA-256 of both ranks' weights compared
    state = torch.load(out / "checkpoints" / "step-00000002" / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2 and state["data"]["world"] == 2
    Warpaint.from_pretrained(out)
