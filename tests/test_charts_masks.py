"""core.charts.masks: shape charts for things (centre -> centre, border -> border), texture synthesis for stuff."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.charts.folds import fold_fraction
from core.charts.masks import FACE_REGION, class_index_map, head_circle, mask_chart, shape_map, solid, synthesize
from core.conditions import masks
from core.conditions.ade20k import class_index
from core.errors import InputError

SKY, GRASS, CAR, WALL = (class_index(n) for n in ("sky", "grass", "car", "wall"))
S = 128


def condition(index: np.ndarray, image: np.ndarray | None = None):
    return masks.from_index(index, index.shape, image=image)


def test_shape_chart_maps_centre_to_centre_and_border_to_border():
    yy, xx = np.mgrid[0:S, 0:S]
    src = ((xx - 40) / 30) ** 2 + ((yy - 70) / 18) ** 2 < 1  # a wide ellipse, left
    ex = (xx > 70) & (xx < 110) & (yy > 20) & (yy < 90)  # a tall rectangle, right
    pos = shape_map(src, ex)
    assert np.isfinite(pos[src]).all() and not np.isfinite(pos[~src]).any()
    # centre -> centre
    np.testing.assert_allclose(pos[70, 40], (90, 55), atol=4)
    # border -> border: every border pixel of the ellipse lands within 2 px of the rectangle's border
    border = src & ~ndimage.binary_erosion(src)
    ex_dist = ndimage.distance_transform_edt(ex)
    bx, by = np.round(pos[border]).astype(int).T
    assert np.percentile(ex_dist[by, bx], 95) <= 2.0
    # relative position: the ellipse's left end maps to the rectangle's left side, its top to the top
    assert pos[70, 11, 0] < 76 and pos[53, 40, 1] < 28
    # everything lands inside the exemplar's region
    px, py = np.round(pos[src]).astype(int).T
    assert ex[py, px].all()


def test_stuff_is_synthesised_from_the_exemplars_region_at_its_scale():
    rng = np.random.default_rng(1)
    ex_index = np.full((S, S), GRASS, np.uint8)
    ex_index[: S // 4] = SKY  # a thin strip of sky in the exemplar
    ex_image = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    src_index = np.full((S, S), GRASS, np.uint8)
    src_index[: 3 * S // 4] = SKY  # a tall sky in the input: a stretch would blow the texture up 3x
    chart = mask_chart(condition(src_index), condition(ex_index, ex_image))
    sky = src_index == SKY
    assert chart.defined[sky].all()
    rows, cols = chart.positions[sky][:, 0], chart.positions[sky][:, 1]
    # every synthesised pixel, and its bilinear neighbours, comes from the exemplar's sky
    assert (np.floor(rows) >= 0).all() and (np.ceil(rows) < S // 4).all()
    assert (np.floor(cols) >= 0).all() and (np.ceil(cols) < S).all()
    # texture kept at its scale: one output pixel down is one exemplar pixel down inside a tile
    step = np.diff(chart.positions[..., 0], axis=0)[sky[1:] & sky[:-1]]
    assert np.median(step) == pytest.approx(1.0, abs=1e-6)
    # the layout follows the guide: the top of the input's sky copies from the top of the exemplar's
    assert chart.positions[:8, :, 0][sky[:8]].mean() < chart.positions[80:96, :, 0][sky[80:96]].mean()


def test_stuff_at_the_same_scale_is_mapped_not_reshuffled():
    """No stretch needed (the same sky on both sides): the shape chart, the identity here; quilting
    would scatter tiles of a sky whose layout already fits."""
    index = np.full((S, S), GRASS, np.uint8)
    index[: S // 2] = SKY
    image = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    chart = mask_chart(condition(index), condition(index, image))
    rows, cols = np.nonzero(index == SKY)
    err = np.hypot(chart.positions[rows, cols, 0] - rows, chart.positions[rows, cols, 1] - cols)
    assert np.percentile(err, 95) < 1.0


def test_stuff_that_would_land_on_other_classes_is_synthesised_not_smeared():
    """The exemplar's sky has a car in it; mapped as it is, the input's sky would land on the car and
    be snapped to its border (one exemplar pixel smeared over many). Quilting copies each once or so."""
    ex = np.full((S, S), GRASS, np.uint8)
    ex[:64] = SKY
    ex[10:50, 44:84] = CAR
    src = np.full((S, S), GRASS, np.uint8)
    src[:64] = SKY
    image = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    chart = mask_chart(condition(src), condition(ex, image))
    q = np.round(chart.positions[src == SKY]).astype(int)
    assert (ex[q[:, 0], q[:, 1]] == SKY).all()
    _, uses = np.unique(q[:, 0] * 1000 + q[:, 1], return_counts=True)
    assert uses.max() <= 6  # snapping piles up to ~20 output pixels on one car-border pixel


def test_synthesis_joins_tiles_on_matching_colours():
    """Quilting picks tiles whose overlaps agree (and cuts seams along them): on a smooth gradient
    its output has far smaller jumps than tiles laid at random."""
    yy, xx = np.mgrid[0:S, 0:S]
    grad = np.stack([xx * 2, yy * 2, np.full_like(xx, 100)], axis=-1).astype(np.uint8)
    region = np.ones((S, S), bool)

    def roughness(pos):
        out = grad[np.round(pos[..., 1]).astype(int), np.round(pos[..., 0]).astype(int)].astype(float)
        return np.abs(np.diff(out, axis=1)).sum(axis=2).mean() + np.abs(np.diff(out, axis=0)).sum(axis=2).mean()

    quilted = roughness(synthesize(region, region, grad, guide=None, seed=0))
    random_tiles = roughness(synthesize(region, region, None, guide=None, seed=0))  # no colours to agree on
    assert quilted < 0.5 * random_tiles


def test_missing_class_is_refused_or_reported():
    src = np.full((S, S), GRASS, np.uint8)
    src[60:90, 30:80] = CAR
    ex = np.full((S, S), GRASS, np.uint8)
    with pytest.raises(InputError, match="has no car"):
        mask_chart(condition(src), condition(ex))
    chart = mask_chart(condition(src), condition(ex), allow_partial=True)
    assert chart.missing == ["car"]
    assert not chart.defined[60:90, 30:80].any() and chart.defined[:50].all()
    assert (chart.region[60:90, 30:80] == CAR).all() and (chart.region[:50] == GRASS).all()


def test_absent_class_comes_from_the_exemplars_unlabeled_part():
    """An exemplar mask segmented from a photo: person + unlabeled. The input's sky comes from there."""
    person = class_index("person")
    src = np.full((S, S), SKY, np.uint8)
    src[50:, 40:90] = person
    ex = np.zeros((S, S), np.uint8)
    ex[30:, 60:100] = person
    chart = mask_chart(condition(src), condition(ex, np.zeros((S, S, 3), np.uint8)))
    assert chart.missing == [] and any("sky" in note for note in chart.notes)
    sky = src == SKY
    assert chart.defined[sky].all()
    rows, cols = np.round(chart.positions[sky]).astype(int).T
    assert (ex[rows, cols] == 0).all()  # from the unlabeled part only
    assert chart.confidence[sky].max() < chart.confidence[src == person].min()


