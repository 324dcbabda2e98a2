"""Faces turned too far apart to be mapped mesh to mesh (a frontal face onto a profile), and the map used instead.

FaceMesh fits its whole mesh to a face turned away: the far cheek and eye are pressed into a strip beside the
nose, and past the nose lies whatever the face is turned towards (the cameraman's camera). Mapped triangle to
triangle, a frontal input's far half is drawn from that strip: the face comes out cut into pieces with what lies
before it stretched across. So when one half of the exemplar's face is far narrower than the same half of the
input's (``turned_apart``), the exemplar's face is mapped whole (``face_box_affine``): the box its mesh spans in
its own frame (across: back cheek to nose tip for a profile; down: chin to forehead) onto the input's, so its
face stays one face in its own proportions and nothing before its nose is drawn.

    face_frame(points)                  the face's axes: across (right cheek -> left) and up (chin -> forehead)
    half_widths(points)                 each half's width, cheek to nose tip, in face heights
    turned_apart(src, ex)               whether the mesh map would stretch a half of the exemplar's face
    face_box_affine(src, ex)            (2, 3) output x, y -> exemplar x, y: mesh box onto mesh box
    profile_front(points)               which way a turned face faces, and how far ahead it reaches at each height
    before_the_face(points, size)       what lies before a turned face (not its person's to show)
    face_onto_outline(src, ex, person)  the box map squeezed at each height so the profile reaches the outline
"""

from __future__ import annotations

import cv2
import numpy as np

RIGHT_CHEEK, LEFT_CHEEK = 234, 454  # FaceMesh points on the face oval at the cheeks (the person's right, left)
NOSE_TIP = 1
FOREHEAD, CHIN = 10, 152  # the face oval's top and bottom on the midline
SURFACE = 468  # FaceMesh's surface points (the 10 iris points after them are inside the eyes)
HALF_FLOOR = 0.05  # a half narrower than this (in face heights) counts as this wide: a profile's far half is
# behind its nose (negative), and two profiles turned the same way match
HALF_STRETCH = 2.5  # a half of the input's face this many times wider than the exemplar's (a turn of about 25
# degrees from a frontal face: Grace Hopper's mesh turned in 3-D): mapped whole instead of mesh to mesh
BOX_STRETCH = 1.5  # the whole face's map stretches across at most this much more (or less) than down
FRONT_MARGIN = 0.03  # what lies this far (face heights) past a turned face's mesh is before the face ...
BELOW_CHIN, ABOVE_FOREHEAD = 0.3, 1.0  # ... between this far below its chin and above its forehead
PROFILE_BINS = 16  # heights at which a turned face's front (its profile) is read off the mesh
SHIFT_QUANTILE = 0.5  # a face mapped whole onto a wider head is moved ahead by its gap to the outline at this
# quantile of its heights (0.7 cut the nose off at the outline; 0.35 left the wedge before the mouth) ...
SHIFT_MAX = 0.25  # ... by at most this (face heights)
SQUEEZE = 0.85  # ... and the rest of the gap at each height by squeezing the map across (towards the face's
# back) to at most this
SQUEEZE_SMOOTH = 0.3  # smoothed over this many face heights (the nose stays before the lips; features are not sheared)


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A face's unit axes across (towards its left cheek) and up (chin to forehead), x, y each, and its height
    (chin to forehead), from (N >= 468, 2+) FaceMesh points."""
    p = np.asarray(points, np.float64)[:, :2]
    up = p[FOREHEAD] - p[CHIN]
    height = float(np.linalg.norm(up))
    up = up / max(height, 1e-6)
    across = np.array([-up[1], up[0]])
    if across @ (p[LEFT_CHEEK] - p[RIGHT_CHEEK]) < 0:
        across = -across
    return across, up, max(height, 1e-6)


def half_widths(points: np.ndarray) -> np.ndarray:
    """(2,) the width of the face's right and left half, cheek to nose tip across the face, in face heights:
    about 0.45 each for a frontal face; a half turned away is narrow, or negative when it lies behind the nose."""
    p = np.asarray(points, np.float64)[:, :2]
    across, _, height = face_frame(p)
    return np.array([across @ (p[NOSE_TIP] - p[RIGHT_CHEEK]), across @ (p[LEFT_CHEEK] - p[NOSE_TIP])]) / height


def turned_apart(src_points: np.ndarray, ex_points: np.ndarray) -> bool:
    """Whether a half of the input's face is more than ``HALF_STRETCH`` times as wide as the same half of the
    exemplar's (FaceMesh points, x, y): the exemplar is turned away from the input's view, and a mesh map would
    stretch its narrow half, and what lies before it, across the input's."""
    src, ex = (np.maximum(half_widths(p), HALF_FLOOR) for p in (src_points, ex_points))
    return bool((src > HALF_STRETCH * ex).any())


