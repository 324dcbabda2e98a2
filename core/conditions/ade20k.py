"""ADE20K's 150 classes + unlabeled: names and the standard colour palette (data in ade20k150.tsv).

Index convention (the one of the ADEChallengeData2016 annotation PNGs and of CoCosNet's
ADE20K label with its "don't care" channel): 0 = unlabeled/other, 1..150 = the classes in
objectInfo150 order; the one-hot label has 151 channels and channel k is index k.
So "person" is 13. (SPADE-style code shifts by one and puts unlabeled last; we do not.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _read_table() -> tuple[tuple[str, ...], np.ndarray]:
    names: list[str] = []
    colours: list[tuple[int, int, int]] = []
    path = Path(__file__).with_name("ade20k150.tsv")
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("index\t"):
            continue
        index, name, r, g, b = line.split("\t")
        if int(index) != len(names):
            raise RuntimeError(f"{path} is out of order at index {index}")
        names.append(name)
        colours.append((int(r), int(g), int(b)))
    return tuple(names), np.array(colours, dtype=np.uint8)


NAMES, PALETTE = _read_table()  # 151 names; (151, 3) uint8 RGB, PALETTE[0] = black


def packed(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB -> (...) int64 0xRRGGBB: one number a colour (for np.unique and lookups)."""
    rgb = np.asarray(rgb)[..., :3].astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


NUM_INDICES = len(NAMES)  # 151
UNLABELED = 0
PERSON = NAMES.index("person")  # 13
# "Stuff": amorphous classes that are textures, not objects; a region of one can be synthesised
# from any sample of it (mask charts copy texture for these instead of stretching a shape).
STUFF = frozenset({
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "grass", "sidewalk", "earth", "mountain",
    "water", "sea", "rug", "field", "rock", "sand", "skyscraper", "path", "runway", "river", "hill",
    "dirt track", "land", "lake",
})


def class_index(name: str) -> int:
    """ADE20K index of a class name (case-insensitive), e.g. ``class_index("sky") == 3``."""
    key = name.strip().lower()
    for i, n in enumerate(NAMES):
        if n == key:
            return i
    raise KeyError(f"unknown ADE20K class {name!r}")
