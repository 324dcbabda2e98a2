"""Models by Hub id without network: a cache laid out exactly as huggingface_hub lays it out,
HF_HUB_OFFLINE=1, the clear messages, the model card, and push against a local stand-in."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

huggingface_hub = pytest.importorskip("huggingface_hub")

from core import hub  # noqa: E402
from core.config import get_preset  # noqa: E402
from core.errors import CheckpointError  # noqa: E402
from core.model import Warpaint  # noqa: E402

REPO = "warpaint-test/tiny-pose"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: Path, repo: str, files: dict[str, Path], commit: str = COMMIT) -> Path:
    """Lay ``files`` out in ``cache`` as huggingface_hub does: models--org--name/{blobs, refs/main,
    snapshots/<commit>/<file> -> ../../blobs/<sha256>}. Returns the snapshot folder."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        blob = hashlib.sha256(source.read_bytes()).hexdigest()
        shutil.copyfile(source, root / "blobs" / blob)
        os.symlink(os.path.join("..", "..", "blobs", blob), snapshot / name)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline (env for child processes, constants for this one)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def tiny_folder(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "tiny"
    Warpaint(get_preset("tiny", task="pose", label_channels=20)).save_pretrained(folder)
    return folder


def test_a_cached_model_loads_by_id_offline(offline_cache, tiny_folder):
    snapshot = cache_repo(offline_cache, REPO, {n: tiny_folder / n for n in hub.MODEL_FILES})
    model = Warpaint.from_pretrained(REPO)
    reference = Warpaint.from_pretrained(tiny_folder)
    assert model.config == reference.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert hub.resolve_model(REPO) == snapshot
    assert hub.resolve_model(f"{REPO}@{COMMIT}") == snapshot  # a pinned revision
    assert Warpaint.from_pretrained(REPO, revision=COMMIT).config == reference.config


def test_a_local_folder_wins_over_an_id(tmp_path, tiny_folder, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    shutil.copytree(tiny_folder, tmp_path / "org" / "tiny")
    assert not hub.is_hub_id("org/tiny") and hub.resolve_model("org/tiny") == Path("org/tiny")
    assert Warpaint.from_pretrained("org/tiny").config.task == "pose"
    assert not hub.is_hub_id("../x/y") and not hub.is_hub_id("/abs/path") and hub.is_hub_id("a/b@v1.0")


def test_an_id_that_is_not_cached_offline_says_what_to_do(offline_cache):
    with pytest.raises(CheckpointError) as info:
        Warpaint.from_pretrained("nobody/no-such-model")
    message = str(info.value)
    assert "nobody/no-such-model is not in the Hugging Face cache" in message and "HF_HUB_OFFLINE=1" in message
    assert "hf download nobody/no-such-model config.json model.safetensors" in message


def test_a_cached_repo_without_weights_says_so(offline_cache, tiny_folder):
    cache_repo(offline_cache, REPO, {"config.json": tiny_folder / "config.json"})
    with pytest.raises(CheckpointError, match="cached copy of warpaint-test/tiny-pose has config.json but not "
                                              "model.safetensors"):
        Warpaint.from_pretrained(REPO)


def test_only_config_and_safetensors_are_fetched(offline_cache, tiny_folder, monkeypatch):
    asked = []
    real = huggingface_hub.hf_hub_download

    def spy(repo_id, filename, **kwargs):
        asked.append(filename)
        return real(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    cache_repo(offline_cache, REPO, {n: tiny_folder / n for n in hub.MODEL_FILES})
    Warpaint.from_pretrained(REPO)
    assert sorted(set(asked)) == ["config.json", "model.safetensors"]


def test_the_model_card_is_front_matter_and_markdown(tiny_folder):
    import yaml

    path = hub.write_model_card(tiny_folder, repo="org/tiny-pose", provenance="Trained on nothing, for a test.",
                                license="mit")
    text = path.read_text()
    assert text.startswith("---\n")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "mit" and meta["task"] == "pose" and meta["library_name"] == "warpaint"
    assert "cocosnet-v2" in meta["tags"] and "CoCosNet v2" in meta["architecture"]
    for heading in ("## Provenance", "## Intended use and limits", "## How to load"):
        assert heading in body
    assert "Trained on nothing, for a test." in body and 'Warpaint.from_pretrained("org/tiny-pose")' in body
    card = huggingface_hub.ModelCard.load(path)  # the Hub's own parser agrees
    assert card.data.license == "mit" and "warpaint" in card.data.tags
    assert hub.write_model_card(tiny_folder, license="apache-2.0").read_text() == text  # kept unless overwrite


def test_push_uploads_the_model_files_and_the_card_to_a_stand_in(tiny_folder, tmp_path):
    """A local stand-in for HfApi: it records the calls and copies what upload_folder's patterns allow."""
    import fnmatch

    (tiny_folder / "train.json").write_text('{"steps": 1000, "resolution": 64}')
    (tiny_folder / "secret.pth").write_bytes(b"not to be uploaded")
    remote = tmp_path / "remote"

    class StandIn:
        calls: list = []

        def create_repo(self, repo_id, private=False, exist_ok=False):
            self.calls.append(("create_repo", repo_id, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message, allow_patterns):
            self.calls.append(("upload_folder", repo_id))
            for f in Path(folder_path).iterdir():
                if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                    remote.mkdir(exist_ok=True)
                    shutil.copyfile(f, remote / f.name)
            return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    api = StandIn()
    url = hub.push_model(tiny_folder, "org/tiny-pose", api=api, license="mit")
    assert url.endswith("org/tiny-pose/commit/1")
    assert api.calls == [("create_repo", "org/tiny-pose", False, True), ("upload_folder", "org/tiny-pose")]
    assert sorted(p.name for p in remote.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert "steps 1000" in (remote / "README.md").read_text()  # provenance from the trainer's train.json
    with pytest.raises(CheckpointError, match="not a Hub repo id"):
        hub.push_model(tiny_folder, "../etc", api=api)


def test_save_pretrained_can_push(tiny_folder, tmp_path, monkeypatch):
    pushed = []
    monkeypatch.setattr(hub, "push_model", lambda folder, repo, **kw: pushed.append((Path(folder), repo)))
    Warpaint.from_pretrained(tiny_folder).save_pretrained(tmp_path / "out", push_to_hub=True, repo_id="org/x")
    assert pushed == [(tmp_path / "out", "org/x")]
    with pytest.raises(ValueError, match="repo_id"):
        Warpaint.from_pretrained(tiny_folder).save_pretrained(tmp_path / "out2", push_to_hub=True)


def test_translate_cli_takes_a_hub_id(offline_cache, tiny_folder, tmp_path, repo_root):
    import subprocess
    import sys

    cache_repo(offline_cache, REPO, {n: tiny_folder / n for n in hub.MODEL_FILES})
    out = tmp_path / "out.png"
    run = subprocess.run([sys.executable, "-m", "core", "translate", "--task", "pose", "--engine", "learned",
                          "--checkpoint", REPO, "--input", str(repo_root / "assets" / "skeleton_raised_arm.png"),
                          "--input-is-condition", "--exemplar", str(repo_root / "assets" / "grace_hopper.jpg"),
                          "--output", str(out), "--resolution", "64"],
                         cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.is_file() and f"learned ({REPO})" in run.stderr


def test_the_app_offers_the_operators_hub_models_by_id_only(tmp_path, tiny_folder):
    """WARPAINT_MODELS read from the cache at start-up (offline); clients choose among ids only."""
    pytest.importorskip("gradio_client")
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from app.settings import ASSETS
    from tests.app_server import running_app

    cache = tmp_path / "hf-cache"
    cache_repo(cache, REPO, {n: tiny_folder / n for n in hub.MODEL_FILES})
    (tmp_path / "checkpoints").mkdir()
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WARPAINT_CHECKPOINTS": str(tmp_path / "checkpoints"),
           "WARPAINT_MODELS": f"{REPO},warpaint-test/not-cached"}
    with running_app(tmp_path / "app", env=env) as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        assert client.predict(api_name="/models") == {"pose": [REPO], "face": [], "mask": []}

        def translate(checkpoint, engine="learned"):
            return client.predict("pose", handle_file(str(ASSETS / "skeleton_raised_arm.png")),
                                  handle_file(str(ASSETS / "grace_hopper.jpg")), True, 128, engine, checkpoint, 2,
                                  0.01, 0, False, api_name="/translate")

        for checkpoint, engine in ((REPO, "learned"), ("", "auto")):  # auto picks the allowed model too
            image, warps, _, _, info = translate(checkpoint, engine)
            assert info["engine"] == f"learned ({REPO})" and len(warps) == 3
            assert str(cache) not in str(info) and "snapshots" not in str(info)
        for other in ("warpaint-test/not-cached", "someone/else", str(tiny_folder)):
            with pytest.raises(AppError, match="No model named .* paths are not accepted"):
                translate(other)
        log = (tmp_path / "app" / "app.log").read_text()
        assert "model warpaint-test/not-cached is not offered" in log and f"model {REPO} ready" in log
