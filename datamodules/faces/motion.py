"""Head motion, blinks and the jaw: what makes a still face look alive, for the product and the corpus.

Landmarks are ``(x, y)`` image pixels in the 68-point scheme. Everything random comes from the ``rng``
passed in, so a seed gives the same motion.
"""

from __future__ import annotations

import numpy as np

from talking_face.datamodules import timebase

JAW = np.arange(3, 14)
JAW_FOLLOW = np.array([0.08, 0.25, 0.5, 0.75, 0.92, 1.0, 0.92, 0.75, 0.5, 0.25, 0.08])
"""How much of the lower lip's downward motion each jaw point (3-13) follows: all at the chin,
none at the ears."""
_EYELIDS = np.array([[37, 41], [38, 40], [43, 47], [44, 46]])  # (upper, lower) lid points facing each other


def inter_ocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (means of points 36-41 and 42-47) of landmarks [..., 68, 2]: [...]."""
    return np.linalg.norm(landmarks[..., 42:48, :].mean(-2) - landmarks[..., 36:42, :].mean(-2), axis=-1)


def face_down_direction(landmarks: np.ndarray) -> np.ndarray:
    """Unit vectors [..., 2] from the eyes to the chin, square to the eye line, of landmarks [..., 68, 2]."""
    eyes = landmarks[..., 42:48, :].mean(-2) - landmarks[..., 36:42, :].mean(-2)
    down = np.stack([-eyes[..., 1], eyes[..., 0]], axis=-1)
    return down / (np.linalg.norm(down, axis=-1, keepdims=True) + 1e-9)


def blink_track(
    num_frames: int, rate: float, rng: np.random.Generator, fps: float = timebase.FPS
) -> np.ndarray:
    """Eyelid closure float64 [T] in [0, 1] at the centres of frames at ``fps``.

    Blinks come ``rate`` per second on average at random times (each 150-250 ms, then at least 0.5 s
    open, then an exponential wait), closing in their first 35 % and reopening more slowly.
    """
    times = np.asarray(timebase.frame_times(num_frames, fps))
    closure = np.zeros(num_frames)
    end = num_frames / fps
    wait = max(1.0 / rate - 0.7, 0.1) if rate > 0 else np.inf  # 0.7 s = mean blink + refractory time
    start = rng.exponential(1.0 / rate) if rate > 0 else end
    while start < end:
        duration = rng.uniform(0.15, 0.25)
        phase = (times - start) / duration  # 0 .. 1 over the blink
        closing = np.sin(0.5 * np.pi * np.clip(phase / 0.35, 0, 1)) ** 2
        opening = np.cos(0.5 * np.pi * np.clip((phase - 0.35) / 0.65, 0, 1)) ** 2
        inside = (phase >= 0) & (phase <= 1)
        closure = np.maximum(closure, np.where(inside, np.minimum(closing, opening), 0.0))
        start += duration + 0.5 + rng.exponential(wait)
    return closure


def apply_blinks(landmarks: np.ndarray, neutral: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """Upper lids travel 80 % and lower lids 20 % of the neutral lid gap, times ``closure`` [T]: they meet."""
    out = landmarks.copy()
    upper, lower = neutral[_EYELIDS[:, 0]], neutral[_EYELIDS[:, 1]]
    out[:, _EYELIDS[:, 0]] += closure[:, None, None] * 0.8 * (lower - upper)
    out[:, _EYELIDS[:, 1]] += closure[:, None, None] * 0.2 * (upper - lower)
    return out


def head_motion_track(
    num_frames: int, amplitude: float, rng: np.random.Generator, fps: float = timebase.FPS
) -> np.ndarray:
    """Head pose float64 [T, 4]: (roll radians, x shift / iod, y shift / iod, log scale) at the centres of
    frames at ``fps``.

    Each is a sum of three sinusoids of 0.08-0.7 Hz with random phases and weights; ``amplitude = 1`` gives
    a standard deviation of about 1.5 degrees, 0.05 and 0.035 iod, and 1.2 % scale.
    """
    times = np.asarray(timebase.frame_times(num_frames, fps))
    scale = amplitude * np.array([np.deg2rad(1.5), 0.05, 0.035, 0.012])
    frequencies = np.exp(rng.uniform(np.log(0.08), np.log(0.7), (4, 3)))
    phases = rng.uniform(0, 2 * np.pi, (4, 3))
    weights = rng.dirichlet(np.ones(3), 4)
    waves = np.sin(2 * np.pi * frequencies[None] * times[:, None, None] + phases[None])  # [T, 4, 3]
    return np.sqrt(2) * scale * (np.sqrt(weights)[None] * waves).sum(-1)


def pose_matrices(pose: np.ndarray, centre: np.ndarray, iod: float) -> np.ndarray:
    """Similarities [T, 2, 3] (pixels) of head poses [T, 4] about the face ``centre`` [2]."""
    angle, shift, scale = pose[:, 0], pose[:, 1:3] * iod, np.exp(pose[:, 3])
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # [T, 2, 2]
    offset = centre + shift - linear @ centre
    return np.concatenate([linear, offset[..., None]], axis=-1)


def transform_landmarks(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Points [T, N, 2] or [N, 2] through per-frame affine matrices [T, 2, 3]: [T, N, 2]."""
    return points @ np.swapaxes(matrices[:, :, :2], 1, 2) + matrices[:, None, :, 2]


def photo_motion(
    faces: np.ndarray,
    neutral: np.ndarray,
    head_motion: float,
    blinks: float,
    seed: int = 0,
    fps: float = timebase.FPS,
) -> np.ndarray:
    """``faces`` [T, 68, 2] at ``fps`` (a photo's landmarks with a speaking mouth) with head motion and blinks
    added.

    ``neutral`` [68, 2] is the photo's own face (the eyelids' open positions and the head's centre);
    ``head_motion`` scales the built-in corpus' head-motion model (1 is about 1.5 degrees of roll), ``blinks``
    is a rate per second; 0 and 0 keep the head still.
    """
    if head_motion < 0 or blinks < 0:
        raise ValueError(f"head_motion and blinks must be >= 0, got {head_motion} and {blinks}")
    neutral = np.asarray(neutral, np.float64)
    rng = np.random.default_rng(seed)
    closure = blink_track(len(faces), blinks, rng, fps)
    pose = head_motion_track(len(faces), head_motion, rng, fps)
    matrices = pose_matrices(pose, neutral.mean(0), float(inter_ocular(neutral)))
    blinking = apply_blinks(np.asarray(faces, np.float64), neutral, closure)
    return transform_landmarks(blinking, matrices).astype(np.float32)
