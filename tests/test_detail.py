"""core.detail: the exemplar's own fine detail where a map enlarges it (nothing where it does not,
the photo's grain at its own scale and turned with the map, never on the eyes and lips), and its edges
upscaled from the photo's own smaller scales (steeper, no ringing, nothing the photo's grid holds)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import core.detail as detail
from core.charts.face import LEFT_EYE, OUTER_LIPS, RIGHT_EYE
from core.detail import add_detail, add_edges, detail_region, enlargement, self_example_upscale

SIDE = 128


def _grain(seed: int = 0, side: int = SIDE) -> np.ndarray:
    """A grey photo of fine random grain around mid-grey (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    grey = 128 + 8 * cv2.GaussianBlur(rng.normal(size=(side, side)).astype(np.float32), (0, 0), 0.6)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _map(scale: float, side: int = SIDE, turn: float = 0.0) -> np.ndarray:
    """(side, side, 2) (row, col) photo positions: the output's centre at the photo's, ``1 / scale``
    photo pixels per output pixel, turned ``turn`` radians."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) - (side - 1) / 2
    c, s = np.cos(turn), np.sin(turn)
    rows = (c * yy - s * xx) / scale + (SIDE - 1) / 2
    cols = (s * yy + c * xx) / scale + (SIDE - 1) / 2
    return np.stack([rows, cols], -1)


def _sampled(photo: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return cv2.remap(photo, positions[..., 1].copy(), positions[..., 0].copy(), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)


def _fine(image: np.ndarray) -> float:
    """Mean absolute top-octave (finest Laplacian band) of the grey picture, inside a margin."""
    grey = image.astype(np.float32).mean(-1)
    low = cv2.pyrUp(cv2.pyrDown(grey), dstsize=grey.shape[::-1])
    return float(np.abs(grey - low)[8:-8, 8:-8].mean())


def test_enlargement_is_the_map_s_scale():
    assert np.allclose(enlargement(_map(2.0))[4:-4, 4:-4], 2.0, atol=1e-3)
    assert np.allclose(enlargement(_map(0.5, turn=0.4))[4:-4, 4:-4], 0.5, atol=1e-3)


def test_nothing_is_added_where_the_map_keeps_the_photo_s_scale():
    photo, positions = _grain(), _map(1.0, turn=0.3)
    image = _sampled(photo, positions)
    out, fraction = add_detail(image, photo, positions, np.ones((SIDE, SIDE), np.float32))
    assert fraction == 0 and np.array_equal(out, image)


def test_an_enlarged_map_gets_the_photo_s_own_grain_back():
    """At 2x the sampled picture has lost much of the photo's top octave; the detail (only above what the
    picture still holds) brings back at least a third of what was lost, never more than the photo has,
    turned or not, where asked only."""
    photo, positions = _grain(), _map(2.0, turn=0.3)
    image = _sampled(photo, positions)
    where = np.zeros((SIDE, SIDE), np.float32)
    where[:, : SIDE // 2] = 1
    out, fraction = add_detail(image, photo, positions, where)
    assert fraction == pytest.approx(0.5, abs=0.02)
    left, right = out[:, : SIDE // 2 - 8], out[:, SIDE // 2 + 8:]
    assert _fine(image) < 0.65 * _fine(photo)  # what the enlargement loses
    lost = _fine(photo) - _fine(image)
    assert _fine(image) + lost / 3 < _fine(left) < 1.1 * _fine(photo)
    assert np.array_equal(right, image[:, SIDE // 2 + 8:])


def test_the_grain_is_copied_at_the_photo_s_scale_and_turned_with_the_map():
    """Horizontal stripes of a 3-pixel period, enlarged 2x under a quarter turn: the added detail is
    vertical stripes of a 3-pixel period (not the map's 6), i.e. the photo's grain, turned like the face."""
    rows = np.arange(SIDE)[:, None]
    stripes = (128 + 40 * np.cos(2 * np.pi * rows / 3) * np.ones((1, SIDE))).astype(np.uint8)
    photo = np.repeat(stripes[..., None], 3, axis=2)
    positions = _map(2.0, turn=np.pi / 2)
    image = np.full((SIDE, SIDE, 3), 128, np.uint8)  # the base itself does not matter here
    out, _ = add_detail(image, photo, positions, np.ones((SIDE, SIDE), np.float32), cell=32)  # (cells: clean spectrum)
    added = out[16:-16, 16:-16, 0].astype(np.float32) - 128
    spectrum = np.abs(np.fft.rfft(added - added.mean(), axis=1)).mean(0)  # along x
    period = added.shape[1] / (1 + np.argmax(spectrum[1:]))
    assert period == pytest.approx(3, abs=0.2)
    across = np.abs(np.diff(added, axis=1)).mean()
    along = np.abs(np.diff(added, axis=0)).mean()
    assert across > 4 * along  # stripes run vertically: they change along x, not along y


def test_detail_region_leaves_out_the_eyes_and_lips():
    mesh = np.zeros((478, 3), np.float32)
    rng = np.random.default_rng(0)
    mesh[:, :2] = rng.uniform(20, 236, (478, 2))
    for contour, (cx, cy) in ((RIGHT_EYE, (80, 100)), (LEFT_EYE, (176, 100)), (OUTER_LIPS, (128, 190))):
        angles = np.linspace(0, 2 * np.pi, len(contour), endpoint=False)
        mesh[list(contour), 0] = cx + 24 * np.cos(angles)
        mesh[list(contour), 1] = cy + 10 * np.sin(angles)
    mapped = np.ones((256, 256), bool)
    mapped[:, :10] = False
    region = detail_region(mapped, mesh)
    assert region[100, 80] == 0 and region[100, 176] == 0 and region[190, 128] == 0
    assert region[100, 104 + 8] == 0  # the margin round an eye
    assert region[40, 128] > 0.99 and region[230, 40] > 0.99
    assert (region[:, :10] == 0).all()
    assert np.all(detail_region(mapped, None)[:, 20:] > 0.99)


def test_engine_adds_the_grain_to_an_enlarged_exemplar_face_only(monkeypatch):
    """Engine v2 (face): a close-up input with a small exemplar face gets detail on the face (stats say
    how much), the eyes untouched; an exemplar face as large as the input's gets none."""
    import core.engine_v2 as engine_v2
    from core.conditions import extract
    from core.eval_pairs import close_up, picture, zoomed_out
    from core.pipeline import exemplar_condition

    size = (256, 256)
    source = extract("face", cv2.resize(close_up(picture("astronaut")), size, interpolation=cv2.INTER_AREA), size)
    small = exemplar_condition("face", zoomed_out(picture("grace_hopper"), keep=0.3), 256)  # ~2x at 256
    engine = engine_v2.TrainingFreeEngineV2()
    with_detail = engine.one(source, small)
    monkeypatch.setattr(engine_v2, "DETAIL", False)
    without = engine.one(source, small)
    assert with_detail.stats[0]["detail_added"] > 0.1 and without.stats[0]["detail_added"] == 0
    changed = (with_detail.image[0] - without.image[0]).abs().amax(0).numpy() > 1.5 / 255
    face = source.subject_mask
    assert changed[face].mean() > 0.3
    eye = np.round(source.mesh[list(RIGHT_EYE), :2]).astype(np.int32)
    inside_eye = np.zeros(size, np.uint8)
    cv2.fillPoly(inside_eye, [eye], 1)
    assert not changed[inside_eye > 0].any()
    monkeypatch.setattr(engine_v2, "DETAIL", True)
    large = exemplar_condition("face", picture("grace_hopper"), 256)
    far = extract("face", cv2.resize(picture("astronaut"), size, interpolation=cv2.INTER_AREA), size)
    assert engine.one(far, large).stats[0]["detail_added"] < 0.001  # a few pixels where the map bends


def test_only_what_the_enlarged_picture_lacks_is_added():
    """At 2x the sampled picture holds frequencies up to a quarter cycle per pixel: the added detail has
    little below that (it would double what the picture shows, at the wrong phase)."""
    photo, positions = _grain(1), _map(2.0)
    image = _sampled(photo, positions)
    out, _ = add_detail(image, photo, positions, np.ones((SIDE, SIDE), np.float32))
    added = out[16:-16, 16:-16, 0].astype(np.float32) - image[16:-16, 16:-16, 0]
    spectrum = np.abs(np.fft.fft2(added)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(added.shape[0]), np.fft.fftfreq(added.shape[1]), indexing="ij"))
    assert spectrum[f < 0.15].sum() < 0.05 * spectrum.sum()  # 0.12 without the high-pass


