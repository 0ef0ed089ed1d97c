"""What the face will say: speech and/or text -> audio at the pipeline rate, phoneme timings, voice activity.

Three modes from the user's inputs:

- audio only: the recording drives stage 1 through its log-mel features;
- text only: the project's TTS speaks the text and reports its own phoneme times, so stage 1 gets both the
  synthesised audio and exact timings (the best input measured for stage 1);
- audio + text: a real forced aligner places the text's phonemes on the recording; when its confidence is
  low (the text does not match the speech), a warning is given and the audio alone drives the mouth;
- audio only: the words are recognised offline (``datamodules.speech_recognition``) and their phonemes, placed
  on the recording by the aligner, drive stage 1 beside the audio. When the recognised words fit the sound
  poorly, the audio alone drives the mouth (with a warning); when nothing speech-like is found (noise,
  music), no phonemes are used and the mouth rests (with a warning naming the file).

``SpeechInput.path`` says which of these was taken, in words, for ``generate`` to report.

``voice_activity`` marks the frames where someone is speaking, so the mouth can rest in pauses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_features import speech_envelope
from talking_face.errors import InputWarning, UsageError

__all__ = [
    "SpeechInput", "check_speech_flags", "find_voice", "prepare_speech", "speech_envelope", "voice_activity",
]  # fmt: skip
Mode = Literal["audio", "text", "both"]
TextSource = Literal["transcript", "recognised", "tts"]

MIN_ALIGNMENT_SCORE = 0.1
"""Aligner confidence below which text and speech are taken not to match (right text scored 0.2-1.0 on
the measured utterances, wrong text <= 0.04; see ``datamodules/forced_aligner.py``)."""

MIN_RECOGNITION_CONFIDENCE = 0.5
"""Recognised words that explain the sound at least this well (alignment confidence) join the audio: real
read speech scored 1.0 (11 of 11 utterances), speech under white noise at 10 dB SNR 0.41, a speech recording
with music 0.36 (see ``datamodules/speech_recognition.py``)."""

NO_SPEECH_CONFIDENCE = 0.3
"""Below this (or no words at all) the sound is taken to hold no speech and the mouth rests: music scored
0.17-0.32 (a saxophone 0.29, a band 0.22), white and pink noise gave no words. The margin to hard speech
(0.36 above) is thin: measured on few samples."""

SILENT_RMS = 1e-4
"""Speech whose RMS is below this (about -80 dBFS) holds nothing to lip-sync."""


@dataclass(frozen=True)
class SpeechInput:
    """Speech ready for stage 1.

    ``audio`` float32 mono [N] at ``timebase.SAMPLE_RATE``; ``num_frames`` video frames cover it (the last
    one possibly partial); ``phoneme_ids`` int64 [num_frames] or None (audio only); ``mode`` the inputs that
    drive stage 1; ``notes`` what the user should know (words spelled by g2p, a fallback).
    ``text_source`` where the phonemes came from (None: no phonemes); ``recognised`` the words recognised
    in the audio and ``confidence`` how well they (or the given text) fit it; ``speaking`` False when no
    speech was found in the audio (noise, music): the mouth rests throughout.
    """

    audio: np.ndarray
    num_frames: int
    phoneme_ids: np.ndarray | None
    mode: Mode
    notes: tuple[str, ...] = field(default=())
    text_source: TextSource | None = None
    recognised: str | None = None
    confidence: float | None = None
    speaking: bool = True

    @property
    def path(self) -> str:
        """Which inputs drive the mouth, in words (for ``generate`` to report)."""
        if not self.speaking:
            return "no speech found: the mouth rests"
        if self.mode == "text":
            return "text spoken by the TTS"
        if self.mode == "both":
            words = f"recognised text {self.recognised!r}" if self.text_source == "recognised" else "the text"
            return f"audio + {words} (alignment confidence {self.confidence:.2f})"
        if self.recognised is not None:
            return f"audio only (recognised {self.recognised!r} with low confidence {self.confidence:.2f})"
        return "audio only"


def find_voice(name: str | None):
    """The TTS voice called ``name`` (an engine voice name like ``kal_diphone`` or ``en-us+f2``, or a default
    voice's slug); None gives the first default voice."""
    from talking_face.datamodules.tts import Voice, available_voices, default_voices

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
    raise UsageError("voice", f"unknown voice {name!r}; try one of {names} (or any espeak-ng English voice)")


def check_speech_flags(audio: str | Path | None, text: str | None, voice: str | None) -> None:
    """Something to say, no empty text, and a voice that exists, before any audio is read or spoken."""
    if audio is None and text is None:
        raise UsageError("audio", "nothing to say: give speech (--audio), text (--text) or both")
    if text is not None and not text.strip():
        raise UsageError("text", "the text is empty (or only whitespace): give words to say, or no --text")
    if audio is None:
        find_voice(voice)


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
    warnings.warn(note, InputWarning, stacklevel=3)
    return (note,)


def prepare_speech(
    audio: str | Path | None = None,
    text: str | None = None,
    voice: str | None = None,
    min_alignment_score: float = MIN_ALIGNMENT_SCORE,
    recognise: bool = True,
    min_recognition_confidence: float = MIN_RECOGNITION_CONFIDENCE,
    no_speech_confidence: float = NO_SPEECH_CONFIDENCE,
) -> SpeechInput:
    """Speech and timings from an audio file (any format, rate, channels), a text, or both.

    ``recognise``: audio without text gets its words recognised (see the module docstring); False keeps
    the audio alone, and the mouth follows the sound whatever it is.

    Raises ``UsageError`` for no input, empty text or an unknown voice and ``MediaError`` (naming the file)
    for audio that is unreadable, zero-length or silent.
    """
    from talking_face.lightning_modules.text_timing import timing_from_audio, timing_from_tts

    check_speech_flags(audio, text, voice)
    text = None if text is None else " ".join(text.split())
    notes = _spelling_notes(text) if text is not None else ()
    if audio is None:
        timing, speech = timing_from_tts(text, find_voice(voice))
        samples = _resample(speech.audio, speech.sample_rate)
        timing = replace(timing, num_frames=timebase.num_frames_for(samples.size))  # the resampler rounds up
        return SpeechInput(samples, timing.num_frames, timing.frame_ids(), "text", notes, "tts")
    samples = _load_speech(audio)
    num_frames = timebase.num_frames_for(samples.size)
    if text is None:
        if not recognise:
            return SpeechInput(samples, num_frames, None, "audio")
        return _recognised(audio, samples, num_frames, min_recognition_confidence, no_speech_confidence)
    timing = timing_from_audio(samples, timebase.SAMPLE_RATE, text)
    if timing.score is not None and timing.score < min_alignment_score:
        note = (
            f"{audio}: the text does not match the speech (aligner confidence {timing.score:.2f} < "
            f"{min_alignment_score}); the audio alone drives the mouth"
        )
        warnings.warn(note, InputWarning, stacklevel=2)
        return SpeechInput(samples, num_frames, None, "audio", (*notes, note), confidence=timing.score)
    ids = timing.frame_ids()
    return SpeechInput(
        samples, num_frames, ids, "both", notes, text_source="transcript", confidence=timing.score
    )


def _recognised(
    path: str | Path, samples: np.ndarray, num_frames: int, min_confidence: float, no_speech: float
) -> SpeechInput:
    """Audio only: recognise the words and fuse their phonemes, use the audio alone, or rest the mouth."""
    from talking_face.datamodules.alignment import frame_phoneme_ids
    from talking_face.datamodules.speech_recognition import recognise

    found = recognise(samples, timebase.SAMPLE_RATE)
    if not found.found_words or found.confidence < no_speech:
        heard = f" (recognised {found.text!r}, confidence {found.confidence:.2f})" if found.text else ""
        note = f"{path}: no speech found{heard}: the mouth rests; give --text if someone speaks here"
        warnings.warn(note, InputWarning, stacklevel=3)
        heard, sure = found.text, found.confidence
        return SpeechInput(samples, num_frames, None, "audio", (note,), None, heard, sure, speaking=False)
    if found.confidence < min_confidence:
        note = (
            f"{path}: the recognised words {found.text!r} fit the speech poorly (confidence "
            f"{found.confidence:.2f} < {min_confidence}); the audio alone drives the mouth (--text helps)"
        )
        warnings.warn(note, InputWarning, stacklevel=3)
        return SpeechInput(samples, num_frames, None, "audio", (note,), None, found.text, found.confidence)
    ids = frame_phoneme_ids(list(found.phonemes), num_frames)
    return SpeechInput(samples, num_frames, ids, "both", (), "recognised", found.text, found.confidence)


def _resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    audio = np.asarray(audio, np.float32)
    if sample_rate == timebase.SAMPLE_RATE:
        return audio
    return librosa.resample(audio, orig_sr=sample_rate, target_sr=timebase.SAMPLE_RATE).astype(np.float32)


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