def test_things_keep_to_their_class():
    src = np.full((S, S), WALL, np.uint8)
    src[70:110, 10:60] = CAR
    ex = np.full((S, S), WALL, np.uint8)
    ex[20:50, 80:120] = CAR
    chart = mask_chart(condition(src), condition(ex))
    car = chart.positions[70:110, 10:60].reshape(-1, 2)
    assert (car[:, 0] >= 19.5).all() and (car[:, 0] <= 49.5).all()
    assert (car[:, 1] >= 79.5).all() and (car[:, 1] <= 119.5).all()


def test_things_keep_their_proportions_inside():
    """A round piece onto a wide one twice its area: inside, one scale on both axes (a face in a person
    region is not squeezed); a polar chart would stretch 2x across and 1x down."""
    yy, xx = np.mgrid[0:S, 0:S]
    src = (xx - 64) ** 2 + (yy - 64) ** 2 < 30**2
    ex = ((xx - 64) / 60) ** 2 + ((yy - 64) / 30) ** 2 < 1
    pos = shape_map(src, ex)
    dx = (pos[64, 70, 0] - pos[64, 58, 0]) / 12  # exemplar x per output x, at the centre
    dy = (pos[70, 64, 1] - pos[58, 64, 1]) / 12
    assert dx == pytest.approx(np.sqrt(2), rel=0.1) and dy == pytest.approx(np.sqrt(2), rel=0.1)
    border = src & ~ndimage.binary_erosion(src)
    bx, by = np.round(pos[border]).astype(int).T
    assert np.percentile(ndimage.distance_transform_edt(ex)[by, bx], 95) <= 2.0  # outline still to outline


