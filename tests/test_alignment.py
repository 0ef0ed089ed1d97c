"""Frame-level phoneme alignment (datamodules/alignment.py): cover invariants, GRID words, frame ids."""

from __future__ import annotations

import numpy as np
import pytest

from talking_face.datamodules.alignment import (
    DURATION_PRIOR_MS,
    check_alignment,
    frame_phoneme_ids,
    normalise_segments,
    phonemes_from_words,
    split_word,
)
from talking_face.datamodules.phonemes import PHONEMES, SIL_ID, VOCAB, WordPronunciation, phoneme_id
from talking_face.datamodules.segments import Segment

# A real GRID alignment (s1/align/bbaf2n.align): "start end word", times in 1/25000 s.
GRID_ALIGN = """0 23750 sil
23750 29500 bin
29500 34000 blue
34000 35500 at
35500 41000 f
41000 47250 two
47250 53000 now
53000 74500 sil"""

GRID_PRONUNCIATIONS = [
    WordPronunciation("bin", ("B", "IH", "N"), True),
    WordPronunciation("blue", ("B", "L", "UW"), True),
    WordPronunciation("at", ("AE", "T"), True),
    WordPronunciation("f", ("EH", "F"), True),
    WordPronunciation("two", ("T", "UW"), True),
    WordPronunciation("now", ("N", "AW"), True),
]


def _grid_words() -> list[Segment]:
    rows = [line.split() for line in GRID_ALIGN.splitlines()]
    return [Segment(word, int(a) / 25000, int(b) / 25000) for a, b, word in rows]


def _is_alignment(segments: list[Segment], duration: float) -> bool:
    try:
        check_alignment(segments, duration)
    except ValueError:
        return False
    return True


def test_duration_priors_cover_the_vocabulary_and_rank_classes():
    assert set(DURATION_PRIOR_MS) == set(PHONEMES)
    vowels = ["AA", "AE", "AO", "EH", "IY", "UW", "AY", "OW", "OY"]
    stops = ["B", "D", "G", "K", "P", "T"]
    assert min(DURATION_PRIOR_MS[v] for v in vowels) > max(DURATION_PRIOR_MS[s] for s in stops)
    assert DURATION_PRIOR_MS["OY"] == max(DURATION_PRIOR_MS.values())  # diphthongs are the longest


def test_split_word_shares_the_interval_in_proportion_to_priors():
    word = Segment("bin", 0.95, 1.18)
    pieces = split_word(word, ["B", "IH1", "N"])
    assert [p.label for p in pieces] == ["B", "IH", "N"]
    assert pieces[0].start == word.start and pieces[-1].end == word.end
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    weights = np.array([DURATION_PRIOR_MS[p] for p in ("B", "IH", "N")])
    np.testing.assert_allclose([p.duration for p in pieces], word.duration * weights / weights.sum())
    assert pieces[1].duration > pieces[0].duration > pieces[2].duration  # IH 135 > B 85 > N 60 ms


def test_split_word_errors():
    with pytest.raises(ValueError, match="no phonemes"):
        split_word(Segment("x", 0.0, 1.0), [])
    with pytest.raises(ValueError, match="non-ARPAbet"):
        split_word(Segment("x", 0.0, 1.0), ["B", "sil"])


def test_phonemes_from_grid_words():
    words = _grid_words()
    duration = 3.0
    phonemes = phonemes_from_words(words, GRID_PRONUNCIATIONS, duration)
    check_alignment(phonemes, duration)
    expected = ["sil", "B", "IH", "N", "B", "L", "UW", "AE", "T", "EH", "F", "T", "UW", "N", "AW", "sil"]
    assert [p.label for p in phonemes] == expected
    starts = {p.start for p in phonemes}
    assert all(w.start in starts for w in words)  # every word boundary is a phoneme boundary
    assert phonemes[0].end == pytest.approx(0.95) and phonemes[-1].start == pytest.approx(2.12)


def test_phonemes_from_words_fills_gaps_clips_overlaps_and_maps_sp():
    words = [
        Segment("bin", 0.1, 0.4),
        Segment("sp", 0.4, 0.5),
        Segment("sil", 0.5, 0.6),
        Segment("blue", 0.6 - 1e-9, 1.0),  # rounding overlap
        Segment("at", 1.2, 1.4),  # gap before
    ]
    prons = GRID_PRONUNCIATIONS[:3]
    phonemes = phonemes_from_words(words, prons, 1.5)
    check_alignment(phonemes, 1.5)
    labels = [p.label for p in phonemes]
    assert labels == ["sil", "B", "IH", "N", "sil", "B", "L", "UW", "sil", "AE", "T", "sil"]
    assert phonemes[4].start == pytest.approx(0.4) and phonemes[4].end == pytest.approx(0.6)


def test_phonemes_from_words_rejects_mismatched_pronunciations():
    words = _grid_words()
    with pytest.raises(ValueError, match="6 spoken words but 5 pronunciations"):
        phonemes_from_words(words, GRID_PRONUNCIATIONS[:5], 3.0)
    swapped = [GRID_PRONUNCIATIONS[1], GRID_PRONUNCIATIONS[0], *GRID_PRONUNCIATIONS[2:]]
    with pytest.raises(ValueError, match="paired with the pronunciation of 'blue'"):
        phonemes_from_words(words, swapped, 3.0)


