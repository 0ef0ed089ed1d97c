"""Lip sync measured with no downloaded weights: the project's own detector re-run on a (generated) video.

A video's frames go through ``datamodules.faces.detector.track_landmarks`` (dlib, as in preprocessing and
``face_input``); its mouth is then judged three ways:

- ``mouth_lmd``: the detected mouth against the mouth it should have (the driving landmarks Face2Vid was
  given, or the real video's): the project's one LMD (``metrics.mouth_distance``, the same as training
  reports), averaged over the frames where a face was found;
- ``opening_sync``: the mouth opening (``datamodules.faces.mouth.mouth_opening``, face-normalised:
  inter-ocular units) against the speech envelope (``speech_envelope``: RMS of each frame's samples),
  Pearson correlation at lag 0 and the lag of the best correlation within +-``max_lag`` frames (an
  audio-video offset shows there);
- ``rest_opening``: the mean opening in pauses and in speech (``speech_input.voice_activity``): a mouth that
  keeps moving in pauses, the classic complaint, has a pause/speech ratio near 1.

``lip_sync`` gathers the measures that need no ground truth (any video with its speech). All landmarks are
[T, 68, 2] float32, ``found`` [T] bool (frames where the detector found the face; the rest are ignored).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from talking_face.datamodules.faces.alignment import (
    estimate_crop_transform,
    face_normalise,
    transform_points,
)
from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points
from talking_face.shapes import check_shape

__all__ = [
    "LIP_SYNC_KEYS",
    "MIN_FRAMES",
    "correlation",
    "detect_landmarks",
    "face_opening",
    "lip_sync",
    "mouth_lmd",
    "opening_sync",
    "rest_opening",
]

LIP_SYNC_KEYS = ("face_found", "opening_corr", "best_lag", "pause_opening", "speech_opening", "pause_ratio")
"""What ``lip_sync`` returns, in order."""
MIN_FRAMES = 3
"""Fewer found frames than this give NaN: no correlation or mean worth reporting."""


def detect_landmarks(frames: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """68 landmarks [T, 68, 2] (image pixels) and ``found`` [T] of RGB uint8 frames [H, W, 3] (streamed)."""
    from talking_face.datamodules.faces.detector import make_detector, track_landmarks

    return track_landmarks(frames, make_detector("dlib"))


def face_opening(landmarks: np.ndarray) -> np.ndarray:
    """Mouth opening [T] of landmarks [T, 68, 2] in image pixels, in inter-ocular units (size-free)."""
    size = 128  # any side: the normalised frame does not depend on it
    landmarks = np.asarray(landmarks, np.float64)
    crop = transform_points(landmarks, estimate_crop_transform(landmarks, size))
    return mouth_opening(face_normalise(mouth_points(crop), size))


def mouth_lmd(
    detected: np.ndarray,
    target: np.ndarray,
    found: np.ndarray,
    crop_size: int,
    target_crop_size: int | None = None,
) -> float:
    """LMD (pixels of a 128-px crop) averaged over the ``found`` frames (NaN if none).

    detected: [T, 68, 2] crop pixels of a ``crop_size`` crop; target: [T, 68, 2] crop pixels of a
    ``target_crop_size`` crop (default ``crop_size``).
    """
    from talking_face.lightning_modules.metrics import mouth_distance

    found = np.asarray(found, bool)
    check_shape(found, "T", "found", check_shape(detected, "T 68 2", "detected"))
    distances = mouth_distance(torch.from_numpy(np.asarray(detected)), torch.from_numpy(np.asarray(target)),
                               crop_size, target_crop_size)  # fmt: skip
    return float(distances.numpy()[found].mean()) if found.any() else float("nan")


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant (a mouth that never moves follows nothing)."""
    if len(x) < MIN_FRAMES:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    scale = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / scale) if scale > 1e-12 else 0.0


def opening_sync(
    opening: np.ndarray, envelope: np.ndarray, found: np.ndarray, max_lag: int = 5
) -> tuple[float, float]:
    """(correlation of ``opening`` [T] with ``envelope`` [T] at lag 0, the lag in [-max_lag, max_lag] frames
    where it is highest; NaN when no lag correlates positively). Lag L pairs opening[t] with
    envelope[t - L]: L > 0 means the mouth moves after the sound. Only frames where ``found`` count."""
    if not len(opening) == len(envelope) == len(found):
        raise ValueError(
            f"opening {len(opening)}, envelope {len(envelope)} and found {len(found)} frames differ"
        )
    found = np.asarray(found, bool)

    def at(lag: int) -> float:
        t = np.arange(max(lag, 0), len(opening) + min(lag, 0))
        keep = t[found[t]]
        return correlation(opening[keep], envelope[keep - lag])

    lags = range(-max_lag, max_lag + 1)
    scores = np.array([at(lag) for lag in lags])
    best = float(lags[int(np.nanargmax(scores))]) if np.nanmax(scores, initial=0.0) > 0 else float("nan")
    return at(0), best


def rest_opening(opening: np.ndarray, voiced: np.ndarray, found: np.ndarray) -> tuple[float, float]:
    """(mean opening in pauses, mean opening in speech) over found frames; NaN where too few frames."""

    def mean(where: np.ndarray) -> float:
        where = where & found
        return float(opening[where].mean()) if where.sum() >= MIN_FRAMES else float("nan")

    voiced = np.asarray(voiced, bool)
    return mean(~voiced), mean(voiced)


def lip_sync(
    landmarks: np.ndarray, found: np.ndarray, audio: np.ndarray, max_lag: int = 5
) -> dict[str, float]:
    """The lip-sync measures that need no ground truth, for landmarks [T, 68, 2] (image pixels) detected on
    a video whose speech is ``audio`` (mono at ``timebase.SAMPLE_RATE``).

    Keys: ``face_found`` (fraction of frames), ``opening_corr`` and ``best_lag`` (``opening_sync``),
    ``pause_opening`` and ``speech_opening`` (``rest_opening``, inter-ocular units) and ``pause_ratio``
    (pause / speech: lower means a mouth that rests when nobody speaks).
    """
    from talking_face.generation.speech_input import speech_envelope, voice_activity

    found = np.asarray(found, bool)
    num_frames = len(found)
    if not found.any():  # no face anywhere: nothing to measure (and no landmarks to normalise)
        return dict.fromkeys(LIP_SYNC_KEYS, float("nan")) | {"face_found": 0.0}
    opening = face_opening(landmarks)
    correlation, lag = opening_sync(opening, speech_envelope(audio, num_frames), found, max_lag)
    pause, speech = rest_opening(opening, voice_activity(audio, num_frames), found)
    return {
        "face_found": float(found.mean()),
        "opening_corr": correlation,
        "best_lag": lag,
        "pause_opening": pause,
        "speech_opening": speech,
        "pause_ratio": pause / speech if speech > 0 else float("nan"),
    }
