"""Aligned face crops, the transforms that paste them back, and the face-normalised frame of reference.

Coordinates: ``(x, y)`` with x to the right and y down. Image and crop pixels are *pixel-centre*
coordinates (pixel ``(i, j)`` covers ``[i - 0.5, i + 0.5]``), the convention of dlib and
``cv2.warpAffine``. The template is stored as *crop fractions* (0 and 1 are the crop's outer edges), so the
crop pixel of a fraction ``f`` is ``f * crop_size - 0.5``: a 256 crop is exactly a 128 crop at twice the
resolution, and nothing assumes one crop size.

Why the crop follows only ``landmark_scheme.STABLE`` (nose bridge, nose base, the four eye corners): those
points do not move when the mouth opens or the eyes blink. A crop fitted to the jaw or lips would move with
speech, so speech motion would leak into the background and the head pose of the aligned video.

A transform is a [2, 3] similarity (rotation, uniform scale, translation) mapping image pixels to crop
pixels, ``p_crop = A @ p_img + t`` with ``transform = [A | t]``; batches are [T, 2, 3].

The face-normalised frame (stage 1 predicts mouth landmarks in it): origin at the template's mouth centre,
unit = the template's inter-ocular distance (outer eye corners 36-45), axes along the crop's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_LANDMARKS, STABLE
from talking_face.shapes import check_shape

__all__ = [
    "INTEROCULAR",
    "MIRROR_68",
    "MOUTH_CENTRE",
    "TEMPLATE_68",
    "TEMPLATE_STABLE",
    "derive_template",
    "estimate_crop_transform",
    "face_denormalise",
    "face_normalise",
    "invert_transform",
    "pixels_per_unit",
    "similarity_fit",
    "smooth_over_time",
    "smooth_transforms",
    "template_points",
    "transform_points",
    "warp_to_crop",
]

# The index of each point's mirror image (x -> -x) in the 68-point iBUG scheme.
MIRROR_68: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw
    *range(26, 21, -1),  # right brow <- left brow
    *range(21, 16, -1),  # left brow <- right brow
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # nose base
    45, 44, 43, 42, 47, 46,  # right eye <- left eye
    39, 38, 37, 36, 41, 40,  # left eye <- right eye
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lip
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lip
)  # fmt: skip

# fmt: off
# Mean 68-point shape in crop fractions (x, y). Derived by `derive_template` (its defaults) from the dlib
# detections (upsample 1) of the two real packaged photos, skimage.data.astronaut() and matplotlib's
# grace_hopper.jpg, each also mirrored, Procrustes-aligned on the STABLE points and averaged, then placed
# so that the forehead (the brow-to-nose-base height above the brows), the chin with the mouth wide open
# (+0.45 inter-ocular) and the ears (jaw ends +0.15 inter-ocular) fit the square with a 5 % margin.
# Rounded to 4 decimals; tests/test_face_alignment.py re-derives it from the photos and checks the numbers.
TEMPLATE_68: np.ndarray = np.array([
    # 0-16: jaw
    [0.2372, 0.3944], [0.2439, 0.4629], [0.2540, 0.5280], [0.2660, 0.5936], [0.2866, 0.6586],
    [0.3224, 0.7143], [0.3732, 0.7580], [0.4315, 0.7902], [0.5000, 0.8001], [0.5685, 0.7902],
    [0.6268, 0.7580], [0.6776, 0.7143], [0.7134, 0.6586], [0.7340, 0.5936], [0.7460, 0.5280],
    [0.7561, 0.4629], [0.7628, 0.3944],
    # 17-26: brows
    [0.2768, 0.3480], [0.3039, 0.3093], [0.3496, 0.2945], [0.3975, 0.2983], [0.4414, 0.3162],
    [0.5586, 0.3162], [0.6025, 0.2983], [0.6504, 0.2945], [0.6961, 0.3093], [0.7232, 0.3480],
    # 27-35: nose
    [0.5000, 0.3730], [0.5000, 0.4208], [0.5000, 0.4673], [0.5000, 0.5164], [0.4409, 0.5396],
    [0.4694, 0.5484], [0.5000, 0.5577], [0.5306, 0.5484], [0.5591, 0.5396],
    # 36-47: eyes
    [0.3335, 0.3805], [0.3613, 0.3606], [0.3936, 0.3612], [0.4261, 0.3862], [0.3930, 0.3902],
    [0.3600, 0.3903], [0.5739, 0.3862], [0.6064, 0.3612], [0.6387, 0.3606], [0.6665, 0.3805],
    [0.6400, 0.3903], [0.6070, 0.3902],
    # 48-67: mouth
    [0.3864, 0.6129], [0.4260, 0.6027], [0.4682, 0.6013], [0.5000, 0.6073], [0.5318, 0.6013],
    [0.5740, 0.6027], [0.6136, 0.6129], [0.5760, 0.6520], [0.5331, 0.6702], [0.5000, 0.6742],
    [0.4669, 0.6702], [0.4240, 0.6520], [0.4003, 0.6154], [0.4676, 0.6211], [0.5000, 0.6245],
    [0.5324, 0.6211], [0.5997, 0.6154], [0.5324, 0.6404], [0.5000, 0.6437], [0.4676, 0.6404],
], dtype=np.float32)
# fmt: on
TEMPLATE_68.setflags(write=False)

TEMPLATE_STABLE: np.ndarray = TEMPLATE_68[list(STABLE)]
"""float32 [13, 2]: the template's STABLE points in crop fractions; the targets of the crop transform."""

