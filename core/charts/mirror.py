"""Mirror images: engine v2 uses an exemplar mirrored when it mirrors the input's scene, or shows the face
turned the other way, so that the charts, which map by anatomy (right eye to right eye, right arm to right
arm), do not paint the input with the exemplar's mirror image.

    mirror_condition(cond)         the condition of the same picture flipped left-right, its points
                                   relabelled by anatomy (face mesh, 68 landmarks, body joints, hands)
    prefers_mirror(src, ex)        the automatic rule (photo edges carried over by the closest similarity,
                                   and, for faces, how much the face has to bend; for masks, that only)
    uses_mirror(mode, src, ex)     a call's ``mirror`` setting ("auto", "never", "always") -> bool

A mirrored exemplar also mirrors any text it shows: ``mirror="never"`` keeps it as given
(``core.vocabulary.MIRROR_MODES``).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from core.charts.face import MESH_POINTS, mesh_mirror
from core.charts.masks import face_mesh
from core.charts.surround import apply_affine, fit_similarity
from core.conditions.condition import Condition
from core.conditions.face import photo_edges
from core.conditions.ibug68 import facemesh_to_ibug68
from core.limits import check_choice
from core.vocabulary import MIRROR_MODES

MIRROR_EDGE_RATIO = 0.75  # mirror when the photo edges fit this much better mirrored ...
MIRROR_SHAPE_RATIO = 0.5  # ... or the face's shape does (a face turned the other way) ...
MIRROR_MATCH = 0.5  # ... or the pictures, small and blurred, correlate at least this much mirrored ...
MIRROR_MATCH_GAIN = 0.2  # ... and by this much more than as given
MATCH_SIDE = 64  # the pictures' longer side for that correlation
MATCH_SHIFT = 3  # shifts tried around the points' similarity (pixels at MATCH_SIDE: detected joints move a few)
# COCO-18 index of each joint's mirror image (right shoulder <-> left shoulder, ...; nose and neck stay).
COCO18_MIRROR = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)
# iBUG-68 index of each landmark's mirror image (jaw reversed, brows, eye and mouth contours swapped).
IBUG68_MIRROR = (*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, *range(35, 30, -1),
                 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, *range(54, 47, -1), *range(59, 54, -1),
                 *range(64, 59, -1), 67, 66, 65)

_last: tuple[Condition, Condition] | None = None  # the last exemplar mirrored and its mirror (a clip shares one)


def uses_mirror(mode: str, source: Condition, exemplar: Condition) -> bool:
    """Whether engine v2 uses ``exemplar`` mirrored under a call's ``mirror`` setting (``MIRROR_MODES``)."""
    check_choice("mirror setting", mode, MIRROR_MODES)
    return mode == "always" or (mode == "auto" and prefers_mirror(source, exemplar))


