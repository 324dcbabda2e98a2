"""The face chart: a piecewise-affine map over FaceMesh's own triangulation (eyes, irises, lips exact).

Both sides' 478 FaceMesh points (468 + 2 x 5 iris points) are matched by index, so a mirrored or
tilted face maps by anatomy, not by picture position. Every output pixel inside the input's mesh
takes the affine map of the mesh triangle it lies in (the nearest one to the camera where
triangles overlap, by FaceMesh's depth). The mesh leaves the eye openings and the mouth open; they
are closed with a triangulation of their contour (and the iris points), so irises map exactly too.
Without a mesh (a sketch's 68 landmarks) the same map runs over a Delaunay triangulation of the
68 points. An exemplar that mirrors the input's scene, or whose face is turned the other way, is used
mirrored (``core.charts.mirror``; ``mesh_mirror`` below relabels the mesh).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from core.charts.base import ChartMap
from core.conditions.condition import Condition
from core.conditions.ibug68 import facemesh_to_ibug68
from core.errors import InputError, NoSubjectError

FACE_REGION = 1  # ChartMap.region id of the face
MESH_POINTS = 478
# Contours of the mesh's holes (FaceMesh indices, in order around the hole) and the points inside them.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)
HOLES = ((RIGHT_EYE, RIGHT_IRIS), (LEFT_EYE, LEFT_IRIS), (INNER_LIPS, ()))
# The face oval, in order around the face (FaceMesh's FACEMESH_FACE_OVAL as a closed loop).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


# FaceMesh's points on the face's midline (their own mirror images). The canonical mesh is indexed so
# that the other points below 248, in increasing order, mirror 248..467 in increasing order.
MIDLINE = (0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 94, 151, 152, 164, 168, 175, 195, 197,
           199, 200)


@lru_cache(maxsize=1)
def mesh_mirror() -> np.ndarray:
    """(478,) FaceMesh index of each point's mirror image (left eye <-> right eye, ...; an involution)."""
    mirror = np.arange(MESH_POINTS)
    side = sorted(set(range(248)) - set(MIDLINE))
    mirror[side], mirror[248:468] = np.arange(248, 468), side
    for a, b in zip(RIGHT_IRIS, (473, 476, 475, 474, 477)):  # centre, then around: the sides swap
        mirror[a], mirror[b] = b, a
    return mirror


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """(T, 3) FaceMesh vertex triples: the triangles of mediapipe's tessellation (its edge list's
    3-cliques, each sorted)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    neighbours: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    triangles = {tuple(sorted((a, b, c))) for a in neighbours for b in neighbours[a] if b > a
                 for c in neighbours[a] & neighbours[b] if c > b}
    return np.array(sorted(triangles), np.int32)


def _hole_triangles(points: np.ndarray) -> np.ndarray:
    """Triangles closing the eye openings and the mouth: Delaunay of each hole's contour (+ iris
    points) in the input's positions, keeping those whose centre lies inside the contour."""
    out = []
    for contour, inner in HOLES:
        idx = np.array(contour + inner)
        pts = points[idx, :2]
        if np.ptp(pts[:, 0]) < 1e-3 or np.ptp(pts[:, 1]) < 1e-3:
            continue
        try:
            tri = Delaunay(pts).simplices
        except Exception:  # degenerate (a closed eye squeezed to a line): the mesh around it still maps
            continue
        poly = points[list(contour), :2].astype(np.float32)
        for t in tri:
            centre = pts[t].mean(0)
            if cv2.pointPolygonTest(poly, (float(centre[0]), float(centre[1])), False) > 0:
                out.append(idx[t])
    return np.array(out, np.int32).reshape(-1, 3)


def piecewise_affine(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, size: tuple[int, int],
                     depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map every pixel of ``size`` inside the triangles on ``src`` (N, 2) x, y to ``dst`` (N, 2).

    Returns positions (H, W, 2) float32 (row, col) in ``dst`` pixels, defined (H, W) bool, and the
    fraction of covered pixels whose triangle flips orientation between the two sides (a fold).
    Overlapping triangles (a turned face) are drawn far to near by ``depth`` (N,) so the nearest wins.
    """
    h, w = size
    s = src[triangles, :2].astype(np.float64)  # (T, 3, 2)
    d = dst[triangles, :2].astype(np.float64)
    area_s = _signed_area(s)
    area_d = _signed_area(d)
    keep = np.abs(area_s) > 1e-6
    order = np.nonzero(keep)[0]
    if depth is not None:
        order = order[np.argsort(-depth[triangles[order]].mean(1), kind="stable")]
    ids = np.full((h, w), -1, np.int32)
    shift = 4
    for t in order:
        cv2.fillConvexPoly(ids, np.round(s[t] * (1 << shift)).astype(np.int32), int(t), cv2.LINE_8, shift)
    defined = ids >= 0
    affine = _triangle_affines(s, d, keep)  # (T, 3, 2): [x, y, 1] @ A = dst point
    rows, cols = np.nonzero(defined)
    a = affine[ids[rows, cols]]  # (M, 3, 2)
    x = cols * a[:, 0, 0] + rows * a[:, 1, 0] + a[:, 2, 0]
    y = cols * a[:, 0, 1] + rows * a[:, 1, 1] + a[:, 2, 1]
    positions = np.zeros((h, w, 2), np.float32)
    positions[rows, cols, 0] = y
    positions[rows, cols, 1] = x
    flipped = (np.sign(area_s) != np.sign(area_d))[ids[rows, cols]]
    folds = float(flipped.mean()) if len(rows) else 0.0
    return positions, defined, folds


def _triangle_affines(s: np.ndarray, d: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(T, 3, 2) affine maps taking each source triangle (T, 3, 2) onto its destination, in closed form
    (barycentric coordinates; no LAPACK call per batch). Degenerate triangles (not ``keep``) get 0."""
    a, b, c = s[:, 0], s[:, 1], s[:, 2]
    e1, e2 = b - a, c - a  # (T, 2)
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = np.where(keep, det, 1.0)
    # x - a = u e1 + v e2  =>  (u, v) = M (x - a) with M = inverse([e1 e2]).
    m = np.stack([np.stack([e2[:, 1], -e2[:, 0]], 1), np.stack([-e1[:, 1], e1[:, 0]], 1)], 1) / det[:, None, None]
    f1, f2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]  # destination edges
    # dst = d0 + u f1 + v f2 = d0 + [f1 f2] M (x - a): linear part L = [f1 f2] M (2x2, acting on column x).
    lin = np.stack([f1, f2], 2) @ m  # (T, 2, 2)
    shift = d[:, 0] - np.einsum("tij,tj->ti", lin, a)
    out = np.concatenate([lin.transpose(0, 2, 1), shift[:, None]], axis=1)  # (T, 3, 2) for row vectors
    out[~keep] = 0
    return out


