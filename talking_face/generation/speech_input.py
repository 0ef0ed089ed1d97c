"""What the face will say: speech and/or text -> audio at the pipeline rate, phoneme timings, voice activity.

Three modes from the user's inputs:

- audio only: the recording drives stage 1 through its log-mel features;
- text only: the project's TTS speaks the text and reports its own phoneme times, so stage 1 gets both the
  synthesised audio and exact timings (the best input measured for stage 1);
- audio + text: a real forced aligner places the text's phonemes on the recording; when its confidence is
  low (the text does not match the speech), a warning is given and the audio alone drives the mouth;
- audio only: the words are recognised offline (``datamodules.speech_recognition``) and their phonemes, placed
  on the recording by the aligner, drive stage 1 beside the audio. When the recognised words fit the sound
  poorly, the audio alone drives the mouth (with a warning). ``recognise="phones"`` takes the phones the
  acoustic model hears without words instead (for clean speech the English dictionary does not know),
  ``"off"`` the audio alone.

``voice_activity`` marks the frames where someone is speaking (Silero VAD hears speech there, and it is loud),
so the mouth rests in pauses, in music and in noise. A recording where it finds no speech at all (noise,
music) gets no phonemes and a resting mouth, with a warning naming the file, whatever the mode.

``SpeechInput.path`` says which of these was taken, in words, for ``generate`` to report.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_features import speech_envelope
from talking_face.datamodules.frame_runs import true_runs
from talking_face.errors import InputWarning, UsageError

__all__ = [
    "RECOGNISE", "Recognise", "SpeechInput", "check_speech_flags", "find_voice", "prepare_speech",
    "speech_envelope", "voice_activity",
]  # fmt: skip
Mode = Literal["audio", "text", "both"]
TextSource = Literal["transcript", "recognised", "phones", "tts"]
Recognise = Literal["words", "phones", "off"]
RECOGNISE: tuple[Recognise, ...] = get_args(Recognise)

MIN_ALIGNMENT_SCORE = 0.1
"""Aligner confidence below which text and speech are taken not to match (right text scored 0.2-1.0 on
the measured utterances, wrong text <= 0.04; see ``datamodules/forced_aligner.py``)."""

MIN_RECOGNITION_CONFIDENCE = 0.5
"""Recognised words that explain the sound at least this well (alignment confidence) join the audio: real
read speech scored 1.0 (11 of 11 utterances), speech under white noise at 10 dB SNR 0.41, a speech recording
with music 0.36 (see ``datamodules/speech_recognition.py``)."""

SILENT_RMS = 1e-4
"""Speech whose RMS is below this (about -80 dBFS) holds nothing to lip-sync."""


@dataclass(frozen=True)
class SpeechInput:
    """Speech ready for stage 1.

    ``audio`` float32 mono [N] at ``timebase.SAMPLE_RATE``; ``num_frames`` video frames cover it (the last
    one possibly partial); ``phoneme_ids`` int64 [num_frames] or None (audio only); ``mode`` the inputs that
    drive stage 1; ``voiced`` bool [num_frames] where someone speaks (``voice_activity``: elsewhere the
    mouth rests); ``notes`` what the user should know (words spelled by g2p, a fallback).
    ``text_source`` where the phonemes came from (None: no phonemes); ``recognised`` the words recognised
    in the audio and ``confidence`` how well they (or the given text) fit it.
    """

    audio: np.ndarray
    num_frames: int
    phoneme_ids: np.ndarray | None
    mode: Mode
    voiced: np.ndarray
    notes: tuple[str, ...] = field(default=())
    text_source: TextSource | None = None
    recognised: str | None = None
    confidence: float | None = None

    @property
    def speaking(self) -> bool:
        """False when no speech was found in the audio (noise, music): the mouth rests throughout."""
        return bool(self.voiced.any())

    @property
    def path(self) -> str:
        """Which inputs drive the mouth, in words (for ``generate`` to report)."""
        if not self.speaking:
            return "no speech found: the mouth rests"
        if self.mode == "text":
            return "text spoken by the TTS"
        if self.text_source == "phones":
            return "audio + the phones heard in it (no words)"
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
    recognise: Recognise = "words",
    min_recognition_confidence: float = MIN_RECOGNITION_CONFIDENCE,
) -> SpeechInput:
    """Speech and timings from an audio file (any format, rate, channels), a text, or both.

    ``recognise``: what audio without text gets: its words recognised (``"words"``, see the module
    docstring), the phones heard in it without words (``"phones"``), or nothing (``"off"``: the audio alone,
    and the mouth follows the sound whatever it is).

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
        voiced = voice_activity(samples, timing.num_frames)
        return SpeechInput(samples, timing.num_frames, timing.frame_ids(), "text", voiced, notes, "tts")
    samples = _load_speech(audio)
    num_frames = timebase.num_frames_for(samples.size)
    voiced = voice_activity(samples, num_frames)
    if not voiced.any():
        note = f"{audio}: no speech found (noise or music?): the mouth rests"
        warnings.warn(note, InputWarning, stacklevel=2)
        return SpeechInput(samples, num_frames, None, "audio", voiced, (*notes, note))
    if text is None:
        if recognise == "off":
            return SpeechInput(samples, num_frames, None, "audio", voiced)
        if recognise == "words":
            return _recognised(audio, samples, num_frames, voiced, min_recognition_confidence)
        return _heard(samples, num_frames, voiced)
    timing = timing_from_audio(samples, timebase.SAMPLE_RATE, text)
    if timing.score is not None and timing.score < min_alignment_score:
        note = (
            f"{audio}: the text does not match the speech (aligner confidence {timing.score:.2f} < "
            f"{min_alignment_score}); the audio alone drives the mouth"
        )
        warnings.warn(note, InputWarning, stacklevel=2)
        return SpeechInput(
            samples, num_frames, None, "audio", voiced, (*notes, note), confidence=timing.score
        )
    ids = timing.frame_ids()
    return SpeechInput(
        samples, num_frames, ids, "both", voiced, notes, text_source="transcript", confidence=timing.score
    )


