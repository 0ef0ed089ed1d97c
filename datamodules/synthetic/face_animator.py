"""Animate one real face photo from phoneme timings: landmarks from visemes, frames from a warp of the photo.

For each 25 fps frame:

1. **Landmarks.** The articulation track (`visemes.articulation_track`) moves the person's neutral mouth
   (points 48-67) in a mouth frame (x along the corners, y down, unit = inter-ocular distance ``iod``,
   the distance between the eye centres): the jaw lowers the lower lip, the corners and the chin (jaw
   points 3-13, weighted toward the chin); width and rounding move the points along x about the mouth
   centre; lip closure brings the inner lips together column by column. Blinks (random times, 150-250
   ms) bring the upper eyelids (37, 38, 43, 44) onto the lower ones. Small smooth head motion (rotation,
   translation, scale: sums of slow sinusoids with random phases) moves all 68 points about the face
   centre.
2. **Image.** A thin-plate spline maps every output pixel back into the photo, with the 68 points as
   control points (eyes open), a ring of anchors around the head that follow the head motion (the hair
   moves with the head) and anchors on the image border that stay (the background does not move). It
   is solved per frame (`tps_transform`: the textbook system; see there why not kornia's
   ``get_tps_transform``), evaluated like kornia's ``warp_points_tps`` on a grid of every third pixel
   and upsampled bilinearly; the photo is resampled with ``grid_sample``. Frames go in batches (torch,
   no grad). A smile's teeth in the photo are inpainted first, and the warp treats its inner lips as
   closed, so lips close without squeezing anything.
3. **Eyelids.** A blink slides the lid skin over the eye (`_slide_lids`), which a global warp cannot do.
4. **Mouth interior.** The inner-lip outline (a smooth curve through 60-67) is painted: a dark seam where
   the lips touch, a cavity darker in its depth with a tongue, the upper teeth under the upper lip and
   the lower teeth when the jaw is wide open, in colours tinted by the face, with anti-aliased edges.

Coordinates: image pixels ``(x, y)``, x right, y down, pixel centres at integers (as dlib returns them).
For kornia's spline and ``grid_sample`` they are normalised with ``align_corners=False``:
``x_n = (2 x + 1) / W - 1``.

Everything random comes from the ``rng`` passed to `FaceAnimator.render`, in a fixed order
(articulation, blinks, head motion), so a seed renders the same frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_LANDMARKS
from talking_face.datamodules.faces.motion import (
    JAW,
    JAW_FOLLOW,
    apply_blinks,
    blink_track,
    face_down_direction,
    head_motion_track,
    inter_ocular,
    pose_matrices,
    transform_landmarks,
)
from talking_face.datamodules.segments import Segment
from talking_face.datamodules.synthetic.visemes import PARAMS, SpeakerStyle, articulation_track
from talking_face.shapes import check_shape

__all__ = [
    "Animation",
    "FaceAnimator",
    "articulate",
    "tps_transform",
    "tps_warp_points",
]

_P = {name: i for i, name in enumerate(PARAMS)}

# Mouth points, as indices into the 20 mouth points (landmark index - 48).
_M = MOUTH.start
_UPPER = np.array([49, 50, 51, 52, 53, 61, 62, 63]) - _M
_LOWER = np.array([55, 56, 57, 58, 59, 65, 66, 67]) - _M
_INNER = np.arange(60, 68) - _M
_INNER_UPPER = np.array([61, 62, 63]) - _M  # facing _INNER_LOWER column by column
_INNER_LOWER = np.array([67, 66, 65]) - _M

# Jaw contour points 3-13 follow the chin down with these weights (the jaw hinges near the ears).

# Upper eyelid point -> the lower eyelid point below it.

# Motion amplitudes in units of the inter-ocular distance (iod) at full parameter value.
_CHIN_DROP = 0.28  # jaw_open = 1 lowers the chin by 0.28 iod (about 17 mm)
_LOWER_LIP_FOLLOW = 0.8  # the lower lip drops by this fraction of the chin at the lip's middle
_CORNER_FOLLOW = 0.35  # ... and by this fraction of that at the corners
_UPPER_LIP_LIFT = 0.08  # the upper lip rises by this fraction of the chin drop when the jaw opens
_SPREAD = 0.10  # lip_width = 1 moves each corner out by 0.10 iod
_ROUND_IN = 0.10  # lip_round = 1 moves each corner in by 0.10 iod
_ROUND_THICKEN = 0.03  # ... and pouts the outer lips up / down by 0.03 iod
_ROUND_OPEN = 0.02  # ... and parts the inner lips by 2 x 0.02 iod (the "O")
_SPREAD_THIN = 0.02  # spreading thins each lip by 0.02 iod
_RAISE = 0.06  # upper_lip_raise = 1 lifts the upper lip by 0.06 iod
_MIN_GAP = 0.01  # closed inner lips stay 0.01 iod apart (under a pixel)
_TUCK_INNER = 0.35  # lower_lip_tuck = 1 lifts the inner lower lip by 0.35 of the lower lip's thickness
_TUCK_OUTER = 0.15  # ... and its outer edge by 0.15

_ANCHOR_RING = 16
_ANCHOR_BORDER = 9
_GRID_STRIDE = 3  # the spline is evaluated every 3 pixels and upsampled
_CHUNK = 16


@dataclass(frozen=True)
class Animation:
    """Rendered frames uint8 [T, H, W, 3] RGB, ground-truth landmarks float32 [T, 68, 2] in frame pixels,
    and the articulation track float32 [T, P] (columns ``visemes.PARAMS``) that drove them."""

    frames: np.ndarray
    landmarks: np.ndarray
    articulation: np.ndarray


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    check_shape(landmarks, f"{NUM_LANDMARKS} 2", "neutral landmarks")
    if not np.isfinite(landmarks).all():
        raise ValueError("neutral landmarks hold NaN or inf values")
    return landmarks


def _mouth_frame(neutral: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Mouth origin [2], x axis [2] (corner 48 -> 54), y axis [2] (down) and half-width (px) of a face."""
    left, right = neutral[48], neutral[54]
    x_axis = (right - left) / np.linalg.norm(right - left)
    y_axis = np.array([-x_axis[1], x_axis[0]])  # x rotated by +90 degrees in image coordinates (y down)
    return 0.5 * (left + right), x_axis, y_axis, 0.5 * float(np.linalg.norm(right - left))


