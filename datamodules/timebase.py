"""The one place where video rate, audio rate and feature hop are fixed.

Preprocessing, the DataModule, both stages and `generate` all read these numbers, so audio features
and video frames stay aligned exactly over any length: every video frame owns
``STEPS_PER_FRAME`` audio-feature steps and ``SAMPLES_PER_FRAME`` audio samples.

    16 000 Hz / 25 fps = 640 samples per frame = 4 steps x 160 samples (10 ms hop)
"""

from __future__ import annotations

import math

import numpy as np

FPS: int = 25
"""Video frames per second inside the pipeline, the models' rate (training clips at other rates are resampled
to it; ``generate`` plays a dubbed clip at the clip's own rate, ``resample_frames``)."""

SAMPLE_RATE: int = 16_000
"""Audio samples per second inside the pipeline (inputs at other rates are resampled to it)."""

STEPS_PER_FRAME: int = 4
"""Audio-feature steps per video frame."""

SAMPLES_PER_FRAME: int = SAMPLE_RATE // FPS
HOP_LENGTH: int = SAMPLES_PER_FRAME // STEPS_PER_FRAME
WIN_LENGTH: int = 400
"""25 ms analysis window."""
N_FFT: int = 512
N_MELS: int = 80

assert SAMPLE_RATE % FPS == 0 and SAMPLES_PER_FRAME % STEPS_PER_FRAME == 0, "timebase must divide exactly"


def num_frames_for(num_samples: int) -> int:
    """Video frames covering ``num_samples`` audio samples at ``SAMPLE_RATE`` (a partial frame counts)."""
    return -(-num_samples // SAMPLES_PER_FRAME)


def frame_times(num_frames: int, fps: float = FPS) -> list[float]:
    """Centre time in seconds of each video frame: frame f spans [f/fps, (f+1)/fps)."""
    return [(f + 0.5) / fps for f in range(num_frames)]


def num_frames_at(seconds: float, fps: float) -> int:
    """Video frames at ``fps`` covering ``seconds`` (a partial frame counts; at least one)."""
    return max(math.ceil(seconds * fps - 1e-6), 1)


def frames_under(num_frames: int, fps: float, num_model_frames: int) -> np.ndarray:
    """Int64 [num_frames]: the frame at ``FPS`` (of ``num_model_frames``) that holds the centre of each frame
    at ``fps``: how a per-frame label (a phoneme, voicing) reads at another frame rate."""
    centres = np.asarray(frame_times(num_frames, fps))
    return np.minimum(np.floor(centres * FPS), num_model_frames - 1).astype(np.int64)


def resample_frames(values: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Per-frame ``values`` [T, ...] at ``FPS`` read at the centres of ``num_frames`` frames at ``fps``:
    [num_frames, ...], linear between neighbouring frames and held at the ends. Motion (landmarks) made at
    the model's rate plays at a clip's own rate this way."""
    values = np.asarray(values)
    position = np.clip((np.arange(num_frames) + 0.5) * (FPS / fps) - 0.5, 0, len(values) - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, len(values) - 1)
    weight = (position - below).reshape(-1, *[1] * (values.ndim - 1))
    return ((1 - weight) * values[below] + weight * values[above]).astype(values.dtype)


def window_at(frames: int, fps: float) -> int:
    """A smoothing window of ``frames`` frames at ``FPS`` as the odd number of frames at ``fps`` that lasts
    about as long (1 stays 1: no smoothing)."""
    if frames <= 1:
        return 1
    return max(2 * round((frames * fps / FPS - 1) / 2) + 1, 1)