def test_quilted_tiles_are_pieces_each_a_translation():
    """Quilting copies tiles: within a piece the map is a translation at the exemplar's scale, and the
    pieces tell the fold measure where the seams are."""
    rng = np.random.default_rng(1)
    ex_index = np.full((S, S), GRASS, np.uint8)
    ex_index[: S // 4] = SKY
    src_index = np.full((S, S), GRASS, np.uint8)
    src_index[: 3 * S // 4] = SKY
    chart = mask_chart(condition(src_index), condition(ex_index, rng.integers(0, 256, (S, S, 3), dtype=np.uint8)))
    sky = src_index == SKY
    tiles = np.unique(chart.pieces[sky])
    assert len(tiles) > 4 and not set(tiles) & set(np.unique(chart.pieces[~sky]))
    rows, cols = np.nonzero(sky)
    for tile in tiles:
        inside = chart.pieces[rows, cols] == tile
        offset = chart.positions[rows[inside], cols[inside]] - np.stack([rows[inside], cols[inside]], 1)
        assert np.ptp(offset, axis=0).max() < 1e-3  # one translation (exemplar and output share the scale)
    assert fold_fraction(chart.positions, sky, chart.pieces) == 0.0


def _prepared(input_name: str, exemplar_name: str):
    """A mask translator and the two conditions it extracts from two evaluation photos (256)."""
    from core.eval_pairs import picture
    from core.pipeline import Translator

    translator = Translator("mask", engine="training-free")
    source, exemplar = translator.prepare(picture(input_name), picture(exemplar_name), (256, 256))
    return translator, source, exemplar


@pytest.fixture(scope="module")
def photo_masks():
    return _prepared("grace_hopper", "astronaut")


def test_a_face_in_photo_masks_is_mapped_by_its_mesh(photo_masks):
    """Both masks segmented from photos (person / unlabeled): the face goes by FaceMesh, eyes to eyes."""
    _, source, exemplar = photo_masks
    chart = mask_chart(source, exemplar)
    face = chart.region == FACE_REGION
    assert face.sum() > 0.03 * face.size and (source.subject_mask[face]).all()
    ij = np.round(source.mesh[[468, 473], :2]).astype(int)  # the irises
    got = chart.positions[ij[:, 1], ij[:, 0]][:, ::-1]
    assert np.linalg.norm(got - exemplar.mesh[[468, 473], :2], axis=1).max() < 3.0
    # the rest of the person is the engine's (its surround, snapped to the two silhouettes)
    assert not chart.defined[source.subject_mask & ~face].any()


def test_photo_masks_translate_in_layers_with_the_face_in_place(photo_masks):
    """The default mask engine (v2) on photo masks: the output's face is found where the input's is."""
    from core.conditions import extract
    from core.metrics import face_nme

    translator, source, exemplar = photo_masks
    assert translator.engine.version == 2
    result = translator.translate(source, exemplar)
    found = extract("face", result.image, (256, 256)).keypoints
    reference = extract("face", source.image, (256, 256)).keypoints
    assert face_nme(found, reference) < 0.08


def test_a_turned_face_leaves_its_flipped_triangles_to_the_surround():
    """The cameraman's face is in profile: mapped by the mesh as it is onto a frontal face, the far cheek's
    triangles flip (13 % of the face chart). They are left to the engine's surround, which does not fold: the
    chart keeps no fold and the output's map stays under 0.1 %. (A frontal face onto his profile, the other
    way round, is mapped whole: ``test_a_frontal_face_onto_a_profile_is_drawn_whole_by_one_map``.)"""
    from core.eval_pairs import picture
    from core.metrics import fold_fraction as output_folds
    from core.pipeline import Translator

    translator = Translator("mask", engine="training-free")
    source, exemplar = translator.prepare(picture("cameraman"), picture("astronaut/zoomed-out"), (256, 256))
    chart = mask_chart(source, exemplar)
    face = chart.region == FACE_REGION
    assert face.sum() > 0.002 * face.size  # the near side of the face still goes by the mesh
    assert fold_fraction(chart.positions, face) == 0.0
    result = translator.translate(source, exemplar)
    assert output_folds(result.positions, result.mapped) < 0.001


def test_head_circle_is_the_silhouettes_head():
    """A disk head on a neck and wide shoulders: the head circle is the disk, not the torso's larger one."""
    yy, xx = np.mgrid[0:S, 0:S]
    person = ((xx - 50) ** 2 + (yy - 25) ** 2 < 14**2) | ((abs(xx - 50) < 5) & (yy > 30) & (yy < 50)) \
        | ((abs(xx - 55) < 45) & (yy >= 48))
    centre, radius = head_circle(person)
    np.testing.assert_allclose(centre, (50, 25), atol=2)
    assert 12 <= radius <= 15


def test_the_head_circle_is_not_a_hand_raised_above_the_head():
    """A waving figure: the hand (13 px wide here) is the silhouette's top. The circle reaching the top is the
    hand's, under a third of the torso's: the head is found with the arms and legs opened away."""
    import cv2

    person = np.zeros((S, S), np.uint8)
    cv2.circle(person, (62, 32), 9, 1, -1)  # head
    cv2.ellipse(person, (62, 67), (16, 25), 0, 0, 360, 1, -1)  # torso
    cv2.line(person, (75, 50), (87, 30), 1, 7)
    cv2.line(person, (87, 30), (86, 8), 1, 6)  # the forearm raised, the hand above the head
    cv2.line(person, (56, 88), (54, 127), 1, 11)
    cv2.line(person, (69, 88), (72, 127), 1, 11)
    centre, radius = head_circle(person > 0)
    np.testing.assert_allclose(centre, (62, 32), atol=2)
    assert 8 <= radius <= 10


def test_a_painted_person_takes_the_exemplars_face_on_its_head():
    """A painted mask (no photo behind it) of a crouching man: the exemplar's face lands on his head
    (the silhouette's head circle), so the output shows a face there, not a smear of the suit's ring."""
    from PIL import Image

    from core.conditions import extract, from_user_condition
    from core.conditions.ade20k import PERSON
    from core.eval_pairs import picture
    from core.pipeline import Translator, exemplar_condition

    painted = np.asarray(Image.open("assets/mask_cameraman.png").convert("RGB"))
    source = from_user_condition("mask", painted, (256, 256))
    exemplar = exemplar_condition("mask", picture("astronaut"), 256)
    chart = mask_chart(source, exemplar)
    face = chart.region == FACE_REGION
    centre, radius = head_circle(class_index_map(source) == PERSON)
    assert face.sum() > 0.5 * np.pi * radius**2
    rows, cols = np.nonzero(face)
    assert np.hypot(cols.mean() - centre[0], rows.mean() - centre[1]) < radius  # (the hair is above the face)
    result = Translator("mask", engine="training-free").translate(source, exemplar)
    found = extract("face", result.image, (256, 256)).keypoints[:, :2]
    assert np.hypot(*(found.mean(0) - centre)) < radius



def test_a_silhouette_is_kept_solid_without_strands_crumbs_or_pinholes():
    """A body with a thin strand (a tripod's leg), a detached crumb and a pinhole: the strand and the crumb
    are left out (background), the pinhole is the body's, and the body itself keeps its outline."""
    yy, xx = np.mgrid[0:S, 0:S]
    body = (xx - 50) ** 2 + (yy - 70) ** 2 < 30**2
    strand = (abs(xx - 81) <= 0) & (yy > 20) & (yy < 70)  # 1 px wide, touching the body
    crumb = (xx - 110) ** 2 + (yy - 30) ** 2 < 3**2
    pinhole = (abs(xx - 45) <= 1) & (abs(yy - 65) <= 1)
    out = solid((body | strand | crumb) & ~pinhole)
    assert not out[strand & ~body].any() and not out[crumb].any()
    assert out[pinhole].all()
    assert (out & body).sum() > 0.98 * body.sum() and not (out & ~body).any()


def painted_figure(side: int) -> np.ndarray:
    """A painted person (ADE20K person colour on black), standing, one arm raised with a thin stick held above
    the head: the silhouette's topmost pixels are the stick's tip, not the head."""
    import cv2

    from core.conditions.ade20k import PERSON
    from core.conditions.masks import index_to_palette

    index = np.zeros((512, 512), np.uint8)
    cv2.circle(index, (330, 90), 34, PERSON, -1)  # head
    cv2.rectangle(index, (318, 118), (342, 140), PERSON, -1)  # neck
    cv2.ellipse(index, (330, 220), (60, 90), 0, 0, 360, PERSON, -1)  # torso
    cv2.line(index, (285, 160), (200, 250), PERSON, 26)
    cv2.line(index, (375, 160), (450, 100), PERSON, 24)  # the raised arm
    cv2.line(index, (450, 100), (470, 20), PERSON, 3)  # the stick
    cv2.line(index, (305, 290), (290, 500), PERSON, 40)
    cv2.line(index, (355, 290), (380, 500), PERSON, 40)
    index = cv2.resize(index, (side, side), interpolation=cv2.INTER_NEAREST)
    return index_to_palette(index)


def test_a_painted_person_holding_a_stick_takes_the_face_on_its_head():
    """The head circle of a painted person is found on its solid silhouette: not at the tip of a thin stick
    held above the head, where the face came out a few pixels wide and the whole person was filled."""
    from core.conditions import from_user_condition
    from core.eval_pairs import picture
    from core.pipeline import exemplar_condition

    source = from_user_condition("mask", painted_figure(256), (256, 256))
    exemplar = exemplar_condition("mask", picture("grace_hopper"), 256)
    face = mask_chart(source, exemplar).region == FACE_REGION
    rows, cols = np.nonzero(face)
    assert face.sum() > 0.5 * np.pi * 17**2  # the head: a disc of radius 17 at (165, 45)
    assert np.hypot(cols.mean() - 165, rows.mean() - 45) < 17


def test_the_painted_cameraman_on_a_portrait_neither_folds_nor_grows_spikes(monkeypatch):
    """The app's Mask example: the painted cameraman (bent over his camera, full length) onto Grace Hopper
    (head and shoulders). His outline snapped onto hers from a face away and his body pulled into her frame
    folded 0.6 % of the map at 256 (1.9 % at 512); his camera strap and tripod bits came out as dark spikes
    of her jacket beside her head. Now no fold is left to smooth, and those bits show the backdrop. The
    person's fill copies her plain jacket, not her name tag, ribbons or shirt front (twice on the body)."""
    from PIL import Image

    import core.engine_v2 as engine_v2
    from core.conditions import from_user_condition
    from core.conditions.ade20k import PERSON
    from core.eval_pairs import picture
    from core.pipeline import Translator, exemplar_condition

    copied = []  # (picture, where the person's fill may copy from)
    complete = engine_v2.complete

    def recording(image, hole, allowed=None, *args, **kwargs):
        if allowed is not None and image.shape[:2] == hole.shape:
            copied.append(image[allowed].astype(float))
        return complete(image, hole, allowed, *args, **kwargs)

    monkeypatch.setattr(engine_v2, "complete", recording)

    painted = np.asarray(Image.open("assets/mask_cameraman.png").convert("RGB"))
    source = from_user_condition("mask", painted, (256, 256))
    exemplar = exemplar_condition("mask", picture("grace_hopper"), 256)
    result = Translator("mask", engine="training-free").translate(source, exemplar)
    assert not [m for m in result.messages if "folded over" in m]
    person = class_index_map(source) == PERSON
    bits = person & ~solid(person)
    assert bits.sum() > 100
    backdrop = result.image[bits].astype(float)  # Grace Hopper's blue backdrop, not her navy jacket
    assert (backdrop.mean(1) < 60).mean() < 0.15 and backdrop[:, 2].mean() > 150
    (jacket,) = copied
    assert (jacket.mean(1) > 150).mean() < 0.01  # light: tag, collar (13 % when copied as well)


def test_a_painted_scenes_person_takes_the_exemplars_face_and_does_not_fold():
    """A painted scene (sky, grass and a standing person, nothing unlabeled: one layer) onto a portrait photo:
    the person takes the exemplar's face on its head and the rest of its body by the engine's surround, as in
    layered pairs. Before, the things chart squeezed her whole person, face included, into the silhouette
    (1.6 % of the map folded at 512); anchored on the sky's and grass's charts too, the surround folded 10 %."""
    import cv2

    from core.conditions import from_user_condition
    from core.conditions.ade20k import PERSON
    from core.conditions.masks import index_to_palette
    from core.eval_pairs import picture
    from core.pipeline import Translator, exemplar_condition

    index = np.full((256, 256), SKY, np.uint8)
    index[165:] = GRASS
    painted = class_index_map(from_user_condition("mask", painted_figure(256), (256, 256))) == PERSON
    index[cv2.dilate(painted.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = PERSON
    source = from_user_condition("mask", index_to_palette(index), (256, 256))
    exemplar = exemplar_condition("mask", picture("grace_hopper"), 256)
    face = mask_chart(source, exemplar).region == FACE_REGION
    rows, cols = np.nonzero(face)
    assert face.sum() > 0.5 * np.pi * 17**2 and np.hypot(cols.mean() - 165, rows.mean() - 45) < 17
    result = Translator("mask", engine="training-free").translate(source, exemplar)
    assert not [m for m in result.messages if "folded over" in m]


def test_a_class_the_exemplar_lacks_comes_from_its_unlabeled_part_at_the_same_heights():
    """A painted sky over a lawn onto a photo's mask (a person, the rest unlabeled: sky above the horizon,
    grass below it). The sky is taken from the unlabeled rows at the sky's heights, the lawn from those at
    the lawn's: before, both from anywhere in the unlabeled part (the cameraman's grass as the sky)."""
    index = np.full((S, S), SKY, np.int64)
    index[80:] = GRASS
    ex_index = np.zeros((S, S), np.int64)  # unlabeled
    ex_index[30:, 50:80] = class_index("person")
    photo = np.zeros((S, S, 3), np.uint8)
    photo[:50] = (200, 220, 255)  # sky
    photo[50:] = (40, 140, 40)  # grass
    chart = mask_chart(condition(index), condition(ex_index, photo))
    sky_rows = chart.positions[:80][chart.defined[:80]][:, 0]
    grass_rows = chart.positions[80:][chart.defined[80:]][:, 0]
    assert (sky_rows < 80).mean() > 0.99 and (grass_rows >= 80).mean() > 0.99


def test_a_thin_painted_person_is_kept_whole():
    """A person a few pixels wide is all "strand" to ``solid``: kept as painted, not removed (a 5 px wide
    painted person in a layered 256x256 mask became 0 px, with no message); a body with a strand still loses it."""
    from types import SimpleNamespace

    from core.conditions import from_user_condition
    from core.conditions.ade20k import PALETTE, PERSON
    from core.engine_v2 import _subjects

    size = 256
    yy, xx = np.mgrid[0:size, 0:size]
    thin = (abs(xx - 128) <= 2) & (yy > 60) & (yy < 200)  # a 5 px wide figure
    thin |= (xx - 128) ** 2 + (yy - 52) ** 2 <= 5**2  # its head, 11 px across
    out = solid(thin)
    assert out.sum() >= thin.sum() and out[thin].all()
    painted = np.zeros((size, size, 3), np.uint8)
    painted[thin] = PALETTE[PERSON]
    wide = np.zeros_like(painted)
    wide[40:220, 90:170] = PALETTE[PERSON]
    source = from_user_condition("mask", painted, (size, size))
    exemplar = from_user_condition("mask", wide, (size, size))
    subject, _, _ = _subjects("mask", source, exemplar, SimpleNamespace(region=np.zeros((size, size), int)))
    assert subject[thin].mean() > 0.95
    body = (xx - 128) ** 2 + (yy - 140) ** 2 < 50**2
    strand = (abs(xx - 128) <= 1) & (yy > 20) & (yy < 100)
    assert solid(body | strand)[strand & ~body].mean() < 0.1


@pytest.fixture(scope="module")
def onto_a_profile():
    """Grace Hopper (frontal) onto the cameraman, whose face is in profile behind his camera (256)."""
    return _prepared("grace_hopper", "cameraman")


def test_a_frontal_face_onto_a_profile_is_drawn_whole_by_one_map(onto_a_profile):
    """Mesh to mesh, her frontal face took his profile's far half from a strip beside his nose: the face came
    out in pieces. It is mapped whole (one affine map, his mesh's box onto hers), with a note, and no pixel of it
    is drawn from before his face; a frontal pair keeps the mesh."""
    from core.charts.masks import whole_face
    from core.charts.turned import before_the_face

    _, source, exemplar = onto_a_profile
    chart = mask_chart(source, exemplar)
    face = chart.region == FACE_REGION
    assert whole_face(source, exemplar) and face.sum() > 0.05 * face.size
    assert any("drawn whole" in note for note in chart.notes)
    rows, cols = np.nonzero(face)
    design = np.stack([cols, rows, np.ones_like(rows)], 1).astype(np.float64)
    fit, *_ = np.linalg.lstsq(design, chart.positions[rows, cols].astype(np.float64), rcond=None)
    # one map, not triangles: the box map, moved ahead and squeezed across towards the outline (smoothly, by
    # at most 15 %: within 1.5 exemplar pixels of one affine map here)
    assert np.abs(design @ fit - chart.positions[rows, cols]).max() < 1.5
    q = np.round(chart.positions[rows, cols]).astype(int)
    assert not before_the_face(exemplar.mesh, exemplar.size)[q[:, 0], q[:, 1]].any()


def test_a_frontal_pair_keeps_the_mesh(photo_masks):
    from core.charts.masks import whole_face

    _, source, exemplar = photo_masks
    chart = mask_chart(source, exemplar)
    assert not whole_face(source, exemplar) and not any("drawn whole" in note for note in chart.notes)


def test_a_frontal_face_onto_a_profile_draws_no_camera_on_the_head(onto_a_profile):
    """The translation: of the output's person, under 1 % is drawn from the cameraman's person before his face
    (his camera, in his segmentation; 27 % of her face was, mesh to mesh, and the hair beside it), nor from
    before his face at all on her face; the map does not fold."""
    from core.charts.masks import labelled, solid
    from core.charts.turned import before_the_face
    from core.metrics import fold_fraction as output_folds

    translator, source, exemplar = onto_a_profile
    result = translator.translate(source, exemplar)
    before = before_the_face(exemplar.mesh, exemplar.size)
    camera = before & labelled(exemplar)
    assert camera.sum() > 0.002 * camera.size  # his camera is in his person
    q = np.round(result.positions).astype(int)
    q[..., 0] = np.clip(q[..., 0], 0, exemplar.size[0] - 1)
    q[..., 1] = np.clip(q[..., 1], 0, exemplar.size[1] - 1)
    person = solid(labelled(source))
    assert camera[q[..., 0], q[..., 1]][person].mean() < 0.01
    face = mask_chart(source, exemplar).region == FACE_REGION
    assert before[q[..., 0], q[..., 1]][face].mean() < 0.01
    assert output_folds(result.positions, result.mapped) < 0.001


def test_a_profile_drawn_whole_fills_the_front_of_a_wider_head(onto_a_profile):
    """Her head is wider than his profile is deep: its front at the face's heights (ahead of her mesh's middle,
    the way his face looks) was drawn from before his face or his background, a wedge inside her person (13 %
    at 512). The profile is moved ahead and squeezed onto her outline: under 3 % of it is."""
    from core.charts.masks import labelled, solid
    from core.charts.turned import SURFACE, before_the_face, face_frame, half_widths

    translator, source, exemplar = onto_a_profile
    result = translator.translate(source, exemplar)
    mesh = source.mesh[:SURFACE, :2].astype(np.float64)
    across, up, _ = face_frame(mesh)
    right, left = half_widths(exemplar.mesh)
    facing = 1.0 if left < right else -1.0
    yy, xx = np.mgrid[0 : source.size[0], 0 : source.size[1]].astype(np.float64)
    ahead, rise = facing * (xx * across[0] + yy * across[1]), xx * up[0] + yy * up[1]
    front = solid(labelled(source)) & (rise >= (mesh @ up).min()) & (rise <= (mesh @ up).max()) \
        & (ahead > np.median(facing * (mesh @ across)))
    head = labelled(exemplar) & ~before_the_face(exemplar.mesh, exemplar.size)
    q = np.round(result.positions).astype(int)
    on_head = head[np.clip(q[..., 0], 0, exemplar.size[0] - 1), np.clip(q[..., 1], 0, exemplar.size[1] - 1)]
    assert front.sum() > 0.05 * front.size and (~on_head[front]).mean() < 0.03


@pytest.fixture(scope="module")
def opposite_profiles():
    """The cameraman onto his mirror image: two profiles facing opposite ways (256)."""
    from core.eval_pairs import picture
    from core.pipeline import Translator

    translator = Translator("mask", engine="training-free")
    source, exemplar = translator.prepare(picture("cameraman"), picture("cameraman/mirrored"), (256, 256))
    return translator, source, exemplar


def test_opposite_profiles_use_the_exemplar_mirrored(opposite_profiles, onto_a_profile, photo_masks):
    """Two profiles facing opposite ways: "auto" uses the exemplar mirrored, with the note, so the input's nose
    is drawn from the exemplar's nose (mapped right side onto right side, it came from the back of his head: the
    face pointed backwards); "never" keeps it as given. Frontal faces, onto a profile or a frontal face, and a
    painted mask (no photo, no face) are not mirrored."""
    from core.charts.masks import face_mesh
    from core.charts.mirror import prefers_mirror
    from core.charts.turned import CHIN, FOREHEAD, NOSE_TIP
    from core.engine_v2 import MIRROR_NOTE

    translator, source, exemplar = opposite_profiles
    assert prefers_mirror(source, exemplar)
    mesh, ex_mesh = face_mesh(source), face_mesh(exemplar)
    nose = np.round(mesh[NOSE_TIP, 1::-1]).astype(int)  # (row, col)
    height = np.linalg.norm(ex_mesh[FOREHEAD, :2] - ex_mesh[CHIN, :2])
    for mode, mirrored in (("auto", True), ("never", False)):
        result = translator.translate(source, exemplar, mirror=mode)
        assert result.mirrored == mirrored and (MIRROR_NOTE in result.messages) == mirrored
        off = np.linalg.norm(result.positions[nose[0], nose[1]] - ex_mesh[NOSE_TIP, 1::-1]) / height
        assert (off < 0.1) == mirrored, (mode, off)  # auto: his nose; never: behind his face
    for pair in (onto_a_profile, photo_masks):
        assert not prefers_mirror(*pair[1:])
    painted = condition(np.where(np.arange(256)[:, None] > 100, class_index("person"), 0) * np.ones((1, 256), int))
    assert not prefers_mirror(painted, exemplar)
