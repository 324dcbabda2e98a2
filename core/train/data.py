"""A folder of photos as a training set: conditions extracted once and cached, pseudo or real exemplars.

Layout (all optional but the photos)::

    DATA/images/**.jpg|png|...       the photos (or directly under DATA/)
    DATA/poses/<name>.json           OpenPose JSON (or <name>_candidate.txt + _subset.txt)  task pose
    DATA/masks/<name>.png            ADE20K index PNG (or a palette-painted mask)            task mask
    DATA/edges/<name>.png            an edge / sketch picture (or keypoints/<name>.json)     task face
    DATA/pairs.txt                   real exemplars: ``image,ref1,ref2,...`` (paths as above)

A condition file, when present, is used instead of running the extractor. Every condition is
cached under ``DATA/.warpaint_cache/<task>-<H>x<W>/`` (safetensors) and rebuilt only when its
photo changes. Exemplars are real pairs from the list with ``pair_probability``, otherwise a
pseudo exemplar T(x) from ``core.augment`` whose warp target is x itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset, DistributedSampler, Sampler

from core.augment import grid_to_pixels, pseudo_exemplar
from core.errors import InputError, WarpaintError
from core.train.labels import redraw_label

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# task -> (folder, file endings) searched in order for a photo's ready-made condition
CONDITION_FILES = {
    "pose": [(f, (".json", "_candidate.txt")) for f in ("poses", "pose", "keypoints", "openpose")],
    "mask": [(f, (".png", ".bmp", ".tif", ".tiff")) for f in ("masks", "annotations", "labels")],
    "face": [(f, (".png", ".jpg", ".jpeg", ".bmp", ".webp")) for f in ("edges", "sketches")]
    + [(f, (".json",)) for f in ("keypoints", "openpose")],
}
CACHE_FOLDER = ".warpaint_cache"
CACHE_FORMAT = 2  # 2: keypoints (and the face region) are kept, to redraw pseudo-exemplar labels
PAIR_LIST = "pairs.txt"
RETRIEVED_KIND = "retrieved"  # the kind line ``# kind: retrieved`` marks other-subject exemplars


def image_root(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


def find_images(root: str | Path) -> list[str]:
    """Photos under the data folder as sorted paths relative to it (condition folders skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"Data folder {root} not found.")
    base = image_root(root)
    skip = {CACHE_FOLDER, *(folder for entries in CONDITION_FILES.values() for folder, _ in entries)}
    found = []
    for p in base.rglob("*"):
        rel = p.relative_to(base)
        hidden = any(part.startswith(".") for part in rel.parts) or any(part in skip for part in rel.parts[:-1])
        if p.suffix.lower() in IMAGE_EXTENSIONS and not hidden and p.is_file():
            found.append(p.relative_to(root).as_posix())
    if not found:
        raise InputError(f"No photos found in {base} (looked for {', '.join(IMAGE_EXTENSIONS)}).")
    return sorted(found)


def condition_file(root: Path, rel: str, task: str) -> Path | None:
    """The ready-made condition file of a photo, if the data folder has one."""
    stem = (root / rel).relative_to(image_root(root)).with_suffix("")
    for folder, endings in CONDITION_FILES[task]:
        base = root / folder / stem
        for ending in endings:
            p = base.parent / (base.name + ending)
            if p.is_file():
                return p
    return None