MOUTH_CENTRE: tuple[float, float] = tuple(float(v) for v in TEMPLATE_68[list(MOUTH)].mean(axis=0))
"""The template's mouth centre (mean of points 48-67) in crop fractions: origin of the normalised frame."""

INTEROCULAR: float = float(np.linalg.norm(TEMPLATE_68[45] - TEMPLATE_68[36]))
"""The template's outer-eye-corner distance as a fraction of the crop side: unit of the normalised frame."""


def template_points(crop_size: int, points: np.ndarray = TEMPLATE_STABLE) -> np.ndarray:
    """Template points (crop fractions [..., 2]) -> crop pixels [..., 2] of a ``crop_size`` crop."""
    return np.asarray(points, dtype=np.float64) * crop_size - 0.5


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (no reflection) mapping ``src`` onto ``dst`` (Umeyama in 2-D).

    src: [..., N, 2]; dst: [..., N, 2] or [N, 2] (broadcast). Returns float64 [..., 2, 3].
    Closed form with complex numbers: w = a z + b with a = sum(conj(z_c) w_c) / sum(|z_c|^2).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape[-1] != 2 or dst.shape[-1] != 2 or src.shape[-2] != dst.shape[-2]:
        raise ValueError(
            f"alignment.similarity_fit: want [..., N, 2] point sets, got {src.shape} and {dst.shape}"
        )
    z = src[..., 0] + 1j * src[..., 1]
    w = dst[..., 0] + 1j * dst[..., 1]
    zc = z - z.mean(axis=-1, keepdims=True)
    wc = w - w.mean(axis=-1, keepdims=True)
    energy = (np.abs(zc) ** 2).sum(axis=-1)
    if np.any(energy <= 1e-12):
        raise ValueError(
            "alignment.similarity_fit: degenerate source points (all coincide); is there a face?"
        )
    a = (np.conj(zc) * wc).sum(axis=-1) / energy
    b = w.mean(axis=-1) - a * z.mean(axis=-1)
    return np.stack(
        [np.stack([a.real, -a.imag, b.real], axis=-1), np.stack([a.imag, a.real, b.imag], axis=-1)], axis=-2
    )