def test_normalise_segments_known_answer():
    raw = [
        Segment("T", 0.50, 0.60),
        Segment("AH", 0.20, 0.52),  # overlaps T: T is trimmed to start at 0.52
        Segment("<sil>", 0.60, 0.70),
        Segment("SIL", 0.70, 0.75),
        Segment("K", 0.80, 2.00),  # runs past the end
        Segment("Z", 3.00, 3.10),  # wholly outside
    ]
    out = normalise_segments(raw, 1.0)
    assert [(s.label, s.start, s.end) for s in out] == [
        ("sil", 0.0, 0.20),
        ("AH", 0.20, 0.52),
        ("T", 0.52, 0.60),
        ("sil", 0.60, 0.80),
        ("K", 0.80, 1.0),
    ]


def test_normalise_segments_edge_cases():
    assert normalise_segments([], 2.0) == [Segment("sil", 0.0, 2.0)]
    almost = [Segment("B", 1e-9, 0.5), Segment("IY", 0.5 + 1e-9, 1.0 - 1e-9)]  # rounding gaps only
    assert normalise_segments(almost, 1.0) == [Segment("B", 0.0, 0.5), Segment("IY", 0.5, 1.0)]
    with pytest.raises(ValueError, match="duration must be positive"):
        normalise_segments(almost, 0.0)


def test_normalise_segments_property_random_inputs():
    """Any timed list becomes an alignment: contiguous cover, no empty pieces, no adjacent silences."""
    rng = np.random.default_rng(0)
    labels = ["sil", "sp", *PHONEMES[:8]]
    for _ in range(300):
        duration = float(rng.uniform(0.1, 5.0))
        count = int(rng.integers(0, 12))
        starts = rng.uniform(-0.5, duration * 1.2, count)
        lengths = rng.exponential(0.3, count)
        raw = [
            Segment(str(rng.choice(labels)), max(0.0, float(s)), max(0.0, float(s)) + float(n))
            for s, n in zip(starts, lengths, strict=True)
        ]
        out = normalise_segments(raw, duration)
        check_alignment(out, duration, tol=1e-12)
        assert all(s.duration > 0 for s in out)
        assert not any(a.label == b.label == "sil" for a, b in zip(out, out[1:], strict=False))
        assert {s.label for s in out} <= ({s.label for s in raw} - {"sp"}) | {"sil"}
        assert normalise_segments(out, duration) == out  # idempotent


def test_check_alignment_names_the_problem():
    good = [Segment("sil", 0.0, 0.3), Segment("B", 0.3, 0.5), Segment("sil", 0.5, 1.0)]
    check_alignment(good, 1.0)
    cases = {
        "empty alignment": ([], 1.0),
        "starts at 0.1": ([Segment("B", 0.1, 1.0)], 1.0),
        "not at duration 1.5": (good, 1.5),
        "gap between 'B'": ([good[0], good[1], Segment("sil", 0.6, 1.0)], 1.0),
        "overlap between 'B'": ([good[0], good[1], Segment("sil", 0.4, 1.0)], 1.0),
    }
    for message, (segments, duration) in cases.items():
        assert not _is_alignment(segments, duration)
        with pytest.raises(ValueError, match=message):
            check_alignment(segments, duration)


def test_frame_phoneme_ids_sample_frame_centres():
    segments = [Segment("sil", 0.0, 0.1), Segment("B", 0.1, 0.2), Segment("IH", 0.2, 0.3)]
    ids = frame_phoneme_ids(segments, 9)  # 25 fps: centres 0.02, 0.06, 0.10, ..., 0.34
    assert ids.dtype == np.int64 and ids.shape == (9,)
    sil, b, ih = SIL_ID, phoneme_id("B"), phoneme_id("IH")
    # frame 2's centre is exactly 0.1: a segment owns [start, end), so it is B's
    assert ids.tolist() == [sil, sil, b, b, b, ih, ih, sil, sil]  # past the end -> sil
    assert frame_phoneme_ids(segments, 0).shape == (0,)


def test_frame_phoneme_ids_other_frame_rate_and_grid():
    phonemes = phonemes_from_words(_grid_words(), GRID_PRONUNCIATIONS, 3.0)
    ids = frame_phoneme_ids(phonemes, 90, fps=30)
    centres = (np.arange(90) + 0.5) / 30
    for f in (0, 29, 30, 45, 89):
        covering = next(p for p in phonemes if p.start <= centres[f] < p.end)
        assert VOCAB[ids[f]] == covering.label


def test_frame_phoneme_ids_rejects_non_alignments():
    with pytest.raises(ValueError, match="gap"):
        frame_phoneme_ids([Segment("sil", 0.0, 0.1), Segment("B", 0.2, 0.3)], 5)
    with pytest.raises(ValueError, match="empty alignment"):
        frame_phoneme_ids([], 5)
    with pytest.raises(ValueError, match="num_frames"):
        frame_phoneme_ids([Segment("sil", 0.0, 0.1)], -1)
    with pytest.raises(ValueError, match="unknown phoneme label"):
        frame_phoneme_ids([Segment("bin", 0.0, 0.1)], 2)
