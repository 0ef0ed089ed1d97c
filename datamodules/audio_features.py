"""Audio features on the pipeline's timebase: exactly ``STEPS_PER_FRAME`` log-mel steps per video frame."""

from __future__ import annotations

import numpy as np

from talking_face.datamodules import timebase

__all__ = ["fit_to_frames", "log_mel", "LOG_FLOOR"]

LOG_FLOOR: float = 1e-6
"""Added to mel power before the log, so digital silence gives a finite floor (log 1e-6 = -13.8)."""


def fit_to_frames(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Trim or zero-pad mono audio [N] to exactly ``num_frames * SAMPLES_PER_FRAME`` samples."""
    target = num_frames * timebase.SAMPLES_PER_FRAME
    audio = np.asarray(audio, np.float32)[:target]
    return np.pad(audio, (0, target - audio.size))


def log_mel(audio: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    """Log-mel features float32 [num_frames * STEPS_PER_FRAME, N_MELS] of 16 kHz mono audio [N].

    Step s is centred on sample ``s * HOP_LENGTH``, so frame f owns steps ``4f .. 4f+3``; the audio is
    first fitted to ``num_frames`` (default: the frames that cover it), which keeps audio and video
    aligned exactly over any length.
    """
    import librosa

    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono [N], got shape {audio.shape}")
    if num_frames is None:
        num_frames = timebase.num_frames_for(audio.size)
    if num_frames <= 0:
        raise ValueError("audio is empty: no frame to compute features for")
    audio = fit_to_frames(audio, num_frames)
    mel = librosa.feature.melspectrogram(
        y=audio, sr=timebase.SAMPLE_RATE, n_fft=timebase.N_FFT, hop_length=timebase.HOP_LENGTH,
        win_length=timebase.WIN_LENGTH, n_mels=timebase.N_MELS, fmin=55.0, fmax=7600.0, center=True,
    )  # fmt: skip
    steps = num_frames * timebase.STEPS_PER_FRAME
    return np.log(mel[:, :steps].T + LOG_FLOOR).astype(np.float32)