def estimate_crop_transform(landmarks: np.ndarray, crop_size: int = 128) -> np.ndarray:
    """Similarity (image pixels -> ``crop_size`` crop pixels) putting the STABLE points on the template.

    landmarks: [68, 2] or [T, 68, 2] image pixels. Returns float64 [2, 3] or [T, 2, 3].
    """
    landmarks = np.asarray(landmarks)
    if landmarks.shape[-2:] != (NUM_LANDMARKS, 2) or landmarks.ndim not in (2, 3):
        raise ValueError(
            f"alignment.estimate_crop_transform: want [68, 2] or [T, 68, 2], got {landmarks.shape}"
        )
    return similarity_fit(landmarks[..., list(STABLE), :], template_points(crop_size))


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply [2, 3] to points [..., 2], or [T, 2, 3] to points [T, ..., 2]."""
    points = np.asarray(points)
    transform = np.asarray(transform)
    if transform.shape[-2:] != (2, 3) or points.shape[-1] != 2:
        got = f"{points.shape} and {transform.shape}"
        raise ValueError(
            f"alignment.transform_points: want points [..., 2] and transforms [..., 2, 3], got {got}"
        )
    lead = transform.shape[:-2]
    if points.shape[: len(lead)] != lead:
        raise ValueError(
            f"alignment.transform_points: batch {lead} of transforms does not lead points {points.shape}"
        )
    extra = points.ndim - len(lead) - 1  # point axes between the batch and the coordinate
    linear = transform[..., :2].reshape(*lead, *(1,) * extra, 2, 2)
    shift = transform[..., 2].reshape(*lead, *(1,) * extra, 2)
    return (linear @ points[..., None])[..., 0] + shift


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of an affine [..., 2, 3] (crop -> image for a crop transform)."""
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape[-2:] != (2, 3):
        raise ValueError(f"alignment.invert_transform: want [..., 2, 3], got {transform.shape}")
    inverse = np.linalg.inv(transform[..., :2])
    return np.concatenate([inverse, -(inverse @ transform[..., 2:])], axis=-1)


