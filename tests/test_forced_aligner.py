"""Forced alignment with pocketsphinx (datamodules/forced_aligner.py) on speech from the project's TTS.

The TTS engines report where they put every word, so their times are the reference: the aligner never
sees them. espeak-ng ships with the project (pip); festival's and flite's voices, built from real speakers'
recordings, are used too where Debian's festival and flite are installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from talking_face.datamodules.alignment import check_alignment
from talking_face.datamodules.forced_aligner import Alignment, force_align
from talking_face.datamodules.phonemes import VOCAB
from talking_face.datamodules.tts import Voice, available_voices, synthesize

GRID_TEXT = "bin blue at f two now"
WRONG_TEXT = "place red by g nine soon"  # same grammar, every word different


VOICES = [
    Voice("espeak", "en-us"),
    Voice("espeak", "en-gb-x-rp+f3"),
    Voice("festival", "kal_diphone"),
    Voice("flite", "rms"),
    Voice("flite", "kal16"),
]


@pytest.fixture(scope="module", params=VOICES, ids=lambda v: v.name)
def grid_speech(request):
    if request.param not in available_voices():
        pytest.skip(f"{request.param.engine} voice {request.param.name} is not installed here")
    return synthesize(GRID_TEXT, request.param)


def _spoken(segments):
    return [s for s in segments if s.label != "sil"]


def _boundary_errors(reference, aligned) -> np.ndarray:
    ref, got = _spoken(reference), _spoken(aligned)
    assert [s.label for s in got] == [s.label for s in ref]
    return np.abs(np.array([[r.start - g.start, r.end - g.end] for r, g in zip(ref, got, strict=True)]))


def test_word_boundaries_match_the_synthesiser(grid_speech):
    alignment = force_align(grid_speech.audio, grid_speech.sample_rate, GRID_TEXT)
    assert isinstance(alignment, Alignment)
    duration = len(grid_speech.audio) / grid_speech.sample_rate
    check_alignment(alignment.words, duration, tol=1e-3)
    check_alignment(alignment.phonemes, duration, tol=1e-3)
    assert {p.label for p in alignment.phonemes} <= set(VOCAB[1:])
    errors = _boundary_errors(grid_speech.words, alignment.words)
    assert np.median(errors) < 0.060, f"median word-boundary error {np.median(errors) * 1000:.0f} ms"
    assert 0.0 <= alignment.score <= 1.0
    # each spoken word holds its phonemes: "two" -> T UW
    two = next(w for w in alignment.words if w.label == "two")
    inside = [p.label for p in alignment.phonemes if two.start - 1e-9 <= p.start and p.end <= two.end + 1e-9]
    assert inside == ["T", "UW"]


def test_wrong_text_scores_lower_than_the_right_text(grid_speech):
    right = force_align(grid_speech.audio, grid_speech.sample_rate, GRID_TEXT)
    wrong = force_align(grid_speech.audio, grid_speech.sample_rate, WRONG_TEXT)
    assert wrong.score < 0.5 * right.score, (right.score, wrong.score)


def test_results_do_not_depend_on_earlier_calls():
    speech = synthesize(GRID_TEXT, Voice("espeak", "en-us"))
    other = synthesize("please call stella", Voice("espeak", "en-us+m3"))
    first = force_align(speech.audio, speech.sample_rate, GRID_TEXT)
    force_align(other.audio, other.sample_rate, "please call stella")
    assert force_align(speech.audio, speech.sample_rate, GRID_TEXT) == first


def test_int16_input_matches_float_input():
    speech = synthesize(GRID_TEXT, Voice("espeak", "en-us"))
    as_float = force_align(speech.audio, speech.sample_rate, GRID_TEXT)
    pcm = np.round(np.clip(speech.audio, -1, 1) * 32767).astype(np.int16)
    as_int = force_align(pcm, speech.sample_rate, GRID_TEXT)
    assert np.median(_boundary_errors(as_float.words, as_int.words)) <= 0.011


def test_words_missing_from_the_dictionary_are_pronounced_by_g2p():
    speech = synthesize("bin zorblax at f two now", Voice("espeak", "en-us"))
    alignment = force_align(speech.audio, speech.sample_rate, "Bin zorblax at F 2 now!")
    assert [w.label for w in _spoken(alignment.words)] == ["bin", "zorblax", "at", "f", "two", "now"]
    errors = _boundary_errors(speech.words, alignment.words)
    assert np.median(errors) < 0.060


@pytest.mark.parametrize(
    ("audio", "text", "message"),
    [
        (np.full(16000, 0.1, np.float32), "  ", "empty transcript"),
        (np.zeros(0, np.float32), "bin blue", "zero samples"),
        (np.zeros(16000, np.float32), "bin blue", "silent"),
        (np.full(800, 0.1, np.float32), "bin blue", "too short"),
        (np.full((16000, 2), 0.1, np.float32), "bin blue", "mono"),
        (np.full(16000, np.nan, np.float32), "bin blue", "NaN"),
    ],
)
def test_bad_input_is_a_clear_error(audio, text, message):
    with pytest.raises(ValueError, match=message):
        force_align(audio, 16000, text)
