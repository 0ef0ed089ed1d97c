"""Motion predicted small, applied at full size: a frame made from the source's own pixels, at its resolution.

Face2Vid works on 128- or 256-px crops. Pasting its crop back replaces every pixel of the face by an
upsampled render, so skin, wrinkles and hair lose the detail they had. Here the output frame is the source
image (the photo, or the clip's own frame under it) **warped** where the landmarks move, at the source's
resolution, and the network's pixels enter only where the source cannot show anything: inside the lips.

For output frame t with crop transform ``A`` (frame pixels -> crop pixels, ``datamodules.faces.alignment``),
driving landmarks ``target`` and the source's own landmarks ``source`` (both [68, 2] crop pixels)::

    c      = A p                                       # every frame pixel p of the face region, in the crop
    q      = A^-1 (c + g(c) * f(c))                    # where it is found in the source image
    out(p) = (1 - a(p)) * source_image(q)  +  a(p) * colour_matched(upsampled network H)(p)

- ``f`` (``warp_field``): a thin-plate spline through the 68 landmark displacements ``source_i - target_i``
  (exact at the landmarks, smooth between them) and a ring of anchors that follow the head's similarity
  (fitted on the stable points), so head motion, blinks, lips and jaw are one smooth backward flow. It is
  evaluated on a crop-resolution grid and sampled at every frame pixel through the crop transform (a flow
  is smooth; its detail is not needed at full size).
- on the lips and inside the mouth, ``f`` is instead piecewise affine over the lips' triangles (``LipMap``),
  evaluated at each frame pixel: each driving lip reads the source's lip and an inside that closes has no
  area left, so lips that close over a smile's teeth hide them (the spline, smooth and exact only at the
  points, let the teeth through in a wave along the seam).
- ``g``: 1 over the face and a smooth falloff (smoothstep over an elliptic radius) to exactly 0 around it:
  the hair and collar bend a little with the head instead of showing a seam, and everything beyond is the
  source bit for bit. Only the bounding box of ``g > 0`` is computed, so a 4K frame costs the face region.
- ``a`` (``mouth_interior``, ``newly_visible``): the driving inner-lip polygon, softened by half a crop
  pixel, less what the source's own mouth inside (a smile's teeth, a clip's open mouth) shows there. The
  network's hallucinated image H (what no frame shows) is upsampled bicubically and shifted by the mean
  colour difference on the lips around it (the network's lips against the warped source lips), so its
  teeth and cavity take the source's light.

Why not the network's own reference flow Fr: the shipped checkpoint's Fr is its landmark prior (Gaussian
beads of S/64 px around each point) plus a correction of 0.2 px on average, and its reference mask is about
1 everywhere, the mouth included (measured on Grace Hopper, 60 frames). Sampled at full size, the beads
would ripple the face between landmarks; a spline through the same landmark displacements is what that
flow approximates, without the ripples.

Coordinates: pixel centres at integers, (x, y), x right, y down, as everywhere in the project.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from talking_face.datamodules.faces.landmark_scheme import STABLE
from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points
from talking_face.generation.mouth_calibration import closed_gap
from talking_face.shapes import check_shape

__all__ = ["LipMap", "WarpField", "mouth_interior", "newly_visible", "render_frame", "warp_field"]


_INTERPOLATION = 4  # cv2.INTER_LANCZOS4
"""How the source's brightness is resampled: Lanczos (8x8) keeps more of a photo's detail under sub-pixel
motion than bicubic. Colour is resampled bicubically (``_resample``): the H.264 output keeps it at half
resolution (4:2:0), and Lanczos on all three channels was most of the time a frame took."""

_INNER_LIP = list(range(60, 68))
_OUTER_LIP = list(range(48, 60))
_LIP_TRIANGLES = np.array(
    [
        (48, 49, 60), (49, 61, 60), (49, 50, 61), (50, 62, 61), (50, 51, 62),  # the upper lip
        (51, 52, 62), (52, 63, 62), (52, 53, 63), (53, 64, 63), (53, 54, 64),
        (54, 55, 64), (55, 65, 64), (55, 56, 65), (56, 66, 65), (56, 57, 66),  # the lower lip
        (57, 58, 66), (58, 67, 66), (58, 59, 67), (59, 60, 67), (59, 48, 60),
        (60, 61, 67), (61, 62, 66), (61, 66, 67), (62, 63, 65), (62, 65, 66), (63, 64, 65),  # the inside
    ]
)  # fmt: skip
"""The lips and the mouth's inside as triangles of the 68 points (``LipMap``), lips first: where a pinched
driving mouth folds the inside over a lip, the lip wins."""

_INSIDE_TRIANGLES = 6
"""The last triangles of ``_LIP_TRIANGLES``: the mouth's inside."""