def _gap_weights(u: np.ndarray) -> np.ndarray:
    """[20, 5] weights interpolating, at each mouth point's u, a gap known at the corners (u = -1, 1: none)
    and at the three inner-lip columns (their neutral u); piecewise linear in u."""
    knots_u = np.concatenate([[-1.0], u[_INNER_UPPER], [1.0]])
    order = np.argsort(knots_u)
    weights = np.zeros((len(u), len(knots_u)))
    for k in range(len(knots_u)):
        one_hot = np.zeros(len(knots_u))
        one_hot[order[k]] = 1.0
        weights[:, order[k]] = np.interp(u, knots_u[order], one_hot[order])
    return weights


def articulate(neutral: np.ndarray, track: np.ndarray, style: SpeakerStyle) -> np.ndarray:
    """Landmarks float64 [T, 68, 2]: ``neutral`` [68, 2] (pixels), mouth and jaw moved by ``track`` [T, P].

    Only the mouth (48-67) and the jaw contour (3-13) move. Amplitudes scale with the face (inter-ocular
    distance) and with ``style.jaw_scale`` (jaw) and ``style.mouth_scale`` (lips).
    """
    neutral = _check_landmarks(neutral)
    track = np.asarray(track, dtype=np.float64)
    check_shape(track, f"T {len(PARAMS)}", "articulation track")
    iod = float(inter_ocular(neutral))
    origin, x_axis, y_axis, half_width = _mouth_frame(neutral)
    local = (neutral[MOUTH.start : MOUTH.stop] - origin) @ np.stack([x_axis, y_axis], axis=1)  # [20, 2]
    u = np.clip(local[:, 0] / half_width, -1.0, 1.0)
    centrality = 1.0 - u**2  # 1 in the middle of the lips, 0 at the corners
    upper = np.isin(np.arange(20), _UPPER)
    lower = np.isin(np.arange(20), _LOWER)
    inner = np.isin(np.arange(20), _INNER)
    lower_thickness = float(local[57 - _M, 1] - local[66 - _M, 1])

    def param(name: str) -> np.ndarray:
        return track[:, _P[name], None]  # [T, 1]

    chin = _CHIN_DROP * iod * style.jaw_scale * param("jaw_open")
    spread = style.mouth_scale * param("lip_width")
    rounding = style.mouth_scale * param("lip_round")
    lift = style.mouth_scale * param("upper_lip_raise")
    tuck = param("lower_lip_tuck")

    du = iod * u * (_SPREAD * spread - _ROUND_IN * rounding - 0.03 * chin / iod)
    follow = _LOWER_LIP_FOLLOW * (_CORNER_FOLLOW + (1 - _CORNER_FOLLOW) * centrality)
    dv = np.where(upper, -_UPPER_LIP_LIFT * chin * centrality, chin * follow * (1 - 0.85 * tuck))
    dv -= np.where(lower, tuck * lower_thickness * np.where(inner, _TUCK_INNER, _TUCK_OUTER), 0.0)
    pout = iod * centrality * (_ROUND_THICKEN * rounding - _SPREAD_THIN * spread)
    dv += np.where(upper & ~inner, -pout, 0.0) + np.where(lower & ~inner, pout, 0.0)
    dv += np.where(inner, iod * centrality * _ROUND_OPEN * rounding, 0.0) * np.where(upper, -1.0, 1.0)
    dv -= np.where(upper, iod * _RAISE * lift * (0.3 + 0.7 * centrality), 0.0)

    # Lip closure: each lip moves half the way toward the other, column by column, down to a sliver
    # (lips that touch, never cross, and keep the warp's control points apart); crossed lips part to it.
    gaps = (local[_INNER_LOWER, 1] + dv[:, _INNER_LOWER]) - (local[_INNER_UPPER, 1] + dv[:, _INNER_UPPER])
    sliver = _MIN_GAP * iod
    closed = np.where(gaps > sliver, sliver + (1 - param("lip_close")) * (gaps - sliver), sliver)
    knots = np.concatenate([np.zeros((len(track), 1)), gaps - closed, np.zeros((len(track), 1))], axis=1)
    half_shift = 0.5 * knots @ _gap_weights(u).T  # [T, 20]
    dv += np.where(upper, half_shift, 0.0) - np.where(lower, half_shift, 0.0)

    out = np.repeat(neutral[None], len(track), axis=0)
    out[:, MOUTH.start : MOUTH.stop] += du[..., None] * x_axis + dv[..., None] * y_axis
    face_down = face_down_direction(neutral)
    out[:, JAW] += (chin * JAW_FOLLOW)[..., None] * face_down
    return out


