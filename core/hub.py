"""Models by Hugging Face Hub id: resolve ``org/name`` to a local folder, push a folder with its card.

    folder = resolve_model("org/name")           # a folder: config.json + model.safetensors
    folder = resolve_model("checkpoints/mine")   # a local folder wins over a Hub id
    push_model("checkpoints/mine", "org/name")   # writes README.md (the model card) if missing, uploads

Files come through ``huggingface_hub`` (installed with gradio): its shared cache
(``HF_HUB_CACHE``), ``HF_HUB_OFFLINE=1`` honoured, and only ``config.json`` and
``model.safetensors`` are ever fetched (never pickles). Every failure is a ``CheckpointError``
saying what to do.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import CheckpointError
from core.vocabulary import CONFIG_FILE, MODEL_FILES, WEIGHTS_FILE

CARD_NAME = "README.md"  # the model card, beside MODEL_FILES in a shared model folder
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}(@[\w./-]{1,100})?$")


def looks_like_hub_id(text: str | Path) -> bool:
    """``org/name`` or ``org/name@revision``, by its form only."""
    text = str(text)
    return bool(_HUB_ID.match(text)) and ".." not in text


def is_hub_id(text: str | Path) -> bool:
    """A Hub id that is not an existing local path (a local folder wins)."""
    return looks_like_hub_id(text) and not Path(str(text)).exists()


def split_revision(model_id: str, revision: str | None = None) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``); an explicit ``revision`` wins."""
    repo, _, at = model_id.partition("@")
    return repo, revision or at or None


def resolve_model(name: str | Path, revision: str | None = None) -> Path:
    """A local model folder, or a Hub id resolved through the Hugging Face cache -> a local folder
    holding config.json and model.safetensors (it is not checked further here)."""
    if not is_hub_id(name):
        return Path(name)
    repo, revision = split_revision(str(name), revision)
    where = repo + (f" (revision {revision})" if revision else "")
    config = Path(_fetch(repo, CONFIG_FILE, revision, where, has_config=False))
    commit = config.parent.name  # the snapshot's commit: the weights come from the same one
    return Path(_fetch(repo, WEIGHTS_FILE, commit, where, has_config=True)).parent


def _fetch(repo: str, filename: str, revision: str | None, where: str, has_config: bool) -> str:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:  # LocalEntryNotFoundError first: it is an EntryNotFoundError too
        return hf_hub_download(repo, filename, revision=revision, library_name="warpaint")
    except GatedRepoError as exc:
        raise CheckpointError(f"{where} is gated on the Hugging Face Hub: accept its terms on its page and log in "
                              "(`hf auth login`), then try again.") from exc
    except RepositoryNotFoundError as exc:
        raise CheckpointError(f"No model {repo} on the Hugging Face Hub (or it is private: log in with "
                              "`hf auth login`). Check the id, or give a local model folder.") from exc
    except RevisionNotFoundError as exc:
        raise CheckpointError(f"{repo} has no revision {revision!r} on the Hugging Face Hub.") from exc
    except LocalEntryNotFoundError as exc:
        offline = constants.is_offline_mode()
        reason = "HF_HUB_OFFLINE=1 is set" if offline else "the Hub could not be reached"
        if has_config:
            raise CheckpointError(
                f"The cached copy of {where} has {CONFIG_FILE} but not {WEIGHTS_FILE}, and {reason}: fetch it once "
                f"online (`hf download {repo} {CONFIG_FILE} {WEIGHTS_FILE}`), or give a local model folder.") from exc
        raise CheckpointError(
            f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {reason}: run once online "
            f"(or `hf download {repo} {CONFIG_FILE} {WEIGHTS_FILE}`) so it is cached, or give a local model "
            "folder.") from exc
    except EntryNotFoundError as exc:
        raise CheckpointError(f"{where} has no {filename} on the Hugging Face Hub: a Warpaint model repo holds "
                              f"{CONFIG_FILE} and {WEIGHTS_FILE} (pickled .pth/.bin files are never loaded; "
                              "convert them with `python -m core convert-official`).") from exc
    except HFValidationError as exc:
        raise CheckpointError(f"{repo!r} is not a valid Hugging Face Hub id (org/name).") from exc
    except OSError as exc:  # network errors, disk full...
        raise CheckpointError(f"{where}: {filename} could not be fetched ({type(exc).__name__}); check the "
                              "connection, or give a local model folder.") from exc


# -- model cards -----------------------------------------------------------------------------------

CONVERTED = ("Converted from the official CoCosNet v2 DeepFashionHD release (github.com/microsoft/CoCosNet-v2, "
             "`latest_net_Corr.pth` + `latest_net_G.pth`) with `python -m core convert-official`: the same weights "
             "renamed onto Warpaint's classes, checked against outputs of the official code.")
