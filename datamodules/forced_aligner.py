"""Forced alignment of a transcript to real speech with pocketsphinx (offline, CPU).

pocketsphinx's PyPI wheel ships a US-English acoustic model and the CMU dictionary, so this works with
nothing downloaded. Words missing from its dictionary get their pronunciation from our g2p
(``datamodules.phonemes.pronounce``). Phones are ARPAbet without stress, the labels of ``VOCAB``.

How one call runs (all on 16 kHz mono int16, pocketsphinx's 10 ms frames):

1. Cepstral mean of this utterance (features only, no search), then used for every pass below, so a
   result depends on this audio alone and not on what the decoder saw before.
2. A free phone loop (any phone may follow any phone) finds the best unconstrained phone path.
3. Word alignment of the text, then a second pass for phone and state boundaries inside the words.
   ``bestpath`` is off: its approximate word boundaries can leave a phone fewer frames than its HMM
   has states, and the second pass then fails. Beams are far wider than pocketsphinx's defaults, so
   that a transcript with a wrong or extra word, or speech unlike the model's, still aligns (and
   scores low) instead of failing.

``Alignment.score`` is a goodness-of-pronunciation confidence (after Witt & Young 2000, "Phone-level
pronunciation scoring and assessment for interactive language learning", Speech Communication 30):
the mean per-frame log-likelihood ratio, in nats, of the forced path against the free phone loop,
``exp(min(0, ratio))``. Both scores come from the same acoustic model with every senone evaluated in
every frame, so they share one scale. Speech that says the text scores near 1 (the forced path is about as
good as the best free path); a transcript that does not match the speech scores near 0.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from talking_face.datamodules.alignment import SILENCE, normalise_segments
from talking_face.datamodules.phonemes import PHONEMES, pronounce, words_of
from talking_face.datamodules.segments import Segment

if TYPE_CHECKING:
    import pocketsphinx

__all__ = ["Alignment", "force_align", "phone_segment"]

ALIGN_SAMPLE_RATE = 16_000
"""pocketsphinx's en-us model is trained on 16 kHz speech."""

_FRAME_RATE = 100
"""pocketsphinx frames per second (10 ms shift)."""

_MIN_SECONDS = 0.1
"""Shorter audio cannot hold a word (each phone takes at least 3 frames of 10 ms)."""

_SILENT_PEAK = 10 ** (-60 / 20)
"""Audio whose peak stays below -60 dBFS holds no speech to align."""

_SCORE_UNIT = 1024 * math.log(1.0001)
"""Nats per pocketsphinx score unit: log base 1.0001, shifted right by SENSCR_SHIFT = 10 bits."""

_BEAMS = ("beam", "pbeam", "wbeam", "lpbeam", "lponlybeam")
"""Viterbi beams, all opened wide (1e-200, no HMM cap): the text's graph is a line, so this costs little."""

_FREE_LOOP = "free_phone_loop"
_ALT_PRONUNCIATION = re.compile(r"\(\d+\)$")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Alignment:
    """Forced alignment of a transcript to speech.

    ``words``: lower-case words (``"sil"`` for pauses) and ``phonemes``: ``VOCAB`` labels (``"sil"`` for
    silence), each covering ``[0, duration of the audio]`` contiguously (see
    ``alignment.check_alignment``). ``score`` in [0, 1]: how well the text explains the speech (see the
    module docstring).
    """

    words: list[Segment]
    phonemes: list[Segment]
    score: float


@functools.cache
def _decoder() -> tuple[pocketsphinx.Decoder, str]:
    """The process-wide decoder (about 0.2 s to load) and its initial cepstral mean."""
    import pocketsphinx

    decoder = pocketsphinx.Decoder(
        lm=None,
        compallsen=True,
        bestpath=False,
        loglevel="FATAL",
        maxhmmpf=-1,
        **dict.fromkeys(_BEAMS, 1e-200),
    )
    decoder.add_allphone_file(_FREE_LOOP, None)
    return decoder, decoder.get_cmn()


def _to_int16_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono ``[N]`` float in [-1, 1] (or integer PCM) at any rate -> int16 ``[M]`` at 16 kHz."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono [N], got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("audio is empty (zero samples)")
    if sample_rate <= 0:
        raise ValueError(f"bad sample rate {sample_rate}")
    if audio.size < _MIN_SECONDS * sample_rate:
        raise ValueError(
            f"audio of {audio.size / sample_rate:.3f}s is too short to hold speech (under {_MIN_SECONDS}s)"
        )
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio / np.iinfo(audio.dtype).max
    audio = audio.astype(np.float32)
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    if np.abs(audio).max() < _SILENT_PEAK:
        raise ValueError("audio is silent (peak below -60 dBFS): no speech")
    if sample_rate != ALIGN_SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=ALIGN_SAMPLE_RATE)
    return np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def _add_missing_words(decoder: pocketsphinx.Decoder, words: list[str]) -> None:
    """Teach pocketsphinx the words its dictionary lacks, with g2p-en's pronunciation."""
    missing = sorted({w for w in words if decoder.lookup_word(w) is None})
    if missing:
        for pron in pronounce(" ".join(missing)):
            decoder.add_word(pron.word, " ".join(pron.phonemes), update=True)