def _discs(seed: int = 0, side: int = SIDE, blur: float = 0.5) -> np.ndarray:
    """A grey photo (uint8 RGB) of overlapping discs of many greys, edges as a camera draws them (drawn at
    8x, area-reduced, then blurred ``blur`` pixels)."""
    rng = np.random.default_rng(seed)
    big = np.zeros((side * 8, side * 8), np.uint8)
    for _ in range(12):
        centre = tuple(int(v) for v in rng.integers(100, side * 8 - 100, 2))
        cv2.circle(big, centre, int(rng.integers(40, 200)), int(rng.integers(0, 255)), -1)
    grey = cv2.GaussianBlur(cv2.resize(big, (side, side), interpolation=cv2.INTER_AREA), (0, 0), blur)
    return np.repeat(grey[..., None], 3, axis=2)


def _rise(profile: np.ndarray, low: float, high: float) -> int:
    """How many samples of ``profile`` lie between 10 % and 90 % of the way from ``low`` to ``high``."""
    return int(((profile > low + 0.1 * (high - low)) & (profile < low + 0.9 * (high - low))).sum())


def test_self_example_upscale_draws_steeper_edges_without_ringing():
    """A disc's edge upscaled 2.52x (four steps) from the picture's own smaller scales rises over at most two
    thirds of the pixels a bicubic enlargement spreads it over, and stays within the photo's range (no halo)."""
    big = np.zeros((SIDE * 8, SIDE * 8), np.uint8)
    cv2.circle(big, (SIDE * 4, SIDE * 4), 160, 200, -1)
    disc = cv2.GaussianBlur(cv2.resize(big, (SIDE, SIDE), interpolation=cv2.INTER_AREA), (0, 0), 0.5)
    disc = disc.astype(np.float32) + 30  # 30 outside, 230 inside
    up = self_example_upscale(disc, detail.EDGE_STEP ** 4)
    smooth = cv2.resize(disc, up.shape[::-1], interpolation=cv2.INTER_CUBIC)
    middle = up.shape[0] // 2
    left = np.s_[middle, : middle]  # a row across the disc's left edge
    assert up.shape == (323, 323)  # four steps of 2 ** (1 / 3)
    assert _rise(up[left], 30, 230) <= 2 / 3 * _rise(smooth[left], 30, 230)
    assert up.min() >= 29 and up.max() <= 231  # (without the range limit: -7 and 260)