_UPPER_LIP_MIDDLE = np.array([(60, 49), (61, 50), (62, 51), (63, 52), (64, 53), (63, 52), (62, 51), (61, 50)])
"""For each inner lip point 60-67, the inner and outer points of the upper lip whose middle it reads once the
mouth is shut over a source that shows its inside."""

_TOUCHING = ((61, 67), (62, 66), (63, 65), (37, 41), (38, 40), (43, 47), (44, 46))
"""Upper/lower pairs of the inner lips and the eyelids: where they meet in the driving landmarks, two points
would sit on one spot with two different sources, so they are kept ``min_gap`` apart (a steep but finite
step: the closed lips' seam)."""


@dataclass(frozen=True)
class WarpField:
    """A backward flow (crop pixels, falloff applied) on a grid: ``flow`` [Gy, Gx, 2] float32 holds the flow
    at crop points ``origin + step * (i, j)`` (column i, row j); exactly 0 outside ``box`` (x0, y0, x1, y1
    crop pixels), which is None when nothing moves. ``lips`` replaces this flow on the lips and inside
    the mouth."""

    flow: np.ndarray
    origin: np.ndarray
    step: float
    box: tuple[float, float, float, float] | None
    lips: LipMap | None = None


@dataclass(frozen=True)
class LipMap:
    """The lips and the mouth's inside mapped triangle by triangle (``_LIP_TRIANGLES``): ``target`` [K, 3, 2]
    the driving corners, ``source`` [K, 3, 2] where they read in the source (crop pixels). Each driving lip
    reads the source's lip however far the mouth closes, and an inside that closes has no area left. It is
    evaluated at each pixel, not sampled from a grid: where closed lips meet, the flow jumps across the
    source's open mouth, and a grid's interpolation would read the teeth along that seam."""

    target: np.ndarray
    source: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        low, high = self.target.reshape(-1, 2).min(0), self.target.reshape(-1, 2).max(0)
        return float(low[0]), float(low[1]), float(high[0]), float(high[1])

    def flow(self, to_crop: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Flow [h, w, 2] (crop pixels) and bool [h, w] (on the lips or inside) at the pixels of a box of
        ``shape`` (h, w) whose pixel (x, y) lies at crop point ``to_crop`` [2, 3] @ (x, y, 1)."""
        import cv2

        edges = np.stack([self.target[:, 1] - self.target[:, 0], self.target[:, 2] - self.target[:, 0]], 2)
        usable = np.abs(np.linalg.det(edges)) > 1e-9  # a closed inside covers no pixel
        inverse = np.linalg.inv(np.where(usable[:, None, None], edges, np.eye(2)))  # crop offset -> weights
        from_crop = cv2.invertAffineTransform(to_crop)
        corners = self.target @ from_crop[:, :2].T + from_crop[:, 2]  # box pixels
        index = np.zeros(shape, np.uint8)  # 1 + the triangle covering each pixel
        for k in np.flatnonzero(usable)[::-1]:  # the last drawn wins a shared pixel: the lips
            cv2.fillPoly(index, [np.round(corners[k] * 16).astype(np.int32)], int(k) + 1, shift=4)
        rows, columns = np.nonzero(index)
        k = index[rows, columns].astype(np.intp) - 1
        points = np.stack([columns, rows], 1) @ to_crop[:, :2].T + to_crop[:, 2]
        weights = np.einsum("nij,nj->ni", inverse[k], points - self.target[k, 0])
        a, b, c = self.source[k, 0], self.source[k, 1], self.source[k, 2]
        flow = np.zeros((*shape, 2), np.float32)
        flow[rows, columns] = a + weights[:, :1] * (b - a) + weights[:, 1:] * (c - a) - points
        return flow, index > 0


def _tps_solve(centres: np.ndarray, values: np.ndarray, regularisation: float) -> np.ndarray:
    """Weights [K + 3, 2] of the thin-plate spline through ``values`` [K, 2] at ``centres`` [K, 2]."""
    count = len(centres)
    kernel = _tps_kernel(centres, centres) + regularisation * np.eye(count)
    affine = np.concatenate([np.ones((count, 1)), centres], axis=1)
    system = np.zeros((count + 3, count + 3))
    system[:count, :count], system[:count, count:], system[count:, :count] = kernel, affine, affine.T
    rhs = np.concatenate([values, np.zeros((3, 2))])
    try:
        return np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:  # coincident landmarks with different sources: the least-squares spline
        return np.linalg.lstsq(system, rhs, rcond=None)[0]


def _tps_kernel(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``r^2 log r`` [N, K] of points [N, 2] against centres [K, 2] (in place: N is a whole grid)."""
    squared = (points**2).sum(1)[:, None] + (centres**2).sum(1)[None, :]
    squared -= 2 * points @ centres.T
    np.maximum(squared, 1e-30, out=squared)
    log = np.log(squared)
    squared *= 0.5
    squared *= log
    return squared


def _tps_eval(points: np.ndarray, centres: np.ndarray, weights: np.ndarray) -> np.ndarray:
    count = len(centres)
    return _tps_kernel(points, centres) @ weights[:count] + weights[count] + points @ weights[count + 1 :]


def _separate(points: np.ndarray, min_gap: float) -> np.ndarray:
    """``points`` [68, 2] with each upper/lower pair of ``_TOUCHING`` at least ``min_gap`` apart."""
    points = np.array(points, np.float64, copy=True)
    for upper, lower in _TOUCHING:
        gap = points[lower] - points[upper]
        distance = float(np.linalg.norm(gap))
        if distance < min_gap:
            direction = gap / distance if distance > 1e-6 else np.array([0.0, 1.0])
            middle = (points[upper] + points[lower]) / 2
            points[upper], points[lower] = middle - direction * min_gap / 2, middle + direction * min_gap / 2
    return points


def _lip_gap(points: np.ndarray) -> float:
    """The inner lips' gap (``mouth_opening``) of ``points`` [68, 2] (crop pixels)."""
    return float(mouth_opening(mouth_points(points)))


def _ellipse(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre [2] and half-axes [2] of the landmarks' bounding box (crop pixels)."""
    low, high = points.min(0), points.max(0)
    return (low + high) / 2, np.maximum((high - low) / 2, 1.0)


def warp_field(
    target: np.ndarray,
    source: np.ndarray,
    size: int,
    grid: int = 64,
    inner: float = 1.4,
    outer: float = 2.2,
) -> WarpField:
    """The backward flow that moves ``source`` landmarks onto ``target`` ones, with its falloff.

    Args:
        target: [68, 2] landmarks of the frame being made, crop pixels of a ``size`` crop.
        source: [68, 2] the same points on the source image, in the same crop.
        size: S, the crop side (sets the scale of the lip gap kept open).
        grid: samples of the field along each side of its box.
        inner, outer: the falloff runs from ``inner`` to ``outer`` times the landmarks' half-extent (an
            elliptic radius about their box's centre): 1 inside, 0 beyond.
    Returns:
        ``WarpField``: where the output pixel at crop point c reads the source, ``c + flow(c)``.
    """
    target = np.asarray(target, np.float64)
    source = np.asarray(source, np.float64)
    check_shape(target, "68 2", "target landmarks")
    check_shape(source, "68 2", "source landmarks")
    if not (np.isfinite(target).all() and np.isfinite(source).all()):
        raise ValueError("landmarks hold NaN or inf values")
    if np.abs(target - source).max() < 1e-6:
        return WarpField(np.zeros((2, 2, 2), np.float32), np.zeros(2), 1.0, None)
    from talking_face.datamodules.faces.alignment import similarity_fit, transform_points

    lips = _lip_map(target, source, size)  # the lips' triangles need no gap: a closed inside has no area
    target = _separate(target, size / 128)
    head = similarity_fit(target[list(STABLE)], source[list(STABLE)])  # target crop px -> source crop px
    centre, axes = _ellipse(target)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    anchors = np.concatenate([centre + inner * axes * circle, centre + outer * axes * circle])
    centres = np.concatenate([target, anchors])
    values = np.concatenate([source - target, transform_points(anchors, head) - anchors])
    unit = float(size)  # solve in crop sides: a well-conditioned system at any crop size
    weights = _tps_solve(centres / unit, values / unit, 1e-6)
    low, high = centre - outer * axes, centre + outer * axes
    step = float((high - low).max() / (grid - 1))
    xs = low[0] + step * np.arange(grid)
    ys = low[1] + step * np.arange(grid)
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    flow = _tps_eval(points / unit, centres / unit, weights) * unit
    radius = np.hypot(*((points - centre) / axes).T)
    fade = np.clip((outer - radius) / (outer - inner), 0.0, 1.0)
    fade = fade * fade * (3 - 2 * fade)  # smoothstep: no kink where the falloff starts or ends
    flow = (flow * fade[:, None]).reshape(grid, grid, 2).astype(np.float32)
    box = (float(low[0]), float(low[1]), float(low[0] + step * (grid - 1)), float(low[1] + step * (grid - 1)))
    return WarpField(flow, low, step, box, lips)


def _lip_map(target: np.ndarray, source: np.ndarray, size: int) -> LipMap:
    """The lips' triangles from ``target`` to ``source`` [68, 2]. As the driving mouth closes from half the
    source's gap to shut, the source's inner lip line is read up to a pixel (of a 128-px crop) into the lip,
    so lips that meet read lip, not its edge blended with the teeth behind it; an open mouth reads the line
    itself (a moving offset would slide the lips' texture). A closed mouth keeps a sliver of a gap (stage 1's
    ``CLOSED_GAP``, a few pixels of a large photo): from twice that gap to it, the inside's corners move
    onto the middle of the upper lip, so the sliver reads lip, not a line of the teeth a smile shows."""
    source = np.array(source, np.float64, copy=True)
    gap = _lip_gap(target)
    closing = np.clip(2 * (1 - gap / max(_lip_gap(source), 1e-6)) - 1, 0.0, 1.0)
    closing = closing * closing * (3 - 2 * closing)  # from half the source's gap to closed, smoothly
    inner, outer = [60, 61, 62, 63, 64, 65, 66, 67], [48, 50, 51, 52, 54, 56, 57, 58]  # each to its lip
    thickness = np.linalg.norm(source[outer] - source[inner], axis=1, keepdims=True)
    into_lip = (source[outer] - source[inner]) / np.maximum(thickness, 1e-6)
    source[inner] += into_lip * np.minimum(closing * size / 128, thickness / 4)
    corners = source[_LIP_TRIANGLES]
    closed = closed_gap(size)
    shut = np.clip(2 - gap / closed, 0.0, 1.0)  # 1 at the closed gap, 0 from twice it
    if shut > 0 and _lip_gap(source) > 2 * closed:  # what the source shows inside would peek through
        inside = slice(len(_LIP_TRIANGLES) - _INSIDE_TRIANGLES, None)
        facing = source[_UPPER_LIP_MIDDLE].mean(1)[_LIP_TRIANGLES[inside] - 60]  # each corner's upper lip
        corners[inside] += shut * (facing - corners[inside])
    return LipMap(target[_LIP_TRIANGLES], corners)


def mouth_interior(target: np.ndarray, size: int, scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 [size, size] masks in crop pixels from the driving landmarks ``target`` [68, 2]: the inside
    of the inner lips (where the network's pixels go; soft by half a pixel) and the lips themselves (the band
    where its colour is matched to the source's)."""
    import cv2

    def fill(points: np.ndarray) -> np.ndarray:
        canvas = np.zeros((size * scale, size * scale), np.uint8)
        polygon = np.round((np.asarray(points) + 0.5) * scale * 16 - 8).astype(np.int32)  # 4 fractional bits
        cv2.fillPoly(canvas, [polygon], 255, lineType=cv2.LINE_AA, shift=4)
        return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255

    target = np.asarray(target, np.float64)
    inside = cv2.GaussianBlur(fill(target[_INNER_LIP]), (0, 0), 0.5)
    lips = np.clip(fill(target[_OUTER_LIP]) - cv2.dilate(inside, np.ones((3, 3), np.uint8)), 0, 1)
    return inside, lips


def newly_visible(inside: np.ndarray, source: np.ndarray, field: WarpField) -> np.ndarray:
    """Float32 [S, S]: the part of the driving mouth's inside ``inside`` [S, S] (``mouth_interior``) that the
    source cannot show, i.e. minus the source's own mouth inside (its inner lips ``source`` [68, 2], crop
    pixels) as the field carries it there. A smile's teeth in the photo, or an open mouth in a dubbed clip,
    stay the source's own pixels (stretched with the lips when the mouth opens wider); the network fills a
    mouth that the source shows closed."""
    import cv2

    size = inside.shape[0]
    source = np.asarray(source, np.float64)
    shown = np.clip((_lip_gap(source) - size / 128) / (2 * size / 128), 0.0, 1.0)  # a closed seam: nothing
    own, _ = mouth_interior(source, size)
    own = shown * np.minimum(2 * own, 1)  # its soft edge counts as shown: no half-network rim at its teeth
    if field.box is None or not own.any():
        return (inside * (1 - own)).astype(np.float32)
    flow = _flow_at(field, np.eye(2, 3), (0, 0), (size, size))
    points = np.arange(size, dtype=np.float32)
    seen = cv2.remap(
        own, points[None, :] + flow[..., 0], points[:, None] + flow[..., 1], cv2.INTER_LINEAR, borderValue=0
    )
    return (inside * (1 - seen)).astype(np.float32)


def _frame_box(box: tuple[float, float, float, float], inverse: np.ndarray, shape: tuple[int, int]):
    """Frame-pixel box (x0, y0, x1, y1), ends exclusive, that holds the crop box; None if off the frame."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    spots = corners @ inverse[:, :2].T + inverse[:, 2]
    height, width = shape
    fx0, fy0 = np.maximum(np.floor(spots.min(0)).astype(int) - 1, 0)
    fx1, fy1 = np.minimum(np.ceil(spots.max(0)).astype(int) + 2, [width, height])
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return int(fx0), int(fy0), int(fx1), int(fy1)


def render_frame(
    image: np.ndarray,
    transform: np.ndarray,
    field: WarpField,
    made: np.ndarray | None = None,
    inside: np.ndarray | None = None,
    lips: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The output frame [H, W, 3] uint8: ``image`` [H, W, 3] uint8 warped by ``field``, with ``made``.

    Args:
        image: the source at its own resolution (the photo, or the clip frame under this output frame).
        transform: [2, 3] frame pixels -> crop pixels of the crop the field and masks live in.
        field: ``warp_field`` of this frame.
        made: [S, S, 3] uint8 the network's pixels (its H; None: the warp alone).
        inside, lips: [S, S] masks from ``mouth_interior`` (needed with ``made``).
        out: [H, W, 3] uint8 to write the frame into and return (None: a new array), so that a caller
            filling a chunk of frames copies each frame once.
    Pixels outside the field's box, and inside it where the flow is 0 and no network pixel enters, are the
    source's bit for bit.
    """
    import cv2

    image = np.asarray(image)
    check_shape(image, "H W 3", "image")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if out is None:
        out = image.copy()
    else:
        check_shape(out, f"{image.shape[0]} {image.shape[1]} 3", "out")
        np.copyto(out, image)
    if field.box is None:
        return out
    transform = np.asarray(transform, np.float64)
    inverse = cv2.invertAffineTransform(transform)
    region = _frame_box(field.box, inverse, image.shape[:2])
    if region is None:
        return out
    x0, y0, x1, y1 = region
    flow = _flow_at(field, transform, (x0, y0), (y1 - y0, x1 - x0))
    moving = (flow[..., 0] != 0) | (flow[..., 1] != 0)
    # the crop flow back in frame pixels: q = A^-1 (c + f) = p + A_lin^-1 f
    (l00, l01), (l10, l11) = inverse[:, :2].tolist()
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    reach = int(np.ceil(np.abs(flow).max() * max(abs(l00) + abs(l01), abs(l10) + abs(l11)))) + 5
    sx0, sy0 = max(x0 - reach, 0), max(y0 - reach, 0)
    sx1, sy1 = min(x1 + reach, image.shape[1]), min(y1 + reach, image.shape[0])
    qx = (xs - sx0) + l00 * flow[..., 0] + l01 * flow[..., 1]
    qy = (ys - sy0) + l10 * flow[..., 0] + l11 * flow[..., 1]
    source = image[sy0:sy1, sx0:sx1]
    grey = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    box = out[y0:y1, x0:x1]
    for rows, columns in _moving_spans(moving):  # where the flow is 0 the source stays as it was
        warped = _resample(source, grey, qx[rows, columns], qy[rows, columns])
        cv2.copyTo(warped, moving[rows, columns].view(np.uint8), box[rows, columns])
    if made is not None:
        if inside is None or lips is None:
            raise ValueError("network pixels need the inside and lips masks of mouth_interior")
        _blend_made(box, (x0, y0), transform, made, inside, lips)
    return out


def _sub_box(
    box: tuple[float, float, float, float],
    transform: np.ndarray,
    corner: tuple[int, int],
    shape: tuple[int, int],
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The pixels of an image box (top-left pixel ``corner`` (x, y), ``shape`` (h, w)) that hold the crop box
    ``box``, the image mapped to the crop by ``transform`` [2, 3]: (x0, y0, x1, y1) image pixels, ends
    exclusive, and the [2, 3] map from that sub-box's pixels to the crop; None where they miss."""
    import cv2

    region = _frame_box(
        box, cv2.invertAffineTransform(transform), (corner[1] + shape[0], corner[0] + shape[1])
    )
    if region is None:
        return None
    x0, y0, x1, y1 = max(region[0], corner[0]), max(region[1], corner[1]), region[2], region[3]
    if x1 <= x0 or y1 <= y0:
        return None
    shifted = transform.copy()
    shifted[:, 2] += transform[:, :2] @ np.array([x0, y0], np.float64)  # sub-box pixel (0, 0) = (x0, y0)
    return (x0, y0, x1, y1), shifted


def _flow_at(
    field: WarpField, transform: np.ndarray, corner: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Float32 [h, w, 2]: ``field``'s flow (crop pixels) at the pixels of an image box of ``shape`` (h, w)
    whose top-left pixel is ``corner`` (x, y), the image mapped to the crop by ``transform`` [2, 3]; on the
    lips, the ``LipMap``'s exact flow."""
    import cv2

    # box pixel -> crop point -> grid point is one affine map
    to_grid = np.concatenate([transform[:, :2], transform[:, 2:] - field.origin[:, None]], 1) / field.step
    to_grid[:, 2] += to_grid[:, :2] @ np.array(corner, np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    flow = cv2.warpAffine(field.flow, to_grid, shape[::-1], flags=flags, borderValue=0)
    lips = None if field.lips is None else _sub_box(field.lips.box, transform, corner, shape)
    if lips is None:
        return flow
    (x0, y0, x1, y1), to_crop = lips
    fine, on_lips = field.lips.flow(to_crop, (y1 - y0, x1 - x0))
    view = flow[y0 - corner[1] : y1 - corner[1], x0 - corner[0] : x1 - corner[0]]
    np.copyto(view, fine, where=on_lips[..., None])
    return flow


def _moving_spans(moving: np.ndarray, bands: int = 16) -> Iterator[tuple[slice, slice]]:
    """(rows, columns) of ``moving`` [h, w] bool in ``bands`` bands of rows, each cut to the columns where
    something in it moves (bands where nothing does are left out): the flow is 0 outside an ellipse, and
    resampling its whole box would spend a quarter of the time on pixels that stay the source's."""
    edges = np.linspace(0, len(moving), bands + 1).round().astype(int)
    for top, bottom in zip(edges[:-1], edges[1:], strict=True):
        moved = np.flatnonzero(moving[top:bottom].any(0))
        if moved.size:
            yield slice(top, bottom), slice(int(moved[0]), int(moved[-1]) + 1)


def _resample(image: np.ndarray, grey: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``image`` [H, W, 3] uint8 read at float32 maps ``xs``, ``ys`` [h, w]: [h, w, 3] uint8, bicubic, with
    its brightness replaced by the ``_INTERPOLATION`` of the image's brightness ``grey`` [H, W] uint8; where
    the maps fall on pixel centres both are the pixel itself, so a whole-pixel shift stays exact."""
    import cv2

    colour = cv2.remap(image, xs, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    sharp = cv2.remap(grey, xs, ys, _INTERPOLATION, borderMode=cv2.BORDER_REPLICATE)
    detail = cv2.subtract(sharp, cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY), dtype=cv2.CV_16S)
    return cv2.add(colour, cv2.merge([detail] * 3), dtype=cv2.CV_8U)  # saturating: clipped to 0..255


def _blend_made(
    result: np.ndarray,
    corner: tuple[int, int],
    transform: np.ndarray,
    made: np.ndarray,
    inside: np.ndarray,
    lips: np.ndarray,
) -> None:
    """Blend the network's ``made`` crop into ``result`` (uint8 [h, w, 3], frame pixels from ``corner``, in
    place) where ``inside`` says, shifted by the mean colour difference on ``lips``; only the lips' box is
    computed."""
    import cv2

    rows, columns = np.nonzero((inside > 0) | (lips > 0))
    if rows.size == 0 or not (inside > 0).any():
        return
    mouth = (columns.min() - 1.0, rows.min() - 1.0, columns.max() + 1.0, rows.max() + 1.0)
    region = _sub_box(mouth, transform, corner, result.shape[:2])
    if region is None:
        return
    (x0, y0, x1, y1), shifted = region
    size = (x1 - x0, y1 - y0)
    flags = cv2.WARP_INVERSE_MAP
    alpha = cv2.warpAffine(inside, shifted, size, flags=flags | cv2.INTER_LINEAR, borderValue=0.0)
    face = cv2.warpAffine(made, shifted, size, flags=flags | cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    face = face.astype(np.float32)
    band = cv2.warpAffine(lips, shifted, size, flags=flags | cv2.INTER_LINEAR, borderValue=0.0)
    view = result[y0 - corner[1] : y1 - corner[1], x0 - corner[0] : x1 - corner[0]]
    target = view.astype(np.float32)
    if band.sum() > 1:
        face += ((target - face) * (band[..., None] / band.sum())).sum((0, 1))  # the lips' mean offset
    alpha = alpha[..., None]
    blended = np.clip(np.rint((1 - alpha) * target + alpha * face), 0, 255).astype(np.uint8)
    np.copyto(view, blended, where=alpha > 0)
