"""Where someone speaks: Silero VAD's speech probability on video frames.

Loudness cannot tell speech from music or noise, and a word recogniser finds words in a saxophone with a
confidence that overlaps casual speech's. Silero VAD, a small network trained to tell speech from noise and
music, can: its wheel ships the weights (nothing is downloaded), and it runs at a small fraction of real time
on one CPU thread. Figures on real speech, noise and music: ``benchmarks/README.md``
(``speech_detection.py``).
"""

from __future__ import annotations

import functools
import threading
import warnings

import numpy as np

from talking_face.datamodules import timebase
from talking_face.shapes import check_shape

__all__ = ["SPEECH_THRESHOLD", "speech_probability"]

SPEECH_THRESHOLD = 0.5
"""A frame whose speech probability reaches this holds speech (Silero's own default threshold)."""

_CHUNK = 512
"""Samples per Silero step at 16 kHz (32 ms), the only window its 16-kHz model takes."""

_LOCK = threading.Lock()  # the model carries its recurrent state between chunks: one caller at a time


@functools.cache
def _model():
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad  # importing it sets torch to one thread for the whole process

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            return load_silero_vad()  # its TorchScript model, the one it ships for torch
    finally:
        torch.set_num_threads(threads)


def speech_probability(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Float32 [num_frames]: how likely video frame f holds speech, from ``audio`` float32 mono [N] at
    ``timebase.SAMPLE_RATE`` (the chunk probabilities read at each frame's centre)."""
    import torch

    audio = np.asarray(audio, np.float32)
    check_shape(audio, "N", "audio")
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    assert timebase.SAMPLE_RATE == 16_000, "Silero's 512-sample step is for 16 kHz audio"
    with _LOCK, torch.inference_mode():
        chunks = _model().audio_forward(torch.from_numpy(audio)[None], timebase.SAMPLE_RATE)[0].numpy()
    chunk_centres = (np.arange(len(chunks)) + 0.5) * _CHUNK
    frame_centres = (np.arange(num_frames) + 0.5) * timebase.SAMPLES_PER_FRAME
    return np.interp(frame_centres, chunk_centres, chunks).astype(np.float32)