def mirror_points(points: np.ndarray, width: int, order: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """(N, 2+) x, y[, ...] points of a picture ``width`` wide -> the same points of its mirror image,
    relabelled by ``order`` (each point's mirror's index), so point i stays the same anatomical point."""
    out = np.array(points, np.float32)
    out[:, 0] = width - 1 - out[:, 0]
    return out[np.asarray(order)]


def mirror_condition(cond: Condition) -> Condition:
    """The condition of the same picture flipped left-right: pictures and masks flipped, points
    relabelled by anatomy (its right eye or right shoulder is the given picture's left one, mirrored).
    A pose label is drawn again (its colours and channels say left and right). The last result is kept."""
    global _last
    if _last is not None and _last[0] is cond:
        return _last[1]
    w = cond.size[1]

    def flip(picture: np.ndarray | None) -> np.ndarray | None:  # (H, W, ...) or (P, H, W) with ``axis``
        return None if picture is None else np.ascontiguousarray(np.asarray(picture)[:, ::-1])

    mesh = cond.mesh
    if mesh is not None and len(mesh) == MESH_POINTS:
        mesh = mirror_points(mesh, w, mesh_mirror())
    keypoints = cond.keypoints
    if keypoints is not None and cond.task == "face":
        keypoints = mirror_points(keypoints, w, IBUG68_MIRROR)
        if mesh is not None and len(mesh) == MESH_POINTS:  # the 68 points are read off the mesh
            keypoints[:, :2] = facemesh_to_ibug68(mesh)
    elif keypoints is not None and cond.task == "pose":
        keypoints = mirror_points(keypoints, w, COCO18_MIRROR)
    hands = None if cond.hands is None else np.stack([mirror_points(hand, w, range(len(hand)))
                                                     for hand in cond.hands[::-1]])  # right <-> left
    shared = {"image": flip(cond.image), "photo": flip(cond.photo), "mesh": mesh, "keypoints": keypoints,
              "hands": hands, "body_mask": flip(cond.body_mask)}
    if cond.task == "pose" and keypoints is not None:  # drawn again (left and right have their own colours)
        from core.conditions.pose import skeleton_fields

        drawn = cond.subject_mask is not None and np.array_equal(cond.subject_mask, cond.preview.any(axis=2))
        label, preview, parts = skeleton_fields(keypoints, cond.size)
        mirrored = replace(cond, label=label, preview=preview, parts=parts,
                           subject_mask=preview.any(axis=2) if drawn else flip(cond.subject_mask), **shared)
    else:
        mirrored = replace(cond, label=cond.label.flip(-1), preview=flip(cond.preview),
                           subject_mask=flip(cond.subject_mask),
                           parts=None if cond.parts is None else np.ascontiguousarray(cond.parts[..., ::-1]), **shared)
    _last = (cond, mirrored)
    return mirrored


def prefers_mirror(source: Condition, exemplar: Condition) -> bool:
    """Whether the exemplar should be used mirrored: when it is a mirror image of the input's scene, i.e.
    carried over by the similarity closest to the subjects' points, mirrored, either its photo edges fit
    the input's (hair, clothes, background; a face's own excluded) clearly better than as given, or the
    two pictures, small and blurred, correlate well and clearly better than as given (body joints are too
    few and noisy to align edges); or, for faces, when the mirrored face's shape needs clearly less bending
    (a face turned the other way: mapping the near cheek onto the far one would stretch it). Otherwise,
    and without photos and points on both sides, the subject maps by anatomy as given.
    A mask pair is mirrored only for a face turned the other way (``face_turned_other_way``)."""
    if source.image is None or exemplar.image is None:
        return False
    if source.task == "mask":
        return face_turned_other_way(source, exemplar)
    points = _shared_points(source, exemplar)
    if points is None:
        return False
    src, ex, flipped = points
    if source.task == "face" and _bends_less_mirrored(src, ex, flipped):
        return True
    edges = photo_edges(np.asarray(source.image))
    if source.task == "face" and source.subject_mask is not None:  # the input's surroundings only
        edges &= ~(cv2.dilate(source.subject_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
    ex_edges = photo_edges(np.asarray(exemplar.image)).astype(np.uint8)
    given, mirrored = fit_similarity(src, ex), fit_similarity(src, flipped)
    if _edge_misfit(edges, np.ascontiguousarray(ex_edges[:, ::-1]), mirrored) < \
            MIRROR_EDGE_RATIO * _edge_misfit(edges, ex_edges, given):
        return True
    match = _picture_match(source.image, exemplar.image[:, ::-1], mirrored)
    return match >= MIRROR_MATCH and match >= _picture_match(source.image, exemplar.image, given) + MIRROR_MATCH_GAIN


def face_turned_other_way(source: Condition, exemplar: Condition) -> bool:
    """Mask pairs: whether both photos show a face (FaceMesh, found once and kept on the conditions) and the
    exemplar's, mirrored, needs clearly less bending onto the input's (two profiles facing opposite ways: the
    exemplar's face would be drawn facing backwards). A mask's scene is not compared (photo edges, the blurred
    pictures): the exemplar's background is reframed, not matched to the input's, and the person's silhouette,
    which fills most of a mask's picture, made a frontal astronaut correlate 0.47 with the mirrored cameraman
    (0.22 as given), near ``MIRROR_MATCH``, though neither mirrors the other. A scene without a face
    (a painted one, a person seen from behind) maps class to class as given."""
    if face_mesh(exemplar) is None or face_mesh(source) is None:  # (the order the mask chart looks)
        return False
    points = _shared_points(source, exemplar)
    return points is not None and _bends_less_mirrored(*points)


def _bends_less_mirrored(src: np.ndarray, ex: np.ndarray, flipped: np.ndarray) -> bool:
    """Whether a face's points (N, 2) fit the exemplar's mirrored ``flipped`` clearly better than as given ``ex``
    (``MIRROR_SHAPE_RATIO``): the exemplar's face is turned the other way."""
    return _shape_misfit(src, flipped) < MIRROR_SHAPE_RATIO * _shape_misfit(src, ex)


def _shared_points(source: Condition, exemplar: Condition) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The subject's points both sides show: the input's (N, 2), the exemplar's as given and mirrored (its
    picture flipped, the points relabelled), x, y; None with fewer than 3 (or no points)."""
    w = exemplar.size[1]
    if source.mesh is not None and exemplar.mesh is not None:  # faces: the mesh without its irises
        src = np.asarray(source.mesh[:468, :2], np.float64)
        ex = np.asarray(exemplar.mesh[:, :2], np.float64)
        return src, ex[:468], mirror_points(ex, w, mesh_mirror())[:468].astype(np.float64)
    if source.task != "pose" or source.keypoints is None or exemplar.keypoints is None:
        return None
    src, ex = np.asarray(source.keypoints, np.float64), np.asarray(exemplar.keypoints, np.float64)
    flipped = mirror_points(ex, w, COCO18_MIRROR).astype(np.float64)
    both = (src[:, 2] > 0) & (ex[:, 2] > 0) & (flipped[:, 2] > 0)
    if both.sum() < 3:
        return None
    return src[both, :2], ex[both, :2], flipped[both, :2]


def _shape_misfit(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance (in ``dst`` units over its scale) left after the closest similarity src -> dst."""
    m = fit_similarity(src, dst)
    rest = src @ m[:, :2].T + m[:, 2] - dst
    return float(np.sqrt((rest**2).sum(1).mean() / max(abs(np.linalg.det(m[:, :2])), 1e-12)))


def _picture_match(picture: np.ndarray, ex_picture: np.ndarray, similarity: np.ndarray) -> float:
    """Normalised cross-correlation of the grey ``picture`` (H, W, 3) and ``ex_picture`` (h, w, 3) carried
    over by ``similarity`` (picture x, y -> ex_picture x, y), both at MATCH_SIDE (area-averaged), best over
    shifts of up to MATCH_SHIFT pixels, where they overlap (at least a third of the picture; else -1)."""
    def small(rgb: np.ndarray) -> tuple[np.ndarray, float]:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
        scale = MATCH_SIDE / max(grey.shape)
        size = (max(8, round(grey.shape[1] * scale)), max(8, round(grey.shape[0] * scale)))
        return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), scale

    (a, sa), (b, sb) = small(picture), small(ex_picture)
    m = similarity * sb
    m[:, :2] /= sa  # small picture x, y -> small exemplar x, y
    best = -1.0
    for dy in range(-MATCH_SHIFT, MATCH_SHIFT + 1):
        for dx in range(-MATCH_SHIFT, MATCH_SHIFT + 1):
            shifted = m + np.array([[0, 0, dx], [0, 0, dy]])
            carried = cv2.warpAffine(b, shifted, a.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
            both = np.isfinite(carried)
            if both.mean() < 1 / 3:
                continue
            x, y = a[both] - a[both].mean(), carried[both] - carried[both].mean()
            best = max(best, float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum() + 1e-9)))
    return best


def _edge_misfit(edges: np.ndarray, ex_edges: np.ndarray, similarity: np.ndarray, reach: float = 0.05) -> float:
    """Mean distance (over the output's longer side, capped at ``reach``) from the input's ``edges`` (H, W)
    bool to the exemplar's ``ex_edges`` (h, w) uint8 carried over by ``similarity`` (output x, y ->
    exemplar x, y), over the input edges that land inside the exemplar's frame."""
    h, w = edges.shape
    eh, ew = ex_edges.shape
    at = apply_affine(similarity, (h, w))
    ys, xs = np.ascontiguousarray(at[..., 0]), np.ascontiguousarray(at[..., 1])
    carried = cv2.remap(ex_edges, xs, ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
    inside = (xs >= 0) & (xs <= ew - 1) & (ys >= 0) & (ys <= eh - 1)
    if not (edges & inside).any():
        return reach
    distance = cv2.distanceTransform((~carried).astype(np.uint8), cv2.DIST_L2, 5) / max(h, w)
    return float(np.minimum(distance[edges & inside], reach).mean())
