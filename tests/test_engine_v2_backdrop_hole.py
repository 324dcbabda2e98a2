"""Engine v2: the exemplar's person hole in its backdrop (what the backdrop's completion replaces) is closed,
so no sliver of real backdrop narrower than the hole's margin is left between two parts of it: completed all
round, such a sliver shows as a splinter (the flag's stripes beside Grace Hopper's shoulder)."""

from __future__ import annotations

import numpy as np

from core.conditions import extract
from core.engine_v2 import HOLE_MARGIN, TrainingFreeEngineV2, backdrop_hole
from core.eval_pairs import picture
from core.imageio import fit_image
from core.pipeline import exemplar_condition


def test_the_hole_closes_a_gap_narrower_than_its_margin_and_keeps_a_wider_one_open():
    """Two parts of a person (a shoulder and a flag fold the segmenter took for her) 20 px apart close; 40 px
    apart stay two (the backdrop between them is real); the hole holds the person with its margin."""
    side = 200
    margin = round(HOLE_MARGIN * side)  # 6 px: 20 - 2 * 6 = 8 px left between the dilated parts, under 2 * 6
    for gap, closed in ((20, True), (40, False)):
        person = np.zeros((side, side), bool)
        person[50:150, 40:90] = True
        person[50:150, 90 + gap:140 + gap] = True
        hole = backdrop_hole(person)
        assert hole[100, 90 + gap // 2] == closed, gap
        assert hole[person].all()  # the person and its margin
        assert hole[50 - margin + 1:150 + margin - 1, 65].all() and hole[100, 40 - margin + 1:65].all()
        assert not hole[:50 - margin - 1].any() and not hole[150 + margin + 1:].any()  # nothing far off


def test_the_enlarged_face_pair_shows_no_flag_splinter_beside_the_shoulder():
    """astronaut/close-up -> grace_hopper/zoomed-out: left of the neck, above the shoulder, the output showed a
    red piece of the flag's stripes amid the completed blue (66 red pixels at 256 before the hole was closed)."""
    size = (256, 256)
    src = extract("face", fit_image(picture("astronaut/close-up"), size), size)
    ex = exemplar_condition("face", picture("grace_hopper/zoomed-out"), 256)
    out = TrainingFreeEngineV2().one(src, ex)
    image = ((out.image[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(int)
    beside = image[160:192, 0:48]  # backdrop left of the neck, above the shoulder
    red = (beside[..., 0] > 120) & (beside[..., 0] > 1.5 * beside[..., 2])
    assert red.sum() < 5