def _draw_blink(frame: np.ndarray, before: np.ndarray, after: np.ndarray) -> None:
    """Slide the eyelids of ``frame`` [H, W, 3] (in place) from landmarks ``before`` to ``after`` [68, 2]."""
    for eye in (list(range(36, 42)), list(range(42, 48))):
        if not np.allclose(before[eye], after[eye], atol=0.05):
            _slide_lids(frame, before[eye], after[eye])


def _slide_lids(frame: np.ndarray, before: np.ndarray, after: np.ndarray) -> None:
    """Move one eye's lids from ``before`` to ``after`` [6, 2] (corner, 2 upper, corner, 2 lower points).

    A lid covers the eyeball rather than squeezing it: in an eye-aligned frame, the skin between the
    brow and the upper lid is stretched down to the new lid line (the lashes go with it), the skin below
    the lower lid is stretched up, and the eyeball between the lids stays where it is. A thin-plate warp
    cannot do this: squeezing the eye to a line bends the whole face.
    """
    import cv2

    width = float(np.linalg.norm(before[3] - before[0]))
    x_axis = (before[3] - before[0]) / width
    basis = np.stack([x_axis, [-x_axis[1], x_axis[0]]], axis=1)  # columns: along the eye, down the face
    was, now = (before - before[0]) @ basis, (after - before[0]) @ basis
    upper, lower = [0, 1, 2, 3], [0, 5, 4, 3]  # along each lid, corner to corner
    height = max(float(was[lower, 1].max() - was[upper, 1].min()), 1.0)
    left, right = -0.2 * width, 1.2 * width
    ceiling, floor = was[upper, 1].min() - 1.2 * height, was[lower, 1].max() + 0.8 * height
    box = before[0] + np.array([[left, ceiling], [right, ceiling], [right, floor], [left, floor]]) @ basis.T
    low = np.maximum(np.floor(box.min(0)).astype(int), 0)
    high = np.minimum(np.ceil(box.max(0)).astype(int), [frame.shape[1] - 1, frame.shape[0] - 1])
    if np.any(high <= low):
        return
    ys, xs = np.mgrid[low[1] : high[1] + 1, low[0] : high[0] + 1]
    x, y = np.moveaxis((np.stack([xs, ys], axis=-1) - before[0]) @ basis, -1, 0)

    def lid(points: np.ndarray, rows: list[int]) -> np.ndarray:
        order = np.argsort(points[rows, 0])
        return np.interp(x, points[rows, 0][order], points[rows, 1][order])

    def stretch(anchor: float, lid_was: np.ndarray, lid_now: np.ndarray) -> np.ndarray:
        """Source y of skin between the fixed ``anchor`` and a lid moved from ``lid_was`` to ``lid_now``."""
        return anchor + (y - anchor) * (lid_was - anchor) / (lid_now - anchor)

    upper_now, lower_now = lid(now, upper), lid(now, lower)
    source = np.where(y <= upper_now, stretch(ceiling, lid(was, upper), upper_now), y)
    source = np.where(y >= lower_now, stretch(floor, lid(was, lower), lower_now), source)
    source = np.where((x > left) & (x < right) & (y > ceiling) & (y < floor), source, y)
    where = (before[0] + np.stack([x, source], axis=-1) @ basis.T).astype(np.float32)
    frame[low[1] : high[1] + 1, low[0] : high[0] + 1] = cv2.remap(
        np.ascontiguousarray(frame),
        where[..., 0],
        where[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _smooth_arc(points: np.ndarray, samples: int = 8) -> np.ndarray:
    """Catmull-Rom curve [(n - 1) * samples + 1, 2] through ``points`` [n, 2] (ends repeated)."""
    p = np.concatenate([points[:1], points, points[-1:]])
    s = np.linspace(0, 1, samples, endpoint=False)[:, None]
    segments = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        segments.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * s
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                + (3 * p1 - p0 - 3 * p2 + p3) * s**3
            )
        )
    return np.concatenate([*segments, points[-1:]])