def read_pair_list(path: str | Path, images: Sequence[str]) -> tuple[dict[str, list[str]], str]:
    """``image,ref1,ref2,...`` lines (``#`` comments; ``# kind: retrieved`` marks a retrieval list).
    Returns {image: [refs]} restricted to known photos, and the list's kind (``pairs`` or ``retrieved``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Pair list {path} not found.")
    known = set(images)
    pairs: dict[str, list[str]] = {}
    kind = "pairs"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if line.startswith("#"):
            if line[1:].strip().lower().startswith("kind:"):
                kind = line.split(":", 1)[1].strip().lower()
            continue
        if not line:
            continue
        parts = [p.strip() for p in (line.split(",") if "," in line else line.split("\t"))]
        if len(parts) < 2:
            raise InputError(f"{path}:{number}: expected 'image,ref1,ref2,...'")
        refs = [r for r in parts[1:] if r in known and r != parts[0]]
        if parts[0] in known and refs:
            pairs[parts[0]] = refs
    return pairs, kind


# -- condition cache ------------------------------------------------------------------------

def _pack_label(label: torch.Tensor) -> dict[str, torch.Tensor]:
    """Store a label compactly: one-hot as an index map, k/255 values as uint8, else float16."""
    if label.shape[0] > 1 and bool(((label == 0) | (label == 1)).all()) and bool((label.sum(0) == 1).all()):
        return {"index": label.argmax(0).to(torch.int16)}
    scaled = label * 255
    if bool((scaled.round() - scaled).abs().max() < 1e-3) and bool((scaled >= 0).all() and (scaled <= 255).all()):
        return {"u8": scaled.round().to(torch.uint8)}
    return {"f16": label.to(torch.float16)}


def _unpack_label(data: dict[str, torch.Tensor], channels: int) -> torch.Tensor:
    if "index" in data:
        index = data["index"].long()
        return torch.zeros(channels, *index.shape).scatter_(0, index[None], 1.0)
    if "u8" in data:
        return data["u8"].float() / 255
    return data["f16"].float()


@dataclass
class CachedCondition:
    label: torch.Tensor  # (C, H, W) float32
    preview: np.ndarray  # (H, W, 3) uint8
    keypoints: np.ndarray | None = None  # pose (18, 3) / face (68, 3) in pixels of the cached size
    region: np.ndarray | None = None  # face: (H, W) bool face region


class ConditionCache:
    """Extract each photo's condition once (or read its condition file) and keep it on disk."""

    def __init__(self, root: str | Path, task: str, size: tuple[int, int], cache_dir: str | Path | None = None):
        self.root, self.task, self.size = Path(root), task, (int(size[0]), int(size[1]))
        base = Path(cache_dir) if cache_dir else self.root / CACHE_FOLDER
        self.folder = base / f"{task}-{self.size[0]}x{self.size[1]}"

    def _path(self, rel: str) -> Path:
        return self.folder / (rel + ".safetensors")

    def _stamp(self, rel: str) -> str:
        files = [self.root / rel] + [p for p in [condition_file(self.root, rel, self.task)] if p]
        return json.dumps([CACHE_FORMAT] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files])

    def status(self, rel: str) -> str:
        """``ok`` (cached), ``skip`` (no subject: left out of training) or ``missing``."""
        path = self._path(rel)
        stamp = self._stamp(rel)
        if path.with_suffix(".skip").is_file() and path.with_suffix(".skip").read_text().split("\n")[0] == stamp:
            return "skip"
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                return "ok" if f.metadata().get("stamp") == stamp else "missing"
        except (OSError, SafetensorError):
            return "missing"

    def build(self, rel: str) -> str:
        """Make the cache entry of one photo; returns ``ok`` or ``skip`` (with the reason stored)."""
        from core.imageio import load_image

        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = self._stamp(rel)
        try:
            cond = self._extract(rel, load_image(self.root / rel))
        except WarpaintError as exc:  # no person / face found, unreadable file...
            _atomic_text(path.with_suffix(".skip"), f"{stamp}\n{exc}\n")
            return "skip"
        tensors = {k: v.contiguous() for k, v in _pack_label(cond.label.float()).items()}
        tensors["preview"] = torch.from_numpy(np.array(cond.preview, dtype=np.uint8))
        if cond.keypoints is not None and self.task in ("pose", "face"):
            tensors["keypoints"] = torch.from_numpy(np.array(cond.keypoints, dtype=np.float32))
            if self.task == "face" and cond.subject_mask is not None:
                tensors["region"] = torch.from_numpy(np.array(cond.subject_mask, dtype=np.uint8))
        meta = {"stamp": stamp, "channels": str(cond.label.shape[0]), "task": self.task}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        return "ok"

    def _extract(self, rel: str, photo: np.ndarray):
        from core import conditions
        from core.imageio import fit_points, load_image

        ready = condition_file(self.root, rel, self.task)
        if ready is None:
            return conditions.extract(self.task, photo, self.size)
        if self.task == "pose" or (self.task == "face" and ready.suffix == ".json"):
            from core.conditions.openpose_io import read_keypoints

            found = read_keypoints(ready)
            points = found.pose if self.task == "pose" else found.face
            if points is None:
                raise InputError(f"{ready} has no {self.task} keypoints.")
            frame = found.frame or photo.shape[:2]
            points = np.array(points, dtype=np.float64)
            if found.normalized:
                points[:, 0] *= frame[1]
                points[:, 1] *= frame[0]
            points[:, :2] = fit_points(points[:, :2], frame, self.size)
            return conditions.from_keypoints(self.task, points, self.size, image=photo)
        picture = load_image(ready)
        if self.task == "mask" and bool((picture[..., 0] == picture[..., 1]).all() and
                                        (picture[..., 0] == picture[..., 2]).all()):
            picture = picture[..., 0]  # a grey PNG is an ADE20K index map
        return conditions.from_user_condition(self.task, picture, self.size)

    def load(self, rel: str) -> CachedCondition:
        try:
            from safetensors import safe_open

            with safe_open(str(self._path(rel)), "pt") as f:
                channels = int(f.metadata()["channels"])
            data = load_file(str(self._path(rel)))
        except (OSError, SafetensorError, KeyError) as exc:
            raise InputError(f"Condition cache entry of {rel} is missing or damaged ({exc}); "
                             f"delete {self.folder} to rebuild it.") from exc
        keypoints = data["keypoints"].double().numpy() if "keypoints" in data else None
        region = data["region"].numpy() > 0 if "region" in data else None
        return CachedCondition(_unpack_label(data, channels), data["preview"].numpy(), keypoints, region)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# -- dataset ---------------------------------------------------------------------------------

