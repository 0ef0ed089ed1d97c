"""The one place where video rate, audio rate and feature hop are fixed.

Preprocessing, the DataModule, both stages and `generate` all read these numbers, so audio features
and video frames stay aligned exactly over any length: every video frame owns
``STEPS_PER_FRAME`` audio-feature steps and ``SAMPLES_PER_FRAME`` audio samples.

    16 000 Hz / 25 fps = 640 samples per frame = 4 steps x 160 samples (10 ms hop)
"""

from __future__ import annotations

FPS: int = 25
"""Video frames per second inside the pipeline (inputs at other rates are resampled to it)."""

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


def frame_times(num_frames: int) -> list[float]:
    """Centre time in seconds of each video frame: frame f spans [f/FPS, (f+1)/FPS)."""
    return [(f + 0.5) / FPS for f in range(num_frames)]
