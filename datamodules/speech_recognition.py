"""What is said, when no transcript is given: offline word recognition, then forced alignment to phones.

pocketsphinx 5.1.1's wheel ships a US-English acoustic model, a word language model (``en-us.lm.bin``) and
the CMU dictionary, so nothing is downloaded. One process-wide recogniser (creating one loads the 27 MB
language model, about 1 s) decodes the words; ``datamodules.forced_aligner.force_align`` (``bestpath``
off) then places the recognised words' phones in time and scores how well they explain the sound.

On real read speech the word error is under a fifth and the phone error about a tenth (figures and speed in
``benchmarks/README.md``, articulation).
That is close enough for lips: a wrong word mostly has the right vowels and closures. The recognised words
explain read speech well; on music (a saxophone, a band) the recogniser still finds words, and how well
they fit overlaps casual speech (``benchmarks/README.md``), so whether anyone speaks at all is
``datamodules.speech_detection``'s call, not the recogniser's.

``hear_phones`` is for speech whose words the recogniser cannot know (another language, made-up names): the
acoustic model's free phone loop, with no words, places about half the phones right, and that is enough to
close the lips on p, b and m in clean speech; in noise it is no better than the sound alone.

``Recognition.confidence`` is the forced aligner's goodness-of-pronunciation score of the recognised words
(see ``forced_aligner``): 0 when nothing was recognised. The caller decides what to trust
(``talking_face.generation.speech_input``).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

import numpy as np

from talking_face.datamodules.alignment import normalise_segments
from talking_face.datamodules.segments import Segment

__all__ = ["Recognition", "hear_phones", "recognise"]

_LOCK = threading.Lock()
_PHONE_LOOP = "phone_loop"
_DITHER_LSB = 2.0
"""Faint noise (in int16 steps, about -84 dBFS) added before recognition: exact digital silence (as TTS
engines write it) derails pocketsphinx's recogniser. Seeded, so a result depends only on the audio."""


@dataclass(frozen=True)
class Recognition:
    """Words recognised in speech and their phones in time.

    ``text``: the recognised words, lower case ("" when none); ``phonemes``: ``VOCAB`` labels covering the
    audio contiguously (``"sil"`` for pauses; empty when no words); ``confidence`` in [0, 1] (0: no words);
    ``seconds``: wall time of recognition + alignment.
    """

    text: str
    phonemes: tuple[Segment, ...]
    confidence: float
    seconds: float

    @property
    def found_words(self) -> bool:
        return bool(self.text)


@functools.cache
def _recogniser():
    """The process-wide word recogniser (default acoustic model, word language model and dictionary).

    Settings chosen on the real utterances of ``benchmarks/articulation.py`` (figures in its README): no
    second, flat-lexicon pass (``fwdflat``); at most 3000 active HMMs a frame (``maxhmmpf``) and the 2 best
    Gaussians of each mixture (``topn``): half the CPU time at no loss of accuracy.
    """
    import pocketsphinx

    return pocketsphinx.Decoder(loglevel="FATAL", fwdflat=False, maxhmmpf=3000, topn=2)


def _words(pcm: np.ndarray) -> tuple[str, str]:
    """The recognised words of int16 16 kHz ``pcm`` [N] (fillers and silences dropped), and the cepstral
    mean of the whole utterance (decoded whole, the recogniser computes it as the aligner would)."""
    decoder = _recogniser()
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return (" ".join(hypothesis.hypstr.split()) if hypothesis is not None else ""), decoder.get_cmn()


def recognise(audio: np.ndarray, sample_rate: int) -> Recognition:
    """Recognise the words of mono ``audio`` [N] (float in [-1, 1] or integer PCM, any rate) and align them.

    Raises ``ValueError`` for empty, too short (< 0.1 s) or silent audio (see ``forced_aligner``).
    """
    from talking_face.datamodules.forced_aligner import ALIGN_SAMPLE_RATE, _to_int16_16k, force_align

    started = time.perf_counter()
    dithered = _dithered(_to_int16_16k(audio, sample_rate))
    with _LOCK:
        text, cmn = _words(dithered)
    if not text:
        return Recognition("", (), 0.0, time.perf_counter() - started)
    try:
        alignment = force_align(dithered, ALIGN_SAMPLE_RATE, text, cmn)
    except ValueError:  # the recogniser's words found no path in the aligner: trust nothing
        return Recognition(text, (), 0.0, time.perf_counter() - started)
    return Recognition(text, tuple(alignment.phonemes), float(alignment.score), time.perf_counter() - started)


@functools.cache
def _phone_listener():
    """The process-wide phone loop: any phone may follow any phone, no words, no language model.

    Triphones (``allphone_ci`` off) place the vowels better than context-free phones. At pocketsphinx's
    default beam they search every context of every phone, far slower than real time; a narrow beam finds
    the same phones cheaply (figures in ``benchmarks/README.md``, articulation).
    """
    import pocketsphinx

    decoder = pocketsphinx.Decoder(
        lm=None, loglevel="FATAL", bestpath=False, allphone_ci=False, beam=1e-5, pbeam=1e-5
    )
    decoder.add_allphone_file(_PHONE_LOOP, None)
    decoder.activate_search(_PHONE_LOOP)
    return decoder


def hear_phones(audio: np.ndarray, sample_rate: int) -> tuple[Segment, ...]:
    """The phones the acoustic model hears in mono ``audio`` [N], with no words: ``VOCAB`` labels covering
    the audio contiguously (``"sil"`` for pauses and noises), like ``Recognition.phonemes``.

    No dictionary or language model constrains them, so about half are wrong on real speech, but the
    errors are local (a closure heard as another closure, a vowel as a near vowel). Raises ``ValueError``
    like ``recognise``.
    """
    from talking_face.datamodules.forced_aligner import ALIGN_SAMPLE_RATE, _to_int16_16k, phone_segment

    pcm = _dithered(_to_int16_16k(audio, sample_rate))
    with _LOCK:
        decoder = _phone_listener()
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)  # whole: the utterance's own cepstral mean
        decoder.end_utt()
        phones = [
            phone_segment(p.word, p.start_frame, p.end_frame + 1 - p.start_frame) for p in decoder.seg()
        ]
    return tuple(normalise_segments(phones, pcm.size / ALIGN_SAMPLE_RATE))


def _dithered(pcm: np.ndarray) -> np.ndarray:
    """int16 ``pcm`` with ``_DITHER_LSB`` of seeded noise."""
    noise = np.random.default_rng(0).normal(0.0, _DITHER_LSB / 2, pcm.size)
    return np.clip(pcm + np.round(noise), -32768, 32767).astype(np.int16)
