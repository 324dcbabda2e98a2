"""Engine v2, face task: what the output shows of the input's person where the exemplar does not show it.
Background beside the exemplar's person (not a patchwork of its clothes), the exemplar's own outline (a hat
whole, not cut along the input's hair), and background where the input's person holds something past the
exemplar's frame (the astronaut's helmet), the jacket going on where a body would be."""

from __future__ import annotations

import cv2
import matplotlib.cbook
import numpy as np
import pytest
from skimage import data

import core.person_layer as person_layer
from core.conditions import extract
from core.engine_v2 import TrainingFreeEngineV2
from core.eval_pairs import picture
from core.imageio import fit_image, load_image
from core.person_layer import exemplar_outline, held_past_frame, outline_background
from core.pipeline import exemplar_condition

SIZE = (128, 128)


def disc(centre: tuple[int, int], radius: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    out = np.zeros(size, np.uint8)
    cv2.circle(out, centre, radius, 1, -1)
    return out > 0


def test_only_pieces_reaching_the_outline_and_not_the_frame_fill_show_background():
    """Three pieces of the person map onto the exemplar's background: one at the outline (hair past the
    exemplar's head: background), one enclosed by the person (a part the exemplar hides: filled), one at the
    outline but joined to the body going on past the exemplar's frame (filled, one body)."""
    person = np.zeros(SIZE, bool)
    person[20:128, 20:108] = True
    at_outline, enclosed, by_frame = np.zeros((3, *SIZE), bool)
    at_outline[20:40, 20:35] = True
    enclosed[60:70, 60:70] = True
    by_frame[90:110, 93:108] = True
    past_frame = np.zeros(SIZE, bool)
    past_frame[110:128, 80:108] = True
    shown = outline_background(person, at_outline | enclosed | by_frame, past_frame)
    np.testing.assert_array_equal(shown, at_outline)


def test_the_exemplar_outline_keeps_a_hat_the_input_s_hair_would_cut():
    """Inside the input's silhouette (a wide head of hair), the exemplar's person (a head under a wider hat)
    is carried over by the map: the hat shows whole where the input's layer had cut it; outside the input's
    silhouette, and where the map does not show the exemplar, the input's layer stays."""
    head = disc((64, 70), 30)
    hat = np.zeros(SIZE, bool)
    hat[22:45, 24:104] = True
    ex_person = head | hat
    rows, cols = np.mgrid[0:SIZE[0], 0:SIZE[1]].astype(np.float32)
    positions = np.stack([rows, cols], -1)  # the identity map
    layer = head.astype(np.float32)  # the input's layer: the hair beyond the head went to the background
    hair = disc((64, 64), 48)
    out = exemplar_outline(layer, ex_person, positions, np.ones(SIZE, bool), hair)
    assert out[32:40, 34:44].min() > 0.9 and layer[32:40, 34:44].max() == 0  # the hat's brim, in the hair
    np.testing.assert_array_equal(out[~hair], layer[~hair])
    assert out[5:15].max() < 0.05 and out[100:, :20].max() < 0.05  # no person where neither shows one
    not_mapped = np.zeros(SIZE, bool)
    not_mapped[:, :64] = True
    kept = exemplar_outline(layer, ex_person, positions, ~not_mapped, hair)
    np.testing.assert_array_equal(kept[:, :64], layer[:, :64])


def test_a_held_piece_past_the_frame_is_taken_whole_and_the_pose_model_is_asked_only_for_a_large_fill(
        monkeypatch):
    person = np.zeros(SIZE, bool)
    person[40:128, 30:90] = True
    helmet = disc((100, 105), 18)
    person |= helmet
    body = person & ~helmet
    body[:, 88:] = False
    calls = []

    def detect_body(photo, size):
        calls.append(size)
        return None, body

    monkeypatch.setattr(person_layer, "detect_body", detect_body)
    past_frame = np.zeros(SIZE, bool)
    past_frame[110:] = True
    photo = np.zeros((*SIZE, 3), np.uint8)
    held = held_past_frame(photo, person, person & past_frame, rim=3)
    assert calls == [SIZE]
    assert held[helmet & ~body].mean() > 0.95 and (held & ~past_frame).sum() > 300  # its part inside the frame too
    assert not held[body].any()
    small = np.zeros(SIZE, bool)
    small[127, 30:40] = True  # a fill under 5 % of the person: no pose model run, nothing held
    assert not held_past_frame(photo, person, person & small, rim=3).any() and len(calls) == 1
    nobody = np.zeros(SIZE, bool)  # no person at all (nothing to fill): no pose model run either
    assert not held_past_frame(photo, nobody, nobody, rim=3).any() and len(calls) == 1


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    return load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def test_the_astronauts_held_helmet_shows_the_exemplar_s_background(grace):
    """The app's face example: the astronaut's helmet (lower right) lies past Grace Hopper's frame. It used to
    be filled with her dark jacket (a blob beside her); it is held, and shows her blue backdrop."""
    size = (256, 256)
    src = extract("face", fit_image(data.astronaut(), size), size)
    out = TrainingFreeEngineV2().one(src, exemplar_condition("face", grace, 256))
    assert 0.05 < out.stats[0]["held"] < 0.3 and out.stats[0]["person_filled"] < 0.2
    assert any("held" in m for m in out.notes[0])
    image = out.image[0].permute(1, 2, 0).numpy()
    dome = image[205:245, 200:240]  # the helmet's dome, in the input's frame
    assert (dome[..., 2] - dome[..., 0]).mean() > 0.2  # the exemplar's blue backdrop, not a dark jacket


def test_the_enlarged_face_pair_shows_background_beside_the_neck_not_copied_clothes():
    """astronaut/close-up -> grace_hopper/zoomed-out: the astronaut's hair beside her neck maps onto the flag
    beside Grace Hopper's neck. It used to be filled with her skin, collar and jacket (9 % of the person)."""
    size = (256, 256)
    src = extract("face", fit_image(picture("astronaut/close-up"), size), size)
    ex = exemplar_condition("face", picture("grace_hopper/zoomed-out"), 256)
    out = TrainingFreeEngineV2().one(src, ex)
    assert out.stats[0]["person_filled"] < 0.02
    assert not any("not shown by the exemplar" in m for m in out.notes[0])