def _decode(decoder: pocketsphinx.Decoder, pcm: bytes, cmn: str, search: bool = True) -> None:
    """One pass over the whole utterance with cepstral mean ``cmn``."""
    decoder.set_cmn(cmn)
    decoder.start_utt()
    decoder.process_raw(pcm, no_search=not search, full_utt=True)
    decoder.end_utt()


def _utterance_cmn(decoder: pocketsphinx.Decoder, pcm: bytes, initial_cmn: str) -> str:
    """Cepstral mean of this utterance alone (features only, no search)."""
    decoder.activate_search(_FREE_LOOP)
    _decode(decoder, pcm, initial_cmn, search=False)
    return decoder.get_cmn(update=True)


def _free_loop_per_frame(decoder: pocketsphinx.Decoder, pcm: bytes, cmn: str) -> float:
    """Acoustic score per frame (pocketsphinx units) of the best free phone sequence.

    Raises ``RuntimeError`` when the phone loop finds no path.
    """
    decoder.activate_search(_FREE_LOOP)
    _decode(decoder, pcm, cmn)
    phones = list(decoder.seg() or [])
    if not phones:
        raise RuntimeError("no free phone path")
    return sum(decoder.logmath.log(p.ascore) for p in phones) / (phones[-1].end_frame + 1)


def _aligned_entries(
    decoder: pocketsphinx.Decoder, pcm: bytes, cmn: str, words: list[str]
) -> list[tuple[str, int, int, int, list[tuple[str, int, int]]]]:
    """Words of the forced alignment: (name, start, frames, score, [(phone, start, frames)]).

    Raises ``RuntimeError`` when pocketsphinx finds no path through the text.
    """
    decoder.set_align_text(" ".join(words))
    _decode(decoder, pcm, cmn)
    if decoder.hyp() is None:
        raise RuntimeError("no word alignment")
    decoder.set_alignment()
    _decode(decoder, pcm, cmn)
    alignment = decoder.get_alignment()  # its entries point into it: copy out while it lives
    return [
        (w.name, w.start, w.duration, w.score, [(p.name, p.start, p.duration) for p in w]) for w in alignment
    ]


def _segment(label: str, start: int, duration: int) -> Segment:
    return Segment(label, start / _FRAME_RATE, (start + duration) / _FRAME_RATE)


def phone_segment(label: str, start: int, duration: int) -> Segment:
    """pocketsphinx's phone ``label`` over ``duration`` of its frames from frame ``start``, in seconds, as a
    ``VOCAB`` label (anything else it hears, a filler or a noise, is silence)."""
    return _segment(label if label in PHONEMES else SILENCE, start, duration)


def force_align(audio: np.ndarray, sample_rate: int, text: str, cmn: str | None = None) -> Alignment:
    """Align ``text`` to the speech in ``audio``: word and phoneme times, and a confidence.

    Args:
        audio: mono float ``[N]`` in [-1, 1] (or integer PCM), any rate; resampled to 16 kHz.
        sample_rate: samples per second of ``audio``.
        text: the transcript; normalised by ``phonemes.words_of`` (numbers spelled out, punctuation
            dropped).
        cmn: this audio's cepstral mean (pocketsphinx's ``get_cmn`` string) when the caller has it already,
            e.g. a recogniser with the same acoustic model that decoded the same samples whole; saves the
            first pass.

    Raises ``ValueError`` for empty text, empty, too short (< 0.1 s) or silent audio, and when
    pocketsphinx finds no path through the text (for instance far more words than the speech holds).
    """
    words = words_of(text)
    pcm = _to_int16_16k(audio, sample_rate)
    duration = len(pcm) / ALIGN_SAMPLE_RATE
    with _LOCK:
        decoder, initial_cmn = _decoder()
        _add_missing_words(decoder, words)
        cmn = cmn or _utterance_cmn(decoder, pcm.tobytes(), initial_cmn)
        try:
            free_per_frame = _free_loop_per_frame(decoder, pcm.tobytes(), cmn)
            aligned = _aligned_entries(decoder, pcm.tobytes(), cmn, words)
        except RuntimeError as err:
            raise ValueError(
                f"could not align {text!r} to {duration:.2f}s of speech "
                f"({err}); does the text match the audio?"
            ) from None

    forced_per_frame = sum(w[3] for w in aligned) / sum(w[2] for w in aligned)
    score = math.exp(min(0.0, (forced_per_frame - free_per_frame) * _SCORE_UNIT))
    spoken = set(words)
    word_segments, phone_segments = [], []
    for name, start, length, _, phones in aligned:
        # "the(2)" is "the"; fillers (<s>, <sil>, </s>, noises) are silence
        label = _ALT_PRONUNCIATION.sub("", name)
        word_segments.append(_segment(label if label in spoken else SILENCE, start, length))
        phone_segments += [phone_segment(p, at, n) for p, at, n in phones]
    return Alignment(
        words=normalise_segments(word_segments, duration),
        phonemes=normalise_segments(phone_segments, duration),
        score=score,
    )