def face_box_affine(src_points: np.ndarray, ex_points: np.ndarray) -> np.ndarray:
    """(2, 3) output x, y -> exemplar x, y: the box the input's face mesh spans in its own frame onto the
    exemplar's (across: from one side of the mesh to the other, for a profile its back cheek to its nose tip;
    down: chin to forehead), right side onto right side. Across is scaled within ``BOX_STRETCH`` of down,
    centre onto centre, so a face is not drawn out of its proportions."""
    boxes = []
    for points in (src_points, ex_points):
        p = np.asarray(points, np.float64)[:SURFACE, :2]
        across, up, _ = face_frame(p)
        frame = np.stack([across, up])  # rows: the axes
        coords = p @ frame.T
        boxes.append((frame, coords.min(0), coords.max(0)))
    (src_frame, src_lo, src_hi), (ex_frame, ex_lo, ex_hi) = boxes
    scale = (ex_hi - ex_lo) / np.maximum(src_hi - src_lo, 1e-6)  # across, up
    scale[0] = np.clip(scale[0], scale[1] / BOX_STRETCH, scale[1] * BOX_STRETCH)
    src_mid, ex_mid = (src_lo + src_hi) / 2, (ex_lo + ex_hi) / 2
    # x -> frame coordinates -> scaled about the box centres -> the exemplar's axes
    linear = ex_frame.T @ np.diag(scale) @ src_frame
    shift = ex_frame.T @ (ex_mid - scale * src_mid)
    return np.concatenate([linear, shift[:, None]], axis=1)