class TrainingSet(Dataset):
    """Training samples: x, its condition, an exemplar and the exemplar's condition.

    Items are addressed by ``(index, draw)``: ``draw`` seeds every random choice of that sample
    (pair or pseudo exemplar, the augmentation), so a sample is the same whichever worker or run
    makes it; that is what makes a resumed run identical to an uninterrupted one.
    """

    def __init__(self, root: str | Path, items: Sequence[str], cache: ConditionCache, seed: int = 0,
                 pairs: dict[str, list[str]] | None = None, pair_probability: float = 0.0,
                 pair_weight: float = 1.0, augment_strength: float = 1.0):
        self.root, self.items, self.cache = Path(root), list(items), cache
        self.seed, self.pairs = seed, pairs or {}
        self.pair_probability, self.pair_weight = pair_probability, pair_weight
        self.augment_strength = augment_strength
        self.label_mode = "nearest" if cache.task == "mask" else "bilinear"

    def __len__(self) -> int:
        return len(self.items)

    def photo(self, rel: str) -> torch.Tensor:
        """(3, H, W) in [-1, 1], fitted to the training size."""
        from core.imageio import fit_image, load_image, to_tensor

        return to_tensor(fit_image(load_image(self.root / rel), self.cache.size))[0]

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, draw = key if isinstance(key, tuple) else (key, 0)
        rng = torch.Generator().manual_seed((self.seed * 1_000_003 + draw) % (2**63))
        rel = self.items[index]
        image, cond = self.photo(rel), self.cache.load(rel)
        refs = self.pairs.get(rel)
        use_pair = bool(refs) and float(torch.rand((), generator=rng)) < self.pair_probability
        if use_pair:
            ref = refs[int(torch.randint(len(refs), (), generator=rng))]
            exemplar, ex_label, weight = self.photo(ref), self.cache.load(ref).label, self.pair_weight
            h, w = image.shape[-2:]
            positions, known, shown = torch.zeros(2, h, w), torch.zeros(1, h, w), torch.ones(1, h, w)
        else:
            exemplar, ex_label, positions, known = self.pseudo_exemplar(image, cond, rng)
            weight, shown = 1.0, known
        return {
            "condition": cond.label,  # (C, H, W)
            "image": image,  # (3, H, W) the target x
            "exemplar": exemplar,  # (3, H, W)
            "exemplar_condition": ex_label,  # (C, H, W)
            "sample_weight": torch.tensor(float(weight)),  # 1: the target is the warp's ground truth
            "correspondence": positions,  # (2, H, W): (row, col) in the exemplar of each pixel of x
            "correspondence_mask": known,  # (1, H, W): 1 where that is known (pseudo exemplars only)
            "warp_mask": shown,  # (1, H, W): 1 where the exemplar shows x's pixel (the warp loss counts)
            "preview": torch.from_numpy(np.ascontiguousarray(cond.preview)).permute(2, 0, 1),  # (3, H, W) uint8
            "index": torch.tensor(index),
        }

    def pseudo_exemplar(self, image: torch.Tensor, cond: CachedCondition, rng: torch.Generator):
        """T(x), its label (redrawn from the moved keypoints where there are any), and the ground-truth
        correspondence: (2, H, W) (row, col) in T(x) of each pixel of x, and where it is known."""
        pair = pseudo_exemplar(image[None], cond.label[None], generator=rng, strength=self.augment_strength,
                               label_mode=self.label_mode)
        label = pair.label[0]
        if cond.keypoints is not None and self.cache.task in ("pose", "face"):
            label = redraw_label(self.cache.task, cond.keypoints, pair, region=cond.region)
        return pair.image[0], label, grid_to_pixels(pair.inverse)[0], pair.visible[0].float()


class ResumableSampler(Sampler):
    """Endless ``(index, draw)`` stream for one process: each epoch is ``DistributedSampler``'s
    shuffled shard (``set_epoch``), and the stream starts after the ``start`` samples this process
    already used, so a resumed run continues with exactly the samples the killed run would have seen."""

    def __init__(self, size: int, rank: int = 0, world: int = 1, seed: int = 0, start: int = 0):
        self.size, self.rank, self.world, self.seed, self.start = size, rank, world, seed, start
        self.per_rank = math.ceil(size / world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            shard = DistributedSampler(range(self.size), num_replicas=self.world, rank=self.rank,
                                       shuffle=True, seed=self.seed)
            shard.set_epoch(epoch)
            for position, index in enumerate(list(shard)[offset:], offset):
                yield index, (epoch * self.world + self.rank) * self.per_rank + position
            epoch, offset = epoch + 1, 0


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def split_holdout(items: Sequence[str], holdout: int) -> tuple[list[str], list[str]]:
    """(train, held out): a fixed, seed-independent choice so every run evaluates the same photos.
    With too few photos nothing is held out (evaluation then uses training photos)."""
    items = list(items)
    if holdout <= 0 or len(items) <= holdout:
        return items, []
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(12345)).tolist()
    held = sorted(items[i] for i in order[:holdout])
    keep = set(items) - set(held)
    return [x for x in items if x in keep], held