def _recognised(
    path: str | Path, samples: np.ndarray, num_frames: int, voiced: np.ndarray, min_confidence: float
) -> SpeechInput:
    """Audio only: recognise the words and fuse their phonemes, or use the audio alone.

    Not the phones heard without words: words fit poorly mostly in noise, where those phones are no better
    than the audio alone (``benchmarks/README.md``, articulation).
    """
    from talking_face.datamodules.alignment import frame_phoneme_ids
    from talking_face.datamodules.speech_recognition import recognise

    found = recognise(samples, timebase.SAMPLE_RATE)
    if not found.found_words or found.confidence < min_confidence:
        heard = (
            f"the recognised words {found.text!r} fit the speech poorly (confidence {found.confidence:.2f} < "
            f"{min_confidence})"
            if found.found_words
            else "no words were recognised"
        )
        note = f"{path}: {heard}; the audio alone drives the mouth (--text helps, or --recognise phones)"
        warnings.warn(note, InputWarning, stacklevel=3)
        words = found.text or None
        return SpeechInput(samples, num_frames, None, "audio", voiced, (note,), None, words, found.confidence)
    ids = frame_phoneme_ids(list(found.phonemes), num_frames)
    return SpeechInput(
        samples, num_frames, ids, "both", voiced, (), "recognised", found.text, found.confidence
    )


def _heard(samples: np.ndarray, num_frames: int, voiced: np.ndarray) -> SpeechInput:
    """Audio only: the phones the acoustic model hears, with no words, fused with the sound."""
    from talking_face.datamodules.alignment import frame_phoneme_ids
    from talking_face.datamodules.speech_recognition import hear_phones

    ids = frame_phoneme_ids(list(hear_phones(samples, timebase.SAMPLE_RATE)), num_frames)
    return SpeechInput(samples, num_frames, ids, "both", voiced, (), "phones")


def _resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    audio = np.asarray(audio, np.float32)
    if sample_rate == timebase.SAMPLE_RATE:
        return audio
    return librosa.resample(audio, orig_sr=sample_rate, target_sr=timebase.SAMPLE_RATE).astype(np.float32)


def voice_activity(
    audio: np.ndarray,
    num_frames: int,
    floor_db: float = -35.0,
    min_pause: float = 0.2,
    min_speech: float = 0.2,
    reach: float = 0.12,
) -> np.ndarray:
    """Bool [num_frames]: True where the frame holds speech.

    Speech is where Silero VAD hears it (``datamodules.speech_detection``), in runs of at least ``min_speech``
    seconds (shorter ones are music or noise it mistook), widened by ``reach`` seconds each side since its
    probability lags onsets by a frame or three. There, a frame is voiced when its energy is within
    ``-floor_db`` dB of the loud part of the utterance (its 95th percentile, so one click does not set the
    scale). Pauses shorter than ``min_pause`` seconds (gaps between words, stop closures) count as speech, so
    the mouth does not snap shut mid-sentence.
    """
    from scipy.ndimage import maximum_filter1d

    from talking_face.datamodules.speech_detection import SPEECH_THRESHOLD, speech_probability

    heard = speech_probability(audio, num_frames) >= SPEECH_THRESHOLD
    for start, stop in true_runs(heard):
        if stop - start < round(min_speech * timebase.FPS):
            heard[start:stop] = False
    heard = maximum_filter1d(heard.astype(np.uint8), 2 * round(reach * timebase.FPS) + 1) > 0
    level_db = 20 * np.log10(speech_envelope(audio, num_frames) + 1e-6)
    loud = np.percentile(level_db, 95)
    voiced = heard & (level_db > loud + floor_db) & (level_db > 10 * np.log10(SILENT_RMS**2))
    for start, stop in true_runs(~voiced):
        if start > 0 and stop < num_frames and stop - start < round(min_pause * timebase.FPS):
            voiced[start:stop] = True
    return voiced