def profile_front(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """A turned face's profile read off its FaceMesh points (x, y): the direction it faces along its ``face_frame``
    across axis (+1 or -1: towards its narrower half), and at ``PROFILE_BINS`` heights (rise along its up axis,
    pixels) how far ahead its mesh reaches there (forehead, brow, nose, lips, chin), pixels along that direction.
    Heights with no mesh point are left out."""
    p = np.asarray(points, np.float64)[:SURFACE, :2]
    across, up, _ = face_frame(p)
    right, left = half_widths(p)
    facing = 1.0 if left < right else -1.0  # towards the narrower half
    ahead, rise = facing * (p @ across), p @ up
    edges = np.linspace(rise.min(), rise.max(), PROFILE_BINS + 1)
    slot = np.clip(np.searchsorted(edges, rise, side="right") - 1, 0, PROFILE_BINS - 1)
    front = np.full(PROFILE_BINS, -np.inf)
    np.maximum.at(front, slot, ahead)
    found = np.isfinite(front)
    return facing, ((edges[:-1] + edges[1:]) / 2)[found], front[found]


def _pixels_in_frame(size: tuple[int, int], across: np.ndarray, up: np.ndarray, facing: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) each: every pixel's coordinates along a face's frame (``face_frame``'s axes): how far ahead (along
    ``facing`` x across) and how high (along up), pixels."""
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    return facing * (xx * across[0] + yy * across[1]), xx * up[0] + yy * up[1]


def before_the_face(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: what lies before a turned face: past its profile (``profile_front``; beyond its ends, the
    end's), on the side of its narrower half, by ``FRONT_MARGIN``; from ``BELOW_CHIN`` under its chin to
    ``ABOVE_FOREHEAD`` over its forehead (face heights). Read at each height, so a camera held to the eye,
    behind the tip of the nose, is before the face too. No head is there: only what the face is turned to
    (the cameraman's camera, in his person's segmentation) or the background."""
    p = np.asarray(points, np.float64)[:SURFACE, :2]
    across, up, height = face_frame(p)
    facing, rises, front = profile_front(p)
    rise = p @ up
    pixel_ahead, pixel_rise = _pixels_in_frame(size, across, up, facing)
    profile = np.interp(pixel_rise, rises, front)  # the ends' front beyond them
    return ((pixel_ahead > profile + FRONT_MARGIN * height)
            & (pixel_rise > rise.min() - BELOW_CHIN * height) & (pixel_rise < rise.max() + ABOVE_FOREHEAD * height))


def face_onto_outline(src_points: np.ndarray, ex_points: np.ndarray, person: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The exemplar's face mapped whole onto the input's head, reaching its outline: (H, W, 2) output x, y ->
    exemplar x, y, and (H, W) bool where it applies (the input's mesh hull, and its ``person`` ahead of it at the
    face's heights). ``face_box_affine`` puts the profile inside the input's face, but a frontal head is wider
    than a profile is deep: between the profile's front and the input's outline (the hair beside her face, the
    nook before his mouth) lay what stands before his face, shown as background, a wedge inside the person.
    So the map is moved ahead as a whole (``SHIFT_QUANTILE``: the back of her face then takes his ear and the hair
    behind it), and the rest of the gap at each height is closed by squeezing the map across towards the face's
    back (``SQUEEZE``, smoothed over ``SQUEEZE_SMOOTH`` face heights). Squeezing across, and only across, at
    each height cannot fold the map."""
    src = np.asarray(src_points, np.float64)[:SURFACE, :2]
    h, w = person.shape
    affine = face_box_affine(src_points, ex_points)
    across, up, height = face_frame(src)
    facing, ex_rises, ex_front = profile_front(ex_points)
    # The box map is diagonal in the two faces' frames: across -> across, up -> up (ex = scale * src + shift).
    ex_across, ex_up, _ = face_frame(np.asarray(ex_points, np.float64)[:SURFACE, :2])
    scale_across = float(ex_across @ affine[:, :2] @ across)
    scale_up = float(ex_up @ affine[:, :2] @ up)
    shift_across, shift_up = float(ex_across @ affine[:, 2]), float(ex_up @ affine[:, 2])
    ahead, rise = facing * (src @ across), src @ up  # the input's mesh, ahead along the exemplar's facing
    back, low, high = ahead.min(), rise.min(), rise.max()
    rises = np.arange(np.floor(low), np.ceil(high) + 1)
    # the profile's front at each of the input's heights, in the input's frame (ahead of its back cheek)
    profile = (np.interp(scale_up * rises + shift_up, ex_rises, ex_front) - facing * shift_across) / scale_across
    # the input's outline at each height: its person, walked ahead from the mesh's middle while it lasts
    start = float(np.median(ahead))
    steps = np.arange(start, start + 2 * height)
    grid_x = facing * steps[None, :] * across[0] + rises[:, None] * up[0]
    grid_y = facing * steps[None, :] * across[1] + rises[:, None] * up[1]
    grid = np.stack([grid_x, grid_y], -1).astype(np.float32)  # x, y = ahead * (facing across) + rise * up
    on = cv2.remap(person.astype(np.uint8), grid[..., 0], grid[..., 1], cv2.INTER_NEAREST,
                   borderMode=cv2.BORDER_CONSTANT) > 0
    run = np.cumprod(on, axis=1).sum(axis=1)  # the person's pixels from the middle on, unbroken
    outline = start + np.maximum(run - 1, 0)
    # first moved ahead as a whole (no distortion: the back of the input's face then takes his ear and hair) by
    # the gap at the middle height (SHIFT_QUANTILE); the rest at each height by the squeeze
    gap = outline - profile
    shift = float(np.clip(np.quantile(gap, SHIFT_QUANTILE), 0.0, SHIFT_MAX * height))
    profile, back = profile + shift, back + shift
    squeeze = np.clip((profile - back) / np.maximum(outline - back, 1e-6), SQUEEZE, 1.0)
    squeeze = cv2.GaussianBlur(squeeze[None, :].astype(np.float64), (0, 0), SQUEEZE_SMOOTH * height,
                               borderType=cv2.BORDER_REPLICATE)[0]
    pixel_ahead, pixel_rise = _pixels_in_frame((h, w), across, up, facing)
    k = np.interp(pixel_rise, rises, squeeze)  # the ends' squeeze beyond them
    squeezed = np.where(pixel_ahead > back, back + (pixel_ahead - back) * k, pixel_ahead) - shift
    x = facing * squeezed * across[0] + pixel_rise * up[0]  # back to output x, y, then the box map
    y = facing * squeezed * across[1] + pixel_rise * up[1]
    positions = np.stack([affine[0, 0] * x + affine[0, 1] * y + affine[0, 2],
                          affine[1, 0] * x + affine[1, 1] * y + affine[1, 2]], -1)
    band = ((pixel_ahead >= back - shift) & (pixel_ahead <= np.interp(pixel_rise, rises, outline) + 1)
            & (pixel_rise >= low) & (pixel_rise <= high))
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [cv2.convexHull(np.round(src).astype(np.int32))], 1)  # a profile's oval crosses itself
    return positions.astype(np.float32), ((inside > 0) | band) & person