def test_edges_leave_a_map_at_the_photo_s_scale_alone():
    photo, positions = _discs(), _map(1.0, turn=0.3)
    image = _sampled(photo, positions)
    out, fraction = add_edges(image, photo, positions, np.ones((SIDE, SIDE), np.float32))
    assert fraction == 0 and np.array_equal(out, image)


def test_edges_add_only_what_the_enlargement_lacks_and_only_where_asked():
    """At 2.5x the sampled picture holds frequencies up to 0.2 cycles per pixel: little of the added edges lies
    below that (it would change what the photo itself shows: 63 % without the projection and high-pass); the
    edges do get steeper; nothing is added outside ``where``."""
    photo, positions = _discs(), _map(2.5, turn=0.3)
    image = _sampled(photo, positions)
    where = np.zeros((SIDE, SIDE), np.float32)
    where[:, : SIDE // 2 + 16] = 1
    out, fraction = add_edges(image, photo, positions, where)
    assert fraction == pytest.approx(0.625, abs=0.02)
    assert np.array_equal(out[:, SIDE // 2 + 16:], image[:, SIDE // 2 + 16:])
    added = out[16:-16, 16:80, 0].astype(np.float32) - image[16:-16, 16:80, 0]
    assert np.abs(added).mean() > 0.5
    spectrum = np.abs(np.fft.fft2(added)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(added.shape[0]), np.fft.fftfreq(added.shape[1]), indexing="ij"))
    assert spectrum[f < 0.2].sum() < 0.25 * spectrum.sum()


@pytest.mark.parametrize("side, apart", [(96, 60), (128, 100), (128, 180), (160, 140), (160, 260)])
def test_edges_upscale_a_large_crop_within_the_budget(monkeypatch, side, apart):
    """A map enlarging 2.5x two parts of the photo ``apart`` pixels apart reads a crop large for the output: its
    self-example upscale stays within ``EDGE_BUDGET`` times the output's pixels (1.4-1.5x over it when the steps
    were rounded up)."""
    upscaled = []

    def recorded(luma: np.ndarray, factor: float) -> np.ndarray:
        upscaled.append(self_example_upscale(luma, factor))
        return upscaled[-1]

    monkeypatch.setattr(detail, "self_example_upscale", recorded)
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32) / 2.5
    cols[:, side // 2:] += apart  # the right half reads the photo further right
    positions = np.stack([rows + 12, cols + 12], -1)
    image = np.zeros((side, side, 3), np.uint8)
    out, fraction = add_edges(image, _discs(side=480), positions, np.ones((side, side), np.float32))
    assert fraction > 0.9 and len(upscaled) == 1
    assert upscaled[0].size <= detail.EDGE_BUDGET * side * side


def test_engine_draws_steeper_edges_on_an_enlarged_exemplar_face_only(monkeypatch):
    """Engine v2 (face): a close-up input with a small exemplar face gets the steeper edges (stats say how
    much); switched off, none; an exemplar face as large as the input's gets none (nor one enlarged 2x or less)."""
    import core.engine_v2 as engine_v2
    from core.conditions import extract
    from core.eval_pairs import close_up, picture, zoomed_out
    from core.pipeline import exemplar_condition

    size = (256, 256)
    source = extract("face", cv2.resize(close_up(picture("astronaut")), size, interpolation=cv2.INTER_AREA), size)
    small = exemplar_condition("face", zoomed_out(picture("grace_hopper"), keep=0.2), 256)  # ~3x at 256
    engine = engine_v2.TrainingFreeEngineV2()
    monkeypatch.setattr(engine_v2, "DETAIL", False)  # the edges alone
    with_edges = engine.one(source, small)
    monkeypatch.setattr(engine_v2, "EDGES", False)
    without = engine.one(source, small)
    assert with_edges.stats[0]["edges_added"] > 0.2 and without.stats[0]["edges_added"] == 0
    changed = (with_edges.image[0] - without.image[0]).abs().amax(0).numpy() > 1.5 / 255
    assert changed[source.subject_mask].mean() > 0.1
    monkeypatch.setattr(engine_v2, "EDGES", True)
    large = exemplar_condition("face", picture("grace_hopper"), 256)
    far = extract("face", cv2.resize(picture("astronaut"), size, interpolation=cv2.INTER_AREA), size)
    assert engine.one(far, large).stats[0]["edges_added"] < 0.001
