"""What the face will say: speech and/or text -> audio at the pipeline rate, phoneme timings, voice activity.

Three modes from the user's inputs:

- audio only: the recording drives stage 1 through its log-mel features;
- text only: the project's TTS speaks the text and reports its own phoneme times, so stage 1 gets both the
  synthesised audio and exact timings (the best input measured for stage 1);
- audio + text: a real forced aligner places the text's phonemes on the recording; when its confidence is
  low (the text does not match the speech), a warning is given and the audio alone drives the mouth.

``voice_activity`` marks the frames where someone is speaking, so the mouth can rest in pauses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from talking_face.datamodules import timebase

__all__ = ["SpeechInput", "find_voice", "prepare_speech", "speech_envelope", "voice_activity"]

_WHERE = "talking_face/generation/speech_input.py"
Mode = Literal["audio", "text", "both"]

MIN_ALIGNMENT_SCORE = 0.1
"""Aligner confidence below which text and speech are taken not to match (right text scored 0.2-1.0 on
the measured utterances, wrong text <= 0.04; see ``datamodules/forced_aligner.py``)."""

SILENT_RMS = 1e-4
"""Speech whose RMS is below this (about -80 dBFS) holds nothing to lip-sync."""


@dataclass(frozen=True)
class SpeechInput:
    """Speech ready for stage 1.

    ``audio`` float32 mono [N] at ``timebase.SAMPLE_RATE``; ``num_frames`` video frames cover it (the last
    one possibly partial); ``phoneme_ids`` int64 [num_frames] or None (audio only); ``mode`` the inputs that
    drive stage 1; ``notes`` what the user should know (words spelled by g2p, a fallback).
    """

    audio: np.ndarray
    num_frames: int
    phoneme_ids: np.ndarray | None
    mode: Mode
    notes: tuple[str, ...] = field(default=())


def find_voice(name: str | None):
    """The TTS voice called ``name`` (an engine voice name like ``kal_diphone`` or ``en-us+f2``, or a default
    voice's slug); None gives the first default voice."""
    from talking_face.datamodules.synthetic.tts import Voice, available_voices, default_voices

    if name is None:
        return default_voices()[0]
    for voice in default_voices():
        if name in (voice.name, voice.slug):
            return voice
    for voice in available_voices():
        if voice.name == name:
            return voice
    if name.startswith("en"):  # an espeak voice with a variant the catalogue does not list
        return Voice("espeak", name)
    names = ", ".join(sorted({v.name for v in default_voices()}))
    raise ValueError(f"{_WHERE}: unknown voice {name!r}; try one of {names} (or any espeak-ng English voice)")


def _check_text(text: str | None) -> str | None:
    if text is None:
        return None
    if not text.strip():
        raise ValueError(f"{_WHERE}: the text is empty (or only whitespace): give words to say, or no text")
    return " ".join(text.split())


def _load_speech(path: str | Path) -> np.ndarray:
    from talking_face.datamodules.media import MediaError, load_audio

    audio = load_audio(path)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms < SILENT_RMS:
        raise MediaError(f"{path}: the speech is silent (RMS {rms:.1e}): nothing to lip-sync")
    return audio


def _spelling_notes(text: str) -> tuple[str, ...]:
    from talking_face.datamodules.phonemes import pronounce

    guessed = sorted({w.word for w in pronounce(text) if not w.in_dictionary})
    if not guessed:
        return ()
    note = f"not in the pronunciation dictionary, spelled by g2p's model: {', '.join(guessed)}"
    warnings.warn(note, stacklevel=3)
    return (note,)


def prepare_speech(
    audio: str | Path | None = None,
    text: str | None = None,
    voice: str | None = None,
    min_alignment_score: float = MIN_ALIGNMENT_SCORE,
) -> SpeechInput:
    """Speech and timings from an audio file (any format, rate, channels), a text, or both.

    Raises ``ValueError`` for no input or empty text and ``MediaError`` (naming the file) for audio that is
    unreadable, zero-length or silent.
    """
    from talking_face.lightning_modules.text_timing import timing_from_audio, timing_from_tts

    text = _check_text(text)
    if audio is None and text is None:
        raise ValueError(f"{_WHERE}: nothing to say: give speech (--audio), text (--text) or both")
    notes = _spelling_notes(text) if text is not None else ()
    if audio is None:
        timing, speech = timing_from_tts(text, find_voice(voice))
        samples = _resample(speech.audio, speech.sample_rate)
        timing = replace(timing, num_frames=timebase.num_frames_for(samples.size))  # the resampler rounds up
        return SpeechInput(samples, timing.num_frames, timing.frame_ids(), "text", notes)
    samples = _load_speech(audio)
    num_frames = timebase.num_frames_for(samples.size)
    if text is None:
        return SpeechInput(samples, num_frames, None, "audio")
    timing = timing_from_audio(samples, timebase.SAMPLE_RATE, text)
    if timing.score is not None and timing.score < min_alignment_score:
        note = (
            f"{audio}: the text does not match the speech (aligner confidence {timing.score:.2f} < "
            f"{min_alignment_score}); the audio alone drives the mouth"
        )
        warnings.warn(note, stacklevel=2)
        return SpeechInput(samples, num_frames, None, "audio", (*notes, note))
    return SpeechInput(samples, num_frames, timing.frame_ids(), "both", notes)


def _resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    audio = np.asarray(audio, np.float32)
    if sample_rate == timebase.SAMPLE_RATE:
        return audio
    return librosa.resample(audio, orig_sr=sample_rate, target_sr=timebase.SAMPLE_RATE).astype(np.float32)


def speech_envelope(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """RMS [num_frames] of each video frame's ``timebase.SAMPLES_PER_FRAME`` samples (zero-padded)."""
    hop = timebase.SAMPLES_PER_FRAME
    audio = np.asarray(audio, np.float64)
    padded = np.pad(audio, (0, max(num_frames * hop - audio.size, 0)))[: num_frames * hop]
    return np.sqrt(np.square(padded.reshape(num_frames, hop)).mean(axis=1))


def voice_activity(
    audio: np.ndarray, num_frames: int, floor_db: float = -35.0, min_pause: float = 0.2
) -> np.ndarray:
    """Bool [num_frames]: True where the frame holds speech.

    A frame is voiced when its energy is within ``-floor_db`` dB of the loud part of the utterance (its 95th
    percentile, so one click does not set the scale); pauses shorter than ``min_pause`` seconds (gaps
    between words, stop closures) count as speech, so the mouth does not snap shut mid-sentence.
    """
    level_db = 20 * np.log10(speech_envelope(audio, num_frames) + 1e-6)
    loud = np.percentile(level_db, 95)
    voiced = (level_db > loud + floor_db) & (level_db > 10 * np.log10(SILENT_RMS**2))
    shortest = round(min_pause * timebase.FPS)
    edges = np.flatnonzero(np.diff(np.concatenate([[1], voiced.astype(np.int8), [1]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):  # runs of unvoiced frames
        inside = start > 0 and stop < num_frames
        if inside and stop - start < shortest:
            voiced[start:stop] = True
    return voiced