_TASKS = {"pose": ("pose to body", "an OpenPose-coloured skeleton (+ limb distance channels) from a photo of a person"),
          "face": ("edge to face", "face edges (landmark lines + Canny edges) from a face photo or a sketch"),
          "mask": ("mask to image", "an ADE20K segmentation mask (painted, or person/background from a photo)")}


def model_card(config, *, repo: str | None = None, provenance: str | None = None, license: str = "other",
               name: str | None = None) -> str:
    """README.md of a model folder: YAML front matter (license, task, tags, architecture) + markdown.
    ``name``: what ``from_pretrained`` is given in "How to load" (default: ``repo``)."""
    from huggingface_hub import ModelCardData

    task = getattr(config, "task", "pose")
    title, condition = _TASKS.get(task, (task, task))
    data = ModelCardData(license=license, library_name="warpaint", pipeline_tag="image-to-image",
                         tags=["warpaint", "cocosnet-v2", "exemplar-based-image-translation", f"{task}-to-image"])
    data.task = task
    data.architecture = "CoCosNet v2 (full-resolution correspondence), Warpaint implementation"
    name = name or repo or "org/name"
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# Warpaint {title} model{f' ({repo})' if repo else ''}", "",
        "Exemplar-based image translation with full-resolution correspondence, after CoCosNet v2 (Zhou et al., "
        "CVPR 2021): the input's condition is matched to an exemplar at every level (dense attention at the "
        "coarsest, GRU-assisted PatchMatch above) and the warped exemplar drives the generator.", "",
        "## Architecture", "",
        f"- task: `{task}`; condition: {condition}; label channels: {config.label_channels}",
        f"- native resolution {config.resolution}x{config.resolution}, {config.levels} correspondence levels, "
        f"K = {config.candidates} candidates, {config.iterations} PatchMatch iterations, matching "
        f"`{config.matching}`", "",
        "## Provenance", "",
        provenance or "Not recorded: say here how it was trained (preset, data, steps) or where it comes from.", "",
        "## Intended use and limits", "",
        "- Made for creative image translation (drawing a person, face or scene in an exemplar's looks) and for "
        "research on correspondence. Outputs are synthetic pictures: do not present them as photos of real "
        "events, and do not use them to impersonate or identify people.",
        "- Quality follows the training data: other framings, subjects or condition styles than those it was "
        "trained on give weaker matches and visible artefacts.",
        "- It expects the condition Warpaint's own extractors render for this task (see the project's docs).", "",
        "## How to load", "",
        "```python",
        "from core.model import Warpaint",
        f'model = Warpaint.from_pretrained("{name}")  # a Hub id (cached), or a local folder',
        "```", "",
        "```bash",
        f"python -m core translate --task {task} --checkpoint {name} --input in.jpg --exemplar ex.jpg --output out.png",
        f"WARPAINT_MODELS={name} python app.py   # offer it in the app",
        "```", "",
    ]
    return "\n".join(lines)


def training_provenance(folder: Path) -> str | None:
    """What the bundled trainer recorded in ``folder/train.json``, in words (None when absent)."""
    import json

    path = Path(folder) / "train.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    keys = ("preset", "steps", "batch_size", "resolution", "lr", "seed", "ema")
    facts = ", ".join(f"{k} {cfg[k]}" for k in keys if k in cfg)
    return (f"Trained with Warpaint's bundled trainer (`python -m core train`; {facts}). The data: describe the "
            "photos here (source, licence, how many). The full training config is in `train.json` of the run.")


def write_model_card(folder: str | Path, config=None, *, repo: str | None = None, provenance: str | None = None,
                     license: str = "other", overwrite: bool = False) -> Path:
    """Write ``folder/README.md`` (kept when it exists unless ``overwrite``); return its path."""
    from core.config import WarpaintConfig

    folder = Path(folder)
    path = folder / CARD_NAME
    if path.exists() and not overwrite:
        return path
    config = config or WarpaintConfig.load(folder / CONFIG_FILE)
    text = model_card(config, repo=repo, provenance=provenance or training_provenance(folder), license=license,
                      name=repo or str(folder))
    path.write_text(text)
    return path


def push_model(folder: str | Path, repo: str, *, private: bool = False, license: str = "other",
               commit_message: str = "Upload Warpaint model", api=None) -> str:
    """Upload config.json, model.safetensors and README.md (written when missing) to ``repo``; the
    commit URL. ``api``: an ``HfApi`` (a stand-in in tests)."""
    folder = Path(folder)
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a model folder (missing {', '.join(missing)}).")
    if not looks_like_hub_id(repo) or "@" in repo:
        raise CheckpointError(f"{repo!r} is not a Hub repo id: use org/name.")
    write_model_card(folder, repo=repo, license=license)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(library_name="warpaint")
    api.create_repo(repo, private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message=commit_message,
                             allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, CARD_NAME])
    return str(getattr(info, "commit_url", info))