def _signed_area(tri: np.ndarray) -> np.ndarray:
    """(T, 3, 2) -> (T,) signed areas (positive = counter-clockwise in x-right, y-down pixels... either
    way, the same sign convention on both sides)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))


def face_points(cond: Condition) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A condition's face points (N, 2) and depths (N,) (FaceMesh), or its 68 landmarks, or None."""
    if cond.mesh is not None and len(cond.mesh) == MESH_POINTS:
        return np.asarray(cond.mesh[:, :2], np.float64), np.asarray(cond.mesh[:, 2], np.float64)
    if cond.keypoints is not None and cond.task == "face" and (cond.keypoints[:, 2] > 0).sum() >= 10:
        return np.asarray(cond.keypoints[:, :2], np.float64), None
    return None


def face_chart(source: Condition, exemplar: Condition, allow_partial: bool = False) -> ChartMap:
    """The face chart from ``source`` (output size) to ``exemplar`` (its own size): positions in the
    exemplar condition's pixels. Raises ``NoSubjectError`` naming the side without a face (unless
    ``allow_partial``, which returns an empty chart listing "face" as missing)."""
    h, w = source.size
    empty = ChartMap(np.zeros((h, w, 2), np.float32), np.zeros((h, w), bool), np.zeros((h, w), np.float32),
                     np.zeros((h, w), np.int16))
    src, ex = face_points(source), face_points(exemplar)
    if src is None:
        raise NoSubjectError("The input has no face: use a photo or sketch where a face is clearly visible.")
    if ex is None:
        if not allow_partial:
            raise NoSubjectError("The exemplar has no face, so there is nothing to paint the input's face "
                                 "with: choose an exemplar photo or painting that shows a face (or allow a "
                                 "partial result).")
        empty.missing.append("face")
        empty.notes.append("The exemplar shows no face: only the surroundings were mapped.")
        return empty
    src_pts, ex_pts, depth = corresponding_points(source, exemplar)
    if len(src_pts) == MESH_POINTS:
        triangles = np.concatenate([mesh_triangles(), _hole_triangles(src_pts)])
    else:  # a sketch's landmarks: the 68 iBUG points shared by both sides
        if len(src_pts) < 10:
            raise InputError("Too few face landmarks are shared by the input and the exemplar to map the face.")
        triangles = Delaunay(src_pts).simplices.astype(np.int32)
    positions, defined, folds = piecewise_affine(src_pts, ex_pts, triangles, (h, w), depth)
    chart = ChartMap(positions, defined, defined.astype(np.float32), np.where(defined, FACE_REGION, 0).astype(np.int16))
    if folds > 0.02:
        chart.notes.append(f"The two faces are turned differently: {folds:.0%} of the face folds and is smoothed.")
    return chart


def corresponding_points(source: Condition, exemplar: Condition
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The same face points on both sides, (N, 2) x, y each, and the input's depths: FaceMesh's 478
    when both have a mesh, else the 68 iBUG points both show (a sketch's landmarks against a photo's
    mesh are matched by name, never by index). Both sides must have a face (``face_points``)."""
    (src_pts, src_depth), (ex_pts, _) = face_points(source), face_points(exemplar)
    if len(src_pts) == MESH_POINTS and len(ex_pts) == MESH_POINTS:
        return src_pts, ex_pts, src_depth
    src_pts, ex_pts = _ibug(source, src_pts), _ibug(exemplar, ex_pts)
    both = np.ones(68, bool)
    for cond in (source, exemplar):
        if cond.keypoints is not None and len(cond.keypoints) == 68:
            both &= cond.keypoints[:, 2] > 0
    return src_pts[both], ex_pts[both], None


def _ibug(cond: Condition, pts: np.ndarray) -> np.ndarray:
    """The 68 iBUG points of a condition (from its mesh when it has one)."""
    if len(pts) == MESH_POINTS:
        return facemesh_to_ibug68(pts)
    return pts


def oval(cond: Condition) -> np.ndarray | None:
    """(M, 2) x, y points around the face (the mesh's face oval, or the 68 points' jaw and brows)."""
    found = face_points(cond)
    if found is None:
        return None
    pts = found[0]
    if len(pts) == MESH_POINTS:
        return pts[list(FACE_OVAL)]
    return pts[list(range(17)) + list(range(26, 16, -1))]
