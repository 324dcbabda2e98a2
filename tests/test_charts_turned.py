"""Faces turned too far apart to map mesh to mesh (core/charts/turned.py), on a real face's FaceMesh turned in
3-D about its own vertical axis (a profile made from a frontal face, so every figure is known)."""

from __future__ import annotations

import numpy as np
import pytest

from core.charts.turned import (
    BOX_STRETCH,
    SURFACE,
    before_the_face,
    face_box_affine,
    face_frame,
    face_onto_outline,
    half_widths,
    turned_apart,
)


@pytest.fixture(scope="module")
def frontal() -> np.ndarray:
    from core.conditions.face import detect_keypoints
    from core.eval_pairs import picture

    _, mesh, _ = detect_keypoints(picture("grace_hopper"), (256, 256))
    return mesh.astype(np.float64)


def _turned(mesh: np.ndarray, degrees: float) -> np.ndarray:
    """The mesh turned about the vertical through its centre (FaceMesh's depth is in x's unit): positive
    degrees turn its left half away."""
    t = np.radians(degrees)
    centre = mesh[:SURFACE].mean(0)
    x, z = mesh[:, 0] - centre[0], mesh[:, 2] - centre[2]
    out = mesh.copy()
    out[:, 0] = centre[0] + x * np.cos(t) - z * np.sin(t)
    out[:, 2] = centre[2] + x * np.sin(t) + z * np.cos(t)
    return out


def test_a_frontal_face_has_even_halves_and_a_profile_s_far_half_lies_behind_its_nose(frontal):
    assert np.all((half_widths(frontal) > 0.35) & (half_widths(frontal) < 0.55))
    right, left = half_widths(_turned(frontal, 60))
    assert left < 0 < 0.6 < right  # the nose tip past the far cheek (the cameraman: 0.91, -0.35)


def test_a_frontal_face_onto_a_profile_is_turned_apart_but_not_a_small_turn_or_two_profiles_alike(frontal):
    assert not turned_apart(frontal, frontal)
    assert not turned_apart(frontal, _turned(frontal, 15))  # a mesh map stretches its far half 1.8x
    assert turned_apart(frontal, _turned(frontal, 60))
    assert turned_apart(frontal, _turned(frontal, -60))
    assert not turned_apart(_turned(frontal, 60), _turned(frontal, 55))  # both turned the same way
    assert turned_apart(_turned(frontal, 60), _turned(frontal, -60))  # turned opposite ways
    # A profile input onto a frontal exemplar keeps the mesh: the exemplar's half face is squeezed, not stretched
    assert not turned_apart(_turned(frontal, 60), frontal)


def test_the_whole_face_map_takes_the_input_s_mesh_box_onto_the_exemplar_s(frontal):
    """Frontal onto a profile that is also tilted in the picture: the input's mesh extremes along its own axes
    land on the exemplar's, right side onto right side, and the map keeps the face's proportions within
    BOX_STRETCH."""
    profile = _turned(frontal, 60)
    tilt = np.radians(20)
    rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    profile[:, :2] = (profile[:, :2] - 128) @ rot.T * 0.6 + 140
    m = face_box_affine(frontal, profile)
    mapped = frontal[:SURFACE, :2] @ m[:, :2].T + m[:, 2]
    across, up, height = face_frame(profile)
    got, want = (points @ np.stack([across, up]).T for points in (mapped, profile[:SURFACE, :2]))
    assert np.abs(got.min(0) - want.min(0)).max() < 1.0 and np.abs(got.max(0) - want.max(0)).max() < 1.0
    right_cheek = frontal[234, :2] @ m[:, :2].T + m[:, 2]
    assert np.linalg.norm(right_cheek - profile[234, :2]) < 0.15 * height  # onto its back cheek
    s = np.linalg.svd(m[:, :2], compute_uv=False)
    assert s.max() / s.min() <= BOX_STRETCH + 1e-6


def test_before_the_face_is_past_the_profile_at_each_height(frontal):
    profile = _turned(frontal, 60)
    before = before_the_face(profile, (256, 256))
    ij = np.round(profile[:SURFACE, :2]).astype(int)
    assert not before[ij[:, 1], ij[:, 0]].any()  # nothing of the face itself
    across, up, height = face_frame(profile)
    tip = profile[1, :2]
    assert before[tuple(np.round(tip + 0.15 * height * across).astype(int)[::-1])]
    # a camera held to the eye: past the face's front at the eye's height, yet behind the nose tip's line
    rise = (profile[:SURFACE, :2] - tip) @ up
    eye = (profile[159, :2] - tip) @ up  # the upper lid
    front = ((profile[:SURFACE, :2] - tip) @ across)[np.abs(rise - eye) < 0.03 * height].max()
    assert front < -0.1 * height
    at_the_eye = tip + (front + 0.06 * height) * across + eye * up
    assert before[tuple(np.round(at_the_eye).astype(int)[::-1])]
    assert not before[tuple(np.round(profile[234, :2] - 0.3 * height * across).astype(int)[::-1])]  # behind it


def test_a_profile_mapped_whole_reaches_a_wider_head_s_outline_without_folding(frontal):
    """Frontal onto a profile, in a head (an ellipse) wider than the face's mesh by a fifth of its height on each
    side: the plain box map drew the head's front from before the profile (a wedge of background inside the
    person); moved and squeezed onto the outline, under 3 % of the head at the face's heights is drawn from
    there, the map covers the head ahead of the face's back, never folds (each row is squeezed across only),
    and the back cheek still lands behind the face."""
    from core.charts.folds import jacobian_determinant

    profile = _turned(frontal, 60)
    across, up, height = face_frame(frontal)
    centre = frontal[:SURFACE, :2].mean(0)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float64)
    d = np.stack([xx - centre[0], yy - centre[1]], -1)
    half = np.abs((frontal[:SURFACE, :2] - centre) @ across).max() + 0.2 * height
    head = (d @ across / half) ** 2 + (d @ up / (0.75 * height)) ** 2 < 1
    rise = d @ up
    mesh_rise = (frontal[:SURFACE, :2] - centre) @ up
    at_face = head & (rise > mesh_rise.min()) & (rise < mesh_rise.max())
    before = before_the_face(profile, (256, 256))

    def drawn_before(xy: np.ndarray) -> float:
        q = np.clip(np.round(xy).astype(int), 0, 255)
        return float(before[q[..., 1], q[..., 0]][at_face].mean())

    m = face_box_affine(frontal, profile)
    plain = np.stack([m[0, 0] * xx + m[0, 1] * yy + m[0, 2], m[1, 0] * xx + m[1, 1] * yy + m[1, 2]], -1)
    xy, where = face_onto_outline(frontal, profile, head)
    assert drawn_before(plain) > 0.08
    facing = 1.0 if half_widths(profile)[1] < half_widths(profile)[0] else -1.0
    ahead = facing * (d @ across)
    ahead_of_back = at_face & (ahead > (facing * (frontal[:SURFACE, :2] - centre) @ across).min())
    assert drawn_before(xy) < 0.03 and where[ahead_of_back].mean() > 0.97  # (behind the face: the surround's)
    assert (jacobian_determinant(xy[..., ::-1].astype(np.float32))[where[1:, 1:] & where[:-1, :-1]] > 0).all()
    back = np.round(frontal[234, :2]).astype(int)
    assert np.linalg.norm(xy[back[1], back[0]] - profile[234, :2]) < 0.3 * height
