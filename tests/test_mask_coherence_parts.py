"""benchmarks/mask_coherence_parts.py: the patch-coherence ratio split by the subject's mask (subject,
background, outline) adds up to the metric's own ratio, and the outline is where the subject ends."""

from __future__ import annotations

import sys

import numpy as np
from skimage import data

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
import mask_coherence_parts as parts_tool  # noqa: E402

from core.metrics import PatchCoherence  # noqa: E402


def test_the_parts_add_up_to_the_metrics_ratio_and_the_outline_follows_the_subject():
    exemplar = data.astronaut()[::2, ::2]  # (256, 256, 3)
    coherence = PatchCoherence(exemplar)
    output = np.ascontiguousarray(exemplar[:, ::-1])  # a picture made of the exemplar's textures
    ratios = parts_tool.patch_ratios(coherence, output)
    assert np.isclose(ratios.mean(), coherence(output), rtol=1e-5)
    subject = np.zeros(output.shape[:2], bool)
    subject[:, :128] = True  # the left half
    split = parts_tool.parts(ratios, subject)
    assert np.isclose(sum(part["share"] for part in split.values()), ratios.mean(), atol=2e-3)
    assert np.isclose(sum(part["patches"] for part in split.values()), 1.0, atol=2e-3)
    # a vertical outline at half width: 7x7 patches straddle it in ~3 of the 77 query columns
    assert 0.02 < split["outline"]["patches"] < 0.06
    assert abs(split["subject"]["patches"] - split["background"]["patches"]) < 0.03