def warp_to_crop(frame: np.ndarray, transform: np.ndarray, crop_size: int = 128) -> np.ndarray:
    """Resample ``frame`` [H, W, (C)] into the [crop_size, crop_size, (C)] crop of ``transform`` [2, 3].

    Border pixels are replicated (no black wedges when the face is near the edge). Strong downscaling is
    anti-aliased by halving the frame with ``cv2.pyrDown`` first (pyrDown maps x -> x / 2 in pixel centres).
    """
    import cv2

    transform = np.asarray(transform, dtype=np.float64)
    check_shape(transform, "2 3", "transform")
    while np.sqrt(abs(np.linalg.det(transform[:, :2]))) < 0.5 and min(frame.shape[:2]) >= 8:
        frame = cv2.pyrDown(frame)
        transform = np.concatenate([transform[:, :2] * 2.0, transform[:, 2:]], axis=1)
    return cv2.warpAffine(
        frame, transform, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def smooth_over_time(values: np.ndarray, window: int, polyorder: int = 2) -> np.ndarray:
    """Savitzky-Golay filter along axis 0 (time): zero phase, so it removes jitter without lagging motion.

    values: [T, ...]. ``window`` is shrunk to the longest odd length <= T; a window <= polyorder (e.g. 1)
    returns a float copy unchanged.
    """
    from scipy.signal import savgol_filter

    values = np.asarray(values, dtype=np.float64)
    window = min(int(window), len(values))
    window -= 1 - window % 2  # odd
    if window <= polyorder:
        return values.copy()
    return savgol_filter(values, window, polyorder, axis=0, mode="interp")


def smooth_transforms(transforms: np.ndarray, window: int = 9) -> np.ndarray:
    """Smooth [T, 2, 3] crop transforms over time as log-scale, unwrapped angle and translation.

    The parameters are those of the inverse (crop -> image), whose translation is the image position of
    the crop's corner, so every smoothed transform is again a similarity (no shear) of the same crop size.
    """
    transforms = np.asarray(transforms, dtype=np.float64)
    check_shape(transforms, "T 2 3", "transforms")
    inverse = invert_transform(transforms)
    a = inverse[:, 0, 0] + 1j * inverse[:, 1, 0]
    params = np.stack([np.log(np.abs(a)), np.unwrap(np.angle(a)), inverse[:, 0, 2], inverse[:, 1, 2]], axis=1)
    log_scale, angle, tx, ty = smooth_over_time(params, window).T
    a = np.exp(log_scale + 1j * angle)
    smoothed = np.stack(
        [np.stack([a.real, -a.imag, tx], axis=-1), np.stack([a.imag, a.real, ty], axis=-1)], axis=-2
    )
    return invert_transform(smoothed)


def pixels_per_unit(crop_size: int) -> float:
    """Crop pixels per normalised unit (the template inter-ocular distance) in a ``crop_size`` crop."""
    return INTEROCULAR * crop_size


def _normalised_frame(points: Any, crop_size: int) -> tuple[Any, Any, float]:
    """(points as float, origin in crop pixels of the same array type, unit in crop pixels)."""
    origin = [c * crop_size - 0.5 for c in MOUTH_CENTRE]
    if isinstance(points, np.ndarray) or not hasattr(points, "new_tensor"):
        points = np.asarray(points)
        points = points.astype(np.result_type(points.dtype, np.float32), copy=False)
        return points, np.asarray(origin, dtype=points.dtype), pixels_per_unit(crop_size)
    if not points.is_floating_point():  # a torch tensor
        points = points.float()
    return points, points.new_tensor(origin), pixels_per_unit(crop_size)


def face_normalise(points_crop: Any, crop_size: int) -> Any:
    """Crop pixels [..., 2] -> face-normalised coordinates [..., 2] (numpy array or torch tensor alike)."""
    points, origin, unit = _normalised_frame(points_crop, crop_size)
    return (points - origin) / unit


def face_denormalise(points_normalised: Any, crop_size: int) -> Any:
    """Face-normalised coordinates [..., 2] -> crop pixels [..., 2]; inverse of `face_normalise`."""
    points, origin, unit = _normalised_frame(points_normalised, crop_size)
    return points * unit + origin


def derive_template(
    shapes: np.ndarray,
    forehead: float = 1.0,
    mouth_open: float = 0.45,
    ear: float = 0.15,
    margin: float = 0.05,
    iterations: int = 10,
) -> np.ndarray:
    """Mean 68-point shape in crop fractions from real detections [N, 68, 2] (how `TEMPLATE_68` was made).

    Each shape and its mirror image are aligned on the STABLE points (generalised Procrustes) and averaged,
    which makes the mean left-right symmetric and upright. It is then scaled and centred so that a whole face
    fits the square: the forehead (``forehead`` x the brow-to-nose-base height above the brows), the chin
    lowered by ``mouth_open`` inter-ocular distances (mouth wide open), the ears (``ear`` inter-ocular
    distances beyond jaw points 0 and 16), plus ``margin`` of the side on every edge.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    check_shape(shapes, f"N {NUM_LANDMARKS} 2", "shapes")
    mirrored = shapes[:, list(MIRROR_68)] * np.array([-1.0, 1.0])
    shapes = np.concatenate([shapes, mirrored])
    stable = list(STABLE)
    mean = shapes[0]
    for _ in range(iterations):
        aligned = transform_points(shapes, similarity_fit(shapes[:, stable], mean[stable]))
        mean = aligned.mean(axis=0)
        # Fix the gauge: outer eye corners horizontal, inter-ocular distance 1, eyes' midpoint at the origin.
        eyes = np.stack([mean[36], mean[45]])
        mean = transform_points(mean, similarity_fit(eyes, np.array([[-0.5, 0.0], [0.5, 0.0]])))
    brow_y = mean[17:27, 1].min()
    top = brow_y - forehead * (mean[33, 1] - mean[17:27, 1].mean())
    bottom = mean[8, 1] + mouth_open
    half_width = max(abs(mean[0, 0]), abs(mean[16, 0])) + ear
    side = max(bottom - top, 2 * half_width) / (1 - 2 * margin)
    centre = np.array([0.0, (top + bottom) / 2])
    return ((mean - centre) / side + 0.5).astype(np.float32)
