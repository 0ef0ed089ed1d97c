"""Phoneme timings for text at inference: which phoneme lies under each video frame.

Stage 1 reads text as frame phoneme ids [T]. Three real ways to place a text's phonemes on frames:

- ``timing_from_durations``: text only, no speech; the duration predictor trained with the
  ``LandmarkModule`` gives each phoneme's frames (optionally rescaled to a wanted length).
- ``timing_from_tts``: text only; the project's TTS speaks the text and reports its own phoneme times,
  so the same speech can be played with the video.
- ``timing_from_audio``: audio + text; a forced aligner places the text's phonemes on the given speech
  (its ``score`` lets the caller warn and fall back to audio only when the text does not match).

Each returns a ``TextTiming`` whose ``frame_ids()`` feeds ``LandmarkModule.predict(phoneme_ids=...)``.
Heavy pieces (g2p, TTS engines, the aligner) are imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from talking_face.datamodules import timebase
from talking_face.datamodules.segments import Segment

if TYPE_CHECKING:
    from talking_face.datamodules.tts import Speech, Voice
    from talking_face.lightning_modules.landmark_module import LandmarkModule

__all__ = [
    "TextTiming",
    "segments_from_frame_ids",
    "text_phonemes",
    "timing_from_audio",
    "timing_from_durations",
    "timing_from_tts",
]

Source = Literal["duration_predictor", "tts", "forced_aligner"]


@dataclass(frozen=True)
class TextTiming:
    """A text's phonemes placed in time.

    ``phonemes`` cover ``[0, duration]`` seconds contiguously (ARPAbet without stress, ``"sil"``);
    ``num_frames`` video frames at ``timebase.FPS``; ``score`` is the aligner's confidence (None for the
    other sources).
    """

    phonemes: tuple[Segment, ...]
    num_frames: int
    source: Source
    score: float | None = None

    def frame_ids(self) -> np.ndarray:
        """Phoneme id (``datamodules.phonemes.VOCAB``) under each frame centre, int64 [num_frames]."""
        from talking_face.datamodules.alignment import frame_phoneme_ids

        return frame_phoneme_ids(list(self.phonemes), self.num_frames)


def text_phonemes(text: str) -> list[str]:
    """The phoneme labels of ``text`` framed by silence: ``["sil", *phonemes, "sil"]`` (g2p-en, offline).

    Raises ``ValueError`` for empty text or text with no words.
    """
    from talking_face.datamodules.phonemes import pronounce

    return ["sil", *(p for word in pronounce(text) for p in word.phonemes), "sil"]


def segments_from_frame_ids(frame_ids: Sequence[int] | np.ndarray | torch.Tensor) -> list[Segment]:
    """Runs of equal frame ids [T] -> timed phonemes: a run of frames [a, b) spans [a / FPS, b / FPS)."""
    from talking_face.datamodules.phonemes import VOCAB

    ids = np.asarray(frame_ids.cpu() if isinstance(frame_ids, torch.Tensor) else frame_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"frame ids must be a non-empty [T] sequence, got shape {ids.shape}")
    bounds = np.flatnonzero(np.diff(ids)) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [ids.size]])
    fps = timebase.FPS
    return [Segment(VOCAB[ids[a]], a / fps, b / fps) for a, b in zip(starts, ends, strict=True)]


@torch.no_grad()
def timing_from_durations(module: LandmarkModule, text: str, num_frames: int | None = None) -> TextTiming:
    """Text only: the module's duration predictor places ``text_phonemes(text)`` on frames.

    ``num_frames`` rescales the predicted durations to exactly that many frames (e.g. a wanted length);
    None keeps the predicted speaking rate.
    """
    from talking_face.datamodules.phonemes import phoneme_id

    if num_frames is not None and num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    labels = text_phonemes(text)
    tokens = torch.tensor([[phoneme_id(label) for label in labels]], device=module.device)
    token_lengths = torch.tensor([len(labels)], device=module.device)
    target = None if num_frames is None else torch.tensor([num_frames], device=module.device)
    was_training = module.training
    module.eval()
    try:
        frame_ids, lengths = module.place_phonemes(tokens, token_lengths, target)
    finally:
        module.train(was_training)
    frames = int(lengths[0])
    return TextTiming(tuple(segments_from_frame_ids(frame_ids[0, :frames])), frames, "duration_predictor")


def timing_from_tts(text: str, voice: Voice | None = None) -> tuple[TextTiming, Speech]:
    """Text only: speak ``text`` with the project's TTS (default: its first default voice).

    Returns the timing and the ``Speech`` (audio at the engine's rate: resample to
    ``timebase.SAMPLE_RATE`` before computing features; the frame count here already matches).
    """
    from talking_face.datamodules.tts import default_voices, synthesize

    speech = synthesize(text, voice if voice is not None else default_voices()[0])
    num_frames = timebase.num_frames_for(round(speech.duration * timebase.SAMPLE_RATE))
    return TextTiming(tuple(speech.phonemes), num_frames, "tts"), speech


def timing_from_audio(audio: np.ndarray, sample_rate: int, text: str) -> TextTiming:
    """Audio + text: force-align ``text`` to mono ``audio`` [N] at ``sample_rate`` with a real aligner."""
    from talking_face.datamodules.forced_aligner import force_align

    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be non-empty mono [N], got shape {audio.shape}")
    alignment = force_align(audio, sample_rate, text)
    num_frames = timebase.num_frames_for(round(audio.size / sample_rate * timebase.SAMPLE_RATE))
    return TextTiming(tuple(alignment.phonemes), num_frames, "forced_aligner", float(alignment.score))