class FaceAnimator:
    """Renders speech animations of one face photo.

    Args:
        photo: RGB uint8 [H, W, 3], the neutral face (e.g. `photos.load_photo`).
        neutral_landmarks: its 68 landmarks [68, 2] in pixels (e.g. the dlib detector's), mouth at rest.
    """

    def __init__(self, photo: np.ndarray, neutral_landmarks: np.ndarray) -> None:
        import torch

        if (
            not isinstance(photo, np.ndarray)
            or photo.dtype != np.uint8
            or photo.ndim != 3
            or photo.shape[2] != 3
        ):
            got = f"{photo.dtype} {photo.shape}" if isinstance(photo, np.ndarray) else type(photo).__name__
            raise ValueError(f"want an RGB uint8 photo [H, W, 3], got {got}")
        self.photo = photo
        self.neutral = _check_landmarks(neutral_landmarks)
        self.height, self.width = photo.shape[:2]
        self.iod = float(inter_ocular(self.neutral))
        if self.iod < 8:
            raise ValueError(f"face too small to animate (inter-ocular distance {self.iod:.1f} px)")
        self.centre = self.neutral.mean(axis=0)
        # Warp anchors: a ring around the head that moves with it (clear of the chin's travel; less and
        # less below the chin, where the neck meets the still shoulders), and points that never move, a
        # wider ring and the image border, which keep the background still.
        self.ring = self._ring_anchors(np.array([0.6, 0.9]), _ANCHOR_RING)
        below_chin = np.clip((self.ring[:, 1] - self.neutral[8, 1]) / (0.9 * self.iod), 0, 1)
        self._ring_follow = 1 - below_chin  # [R] how much of the head motion each ring anchor follows
        self.fixed = np.concatenate(
            [self._ring_anchors(np.array([1.3, 1.6]), _ANCHOR_RING), self._border_anchors()]
        )
        self._palette = _Palette.of(photo, self.neutral)
        # The photo's inner lips as if closed (pairs met in the middle of any smile's opening, which
        # `_close_neutral_mouth` fills with lip): closing the lips then squeezes nothing, and any opening
        # is painted.
        self._warp_neutral = self.neutral.copy()
        middle = 0.5 * (self.neutral[_INNER_UPPER + _M] + self.neutral[_INNER_LOWER + _M])
        self._warp_neutral[_INNER_UPPER + _M] = self._warp_neutral[_INNER_LOWER + _M] = middle
        closed = _close_neutral_mouth(photo, self.neutral)
        self._image = torch.from_numpy(closed).permute(2, 0, 1)[None].float()  # [1, 3, H, W], 0..255

    def _ring_anchors(self, margin: np.ndarray, count: int) -> np.ndarray:
        """[count, 2] points on an ellipse around the landmarks, ``margin`` (x, y) iod beyond their box."""
        low, high = self.neutral.min(axis=0), self.neutral.max(axis=0)
        radii = 0.5 * (high - low) + margin * self.iod
        angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
        return 0.5 * (low + high) + radii * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def _border_anchors(self) -> np.ndarray:
        """[4 * (_ANCHOR_BORDER - 1), 2] points along the image border (pixel centres of the outer pixels)."""
        xs = np.linspace(0, self.width - 1, _ANCHOR_BORDER)
        ys = np.linspace(0, self.height - 1, _ANCHOR_BORDER)
        top = np.stack([xs[:-1], np.zeros(_ANCHOR_BORDER - 1)], 1)
        right = np.stack([np.full(_ANCHOR_BORDER - 1, self.width - 1.0), ys[:-1]], 1)
        bottom = np.stack([xs[::-1][:-1], np.full(_ANCHOR_BORDER - 1, self.height - 1.0)], 1)
        left = np.stack([np.zeros(_ANCHOR_BORDER - 1), ys[::-1][:-1]], 1)
        return np.concatenate([top, right, bottom, left])

    def render(
        self, phonemes: Sequence[Segment], num_frames: int, style: SpeakerStyle, rng: np.random.Generator
    ) -> Animation:
        """``num_frames`` frames (``timebase.FPS``) of this face saying ``phonemes`` (timed labels)."""
        track = articulation_track(phonemes, num_frames, style, rng)
        closure = blink_track(num_frames, style.blink_rate, rng)
        pose = head_motion_track(num_frames, style.head_motion, rng)
        matrices = pose_matrices(pose, self.centre, self.iod)
        speaking = articulate(self.neutral, track, style)
        open_eyes = transform_landmarks(speaking, matrices)
        landmarks = transform_landmarks(apply_blinks(speaking, self.neutral, closure), matrices)
        ring = self.ring + self._ring_follow[:, None] * (transform_landmarks(self.ring, matrices) - self.ring)
        frames = self._warp(open_eyes, ring)
        for frame, before, after, params in zip(frames, open_eyes, landmarks, track, strict=True):
            _draw_blink(frame, before, after)
            _paint_mouth(frame, after, params, self.iod, self._palette)
        return Animation(frames, landmarks.astype(np.float32), track)

    def _warp(self, landmarks: np.ndarray, ring: np.ndarray) -> np.ndarray:
        """Frames uint8 [T, H, W, 3]: the photo warped so its neutral control points land on the frame's.

        The spline maps output pixels back into the photo (kernels on the frame's control points, values
        the neutral ones); it is evaluated every ``_GRID_STRIDE`` pixels, upsampled bilinearly (it is
        smooth) and the photo resampled with ``grid_sample``.
        """
        import torch
        import torch.nn.functional as F

        num_frames = len(landmarks)
        fixed = np.broadcast_to(self.fixed, (num_frames, *self.fixed.shape))
        target = self._normalise(np.concatenate([landmarks, ring, fixed], axis=1))
        source = self._normalise(np.concatenate([self._warp_neutral, self.ring, self.fixed]))
        coarse_h = -(-(self.height - 1) // _GRID_STRIDE) + 1
        coarse_w = -(-(self.width - 1) // _GRID_STRIDE) + 1
        ys, xs = np.meshgrid(
            np.linspace(0, self.height - 1, coarse_h), np.linspace(0, self.width - 1, coarse_w), indexing="ij"
        )
        coarse = self._normalise(np.stack([xs.ravel(), ys.ravel()], axis=1))  # [Hc * Wc, 2]
        ys, xs = np.mgrid[0 : self.height, 0 : self.width]
        identity = self._normalise(np.stack([xs, ys], axis=-1))  # [H, W, 2]
        frames = np.empty((num_frames, self.height, self.width, 3), dtype=np.uint8)
        with torch.no_grad():
            for start in range(0, num_frames, _CHUNK):
                dst = target[start : start + _CHUNK]
                batch = len(dst)
                kernel_weights, affine_weights = tps_transform(dst, source.expand(batch, -1, -1))
                sampled = tps_warp_points(coarse.expand(batch, -1, -1), dst, kernel_weights, affine_weights)
                shift = (sampled - coarse).reshape(batch, coarse_h, coarse_w, 2).permute(0, 3, 1, 2)
                shift = F.interpolate(
                    shift, size=(self.height, self.width), mode="bilinear", align_corners=True
                )
                grid = identity + shift.permute(0, 2, 3, 1)
                image = self._image.expand(batch, -1, -1, -1)
                warped = F.grid_sample(image, grid, align_corners=False, padding_mode="border")
                frames[start : start + batch] = (
                    warped.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
                )
        return frames

    def _normalise(self, points: np.ndarray):
        """Pixels [..., 2] -> torch float32 in ``grid_sample``'s frame with ``align_corners=False``."""
        import torch

        size = np.array([self.width, self.height], dtype=np.float64)
        return torch.from_numpy((2 * points + 1) / size - 1).float()


# ------------------------------------------------------------------------------------- thin-plate spline


def _tps_kernel(points, centres):
    """Thin-plate kernel ``r^2 log r`` [B, N, K] of points [B, N, 2] against centres [B, K, 2] (torch).

    Squared distances as ``|p|^2 + |c|^2 - 2 p.c`` (one batched matrix product) and in-place operations:
    this is most of the time of a frame.
    """
    import torch

    squared = torch.baddbmm(centres.square().sum(-1)[:, None, :], points, centres.transpose(1, 2), alpha=-2)
    squared += points.square().sum(-1, keepdim=True)
    squared.clamp_(min=1e-30)
    return squared.mul_(squared.log().mul_(0.5))


def tps_transform(centres, values):
    """Weights of the thin-plate spline through ``values`` [B, K, 2] at ``centres`` [B, K, 2] (torch).

    Returns kernel weights [B, K, 2] and affine weights [B, 3, 2] in kornia's layout, so that
    ``kornia.geometry.transform.warp_points_tps(points, centres, *weights)`` (or `tps_warp_points`)
    evaluates it. Why not ``kornia.geometry.transform.get_tps_transform``: kornia 0.9 builds its system
    from the distances between *source and target* points, not between the centres themselves; that is
    not the minimum-bending spline, and it tears the image when control points move by more than their
    spacing (a mouth closing over visible teeth; kornia PR #2690 reports the same erratic warps). This is
    the textbook system, solved in float64: ``K w + P a = v`` and ``P^T w = 0`` with ``K_ij = U(|c_i - c_j|)``
    and ``P_i = (1, c_i)``.
    """
    import torch

    batch, count = centres.shape[:2]
    c = centres.double()
    affine = torch.cat([torch.ones(batch, count, 1, dtype=c.dtype), c], dim=-1)  # [B, K, 3]
    top = torch.cat([_tps_kernel(c, c), affine], dim=-1)
    bottom = torch.cat([affine.transpose(1, 2), torch.zeros(batch, 3, 3, dtype=c.dtype)], dim=-1)
    rhs = torch.cat([values.double(), torch.zeros(batch, 3, 2, dtype=c.dtype)], dim=1)
    weights = torch.linalg.solve(torch.cat([top, bottom], dim=1), rhs).to(values.dtype)
    return weights[:, :count], weights[:, count:]


def tps_warp_points(points, centres, kernel_weights, affine_weights):
    """``kornia.geometry.transform.warp_points_tps`` as two matrix products (same arguments, same result;
    kornia broadcasts a [B, N, K, 2] product, several times slower on a CPU): points [B, N, 2] -> [B, N, 2].
    """
    return (
        _tps_kernel(points, centres) @ kernel_weights + affine_weights[:, :1] + points @ affine_weights[:, 1:]
    )


# --------------------------------------------------------------------------------------- mouth painting


@dataclass(frozen=True)
class _Palette:
    """Colours [3] (RGB 0..255) of the mouth interior, tinted by this face's skin and lips."""

    edge: np.ndarray  # cavity next to the lips
    deep: np.ndarray  # the back of the mouth
    tongue: np.ndarray
    teeth: np.ndarray

    @classmethod
    def of(cls, photo: np.ndarray, landmarks: np.ndarray) -> _Palette:
        import cv2

        def median_inside(polygon: np.ndarray, minus: np.ndarray | None = None) -> np.ndarray:
            mask = np.zeros(photo.shape[:2], np.uint8)
            cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
            if minus is not None:
                cv2.fillPoly(mask, [np.round(minus).astype(np.int32)], 0)
            pixels = photo[mask.astype(bool)]
            return np.median(pixels, axis=0) if len(pixels) else np.array([170.0, 110.0, 100.0])

        lips = median_inside(landmarks[48:60], minus=landmarks[60:68])
        skin = median_inside(landmarks[[1, 2, 3, 48, 31]])
        return cls(
            edge=np.array([0.55, 0.32, 0.32]) * lips,
            deep=np.array([22.0, 8.0, 10.0]) + 0.05 * skin,
            tongue=0.8 * lips + 0.2 * np.array([170.0, 70.0, 80.0]),
            teeth=0.8 * np.array([236.0, 230.0, 214.0]) + 0.2 * skin,
        )


def _close_neutral_mouth(photo: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The photo with the opening between its neutral inner lips (teeth of a smile) inpainted from the lips.

    The warp stretches whatever lies between the inner lips; with this, closing lips never show
    squeezed teeth, and an opening is painted by `_paint_mouth` alone.
    """
    import cv2

    mask = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[60:68]).astype(np.int32)], 255)
    if not mask.any():
        return photo
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    return cv2.inpaint(np.ascontiguousarray(photo), mask, 3, cv2.INPAINT_TELEA)


def _paint_mouth(
    frame: np.ndarray, landmarks: np.ndarray, params: np.ndarray, iod: float, palette: _Palette
) -> None:
    """Paint the inside of the inner lips of ``frame`` [H, W, 3] in place: a seam where the lips touch,
    a cavity with a tongue, upper teeth under the upper lip and lower teeth when the jaw is wide open."""
    import cv2

    upper_arc = _smooth_arc(landmarks[60:65])  # corner 60 -> 64 along the upper inner lip
    lower_arc = _smooth_arc(landmarks[[64, 65, 66, 67, 60]])
    gap = float(np.linalg.norm(landmarks[[67, 66, 65]] - landmarks[[61, 62, 63]], axis=1).mean())
    margin = 4
    low = np.floor(np.minimum(upper_arc.min(0), lower_arc.min(0))).astype(int) - margin
    high = np.ceil(np.maximum(upper_arc.max(0), lower_arc.max(0))).astype(int) + margin
    low = np.maximum(low, 0)
    high = np.minimum(high, [frame.shape[1] - 1, frame.shape[0] - 1])
    if np.any(high - low < 2):
        return
    roi = frame[low[1] : high[1] + 1, low[0] : high[0] + 1]
    shape = roi.shape[:2]

    def fill(polygon: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage float32 [h, w] in [0, 1] of a polygon given in frame pixels."""
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [np.round((polygon - low) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        return mask.astype(np.float32) / 255

    cavity = fill(np.concatenate([upper_arc, lower_arc[1:-1]]))
    seam = np.zeros(shape, np.uint8)  # where the lips touch, a dark line
    middle = 0.5 * (upper_arc + lower_arc[::-1])
    cv2.polylines(seam, [np.round((middle - low) * 16).astype(np.int32)], False, 255, 1, cv2.LINE_AA, shift=4)
    coverage = np.maximum(cavity, 0.7 * seam.astype(np.float32) / 255)
    alpha = cv2.GaussianBlur(coverage, (0, 0), 0.6)
    depth = cv2.GaussianBlur(cavity, (0, 0), max(1.0, 0.35 * gap)) * cavity
    depth = depth / max(float(depth.max()), 1e-6) * float(np.clip(gap / (0.15 * iod), 0, 1))

    corner_l, corner_r = landmarks[60], landmarks[64]
    centre = 0.5 * (corner_l + corner_r)
    half_width = max(0.5 * float(np.linalg.norm(corner_r - corner_l)), 1e-6)
    x_axis = (corner_r - corner_l) / (2 * half_width)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    yy, xx = np.mgrid[low[1] : high[1] + 1, low[0] : high[0] + 1]
    u = ((np.stack([xx, yy], -1) - centre) @ x_axis) / half_width  # -1 .. 1 across the mouth, per pixel
    side_shade = np.clip(1 - 0.45 * u**2, 0.4, 1)[..., None]  # the corners of the mouth are in shadow

    colour = palette.edge + (palette.deep - palette.edge) * depth[..., None]
    jaw, teeth_show, lift = (params[_P[name]] for name in ("jaw_open", "teeth_show", "upper_lip_raise"))

    if gap > 0.08 * iod:  # the tongue lies low behind the lower teeth
        tongue = np.zeros(shape, np.uint8)
        at = landmarks[66] - y_axis * 0.3 * gap - low
        box = (
            (float(at[0]), float(at[1])),
            (1.1 * half_width, 0.7 * gap),
            float(np.degrees(np.arctan2(*x_axis[::-1]))),
        )
        cv2.ellipse(tongue, box, 255, -1)
        weight = cv2.GaussianBlur(tongue.astype(np.float32) / 255, (0, 0), 1.5)
        weight *= 0.8 * float(np.clip((gap - 0.08 * iod) / (0.1 * iod), 0, 1))
        colour = colour + (palette.tongue * side_shade - colour) * weight[..., None]

    def teeth_band(arc: np.ndarray, height: float, extent: float, direction: float) -> np.ndarray:
        """Coverage of a band of teeth hanging from (direction +1) or standing on (-1) a lip ``arc``."""
        arc_u = ((arc - centre) @ x_axis) / half_width
        drop = height * np.sqrt(np.clip(1 - (arc_u / extent) ** 2, 0, 1))
        return fill(np.concatenate([arc, (arc + direction * drop[:, None] * y_axis)[::-1]]))

    upper_h = min(iod * (0.03 + 0.05 * teeth_show + 0.04 * lift), 0.45 * gap)
    lower_h = min(iod * 0.05 * max(jaw - 0.6, 0) / 0.4 * (0.5 + teeth_show), 0.2 * gap)
    separations = sum(np.exp(-0.5 * ((u - edge) * half_width / 0.5) ** 2) for edge in (-0.3, 0.0, 0.3))
    tooth = palette.teeth * side_shade * (1 - 0.15 * np.clip(separations, 0, 1))[..., None]
    for arc, height, extent, direction, tone in (
        (lower_arc[::-1], lower_h, 0.45, -1.0, 0.8),
        (upper_arc, upper_h, 0.75, 1.0, 1.0),
    ):
        if height >= 0.5:  # teeth fade into the shadow of the cheeks toward the corners
            fade = np.sqrt(np.clip(1 - (u / extent) ** 2, 0, 1))
            band = cv2.GaussianBlur(teeth_band(arc, height, extent, direction), (0, 0), 0.5) * fade
            colour = colour + (tone * tooth - colour) * band[..., None]

    roi[:] = (roi * (1 - alpha[..., None]) + colour * alpha[..., None]).round().clip(0, 255).astype(np.uint8)
