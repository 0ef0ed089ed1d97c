"""Phonemes -> articulatory parameters: phonetic targets, coarticulation, speaker and utterance variation."""

from __future__ import annotations

import numpy as np
import pytest

from talking_face.datamodules import timebase
from talking_face.datamodules.phonemes import PHONEMES
from talking_face.datamodules.segments import Segment
from talking_face.datamodules.synthetic.visemes import (
    NUM_PARAMS,
    PARAM_RANGES,
    SpeakerStyle,
    articulation_track,
    param_index,
)

JAW, WIDTH, ROUND, CLOSE, TUCK = (
    param_index(name) for name in ("jaw_open", "lip_width", "lip_round", "lip_close", "lower_lip_tuck")
)


def utterance(*spec: tuple[str, float]) -> list[Segment]:
    """Contiguous segments from (label, duration) pairs."""
    segments, start = [], 0.0
    for label, duration in spec:
        segments.append(Segment(label, start, start + duration))
        start += duration
    return segments


def frames_of(segments: list[Segment]) -> int:
    return int(round(segments[-1].end * timebase.FPS))


def frame_at(time: float) -> int:
    """The frame whose centre is nearest ``time`` (frame f is sampled at (f + 0.5) / FPS)."""
    return int(round(time * timebase.FPS - 0.5))


def middle(segment: Segment, lead: float = 0.0) -> int:
    return frame_at(0.5 * (segment.start + segment.end) - lead)


def test_every_phoneme_has_a_track_in_range():
    for phoneme in PHONEMES:
        segments = utterance(("sil", 0.2), (phoneme, 0.2), ("sil", 0.2))
        track = articulation_track(segments, frames_of(segments))
        assert track.shape == (frames_of(segments), NUM_PARAMS) and track.dtype == np.float32
        assert (track >= PARAM_RANGES[:, 0] - 1e-6).all() and (track <= PARAM_RANGES[:, 1] + 1e-6).all()


def test_silence_is_a_closed_resting_mouth():
    segments = utterance(("sil", 1.0))
    track = articulation_track(segments, 25)
    assert np.abs(track[:, JAW]).max() < 1e-3
    assert np.abs(track[:, WIDTH]).max() < 1e-3 and np.abs(track[:, ROUND]).max() < 1e-3
    assert track[:, CLOSE].min() > 0.4


@pytest.mark.parametrize(
    ("vowel", "check"),
    [
        ("AA", lambda t: t[JAW] > 0.8 and t[ROUND] < 0.1),
        ("IY", lambda t: t[WIDTH] > 0.5 and t[JAW] < 0.35),
        ("UW", lambda t: t[ROUND] > 0.8 and t[WIDTH] < -0.4),
    ],
)
def test_long_vowels_reach_their_viseme(vowel, check):
    segments = utterance(("sil", 0.3), (vowel, 0.4), ("sil", 0.3))
    track = articulation_track(segments, frames_of(segments), SpeakerStyle(anticipation_s=0.0))
    assert check(track[middle(segments[1])]), track[middle(segments[1])]


def test_bilabials_close_the_lips_between_open_vowels():
    segments = utterance(
        ("sil", 0.3), ("AA", 0.2), ("P", 0.08), ("AA", 0.2), ("B", 0.08), ("AE", 0.2), ("sil", 0.3)
    )
    style = SpeakerStyle(anticipation_s=0.0)
    track = articulation_track(segments, frames_of(segments), style)
    for closure, vowel in ((segments[2], segments[1]), (segments[4], segments[3])):
        assert track[middle(closure), CLOSE] > 0.85
        assert track[middle(vowel), CLOSE] < 0.3
        assert track[middle(closure), JAW] < track[middle(vowel), JAW] - 0.3


def test_labiodentals_tuck_the_lower_lip():
    segments = utterance(("sil", 0.3), ("AA", 0.2), ("F", 0.1), ("AA", 0.2), ("sil", 0.3))
    track = articulation_track(segments, frames_of(segments), SpeakerStyle(anticipation_s=0.0))
    assert track[middle(segments[2]), TUCK] > 0.8
    assert track[middle(segments[1]), TUCK] < 0.2


def test_weak_consonants_take_their_neighbours_shape():
    """K has almost no lip dominance: between two UWs the lips stay rounded (coarticulation)."""
    segments = utterance(("sil", 0.3), ("UW", 0.2), ("K", 0.08), ("UW", 0.2), ("sil", 0.3))
    track = articulation_track(segments, frames_of(segments), SpeakerStyle(anticipation_s=0.0))
    assert track[middle(segments[2]), ROUND] > 0.7


def test_diphthong_moves_from_onset_to_offset():
    segments = utterance(("sil", 0.3), ("AY", 0.4), ("sil", 0.3))
    track = articulation_track(segments, frames_of(segments), SpeakerStyle(anticipation_s=0.0))
    early, late = frame_at(0.3 + 0.1), frame_at(0.3 + 0.32)
    assert track[early, JAW] > track[late, JAW] + 0.2
    assert track[late, WIDTH] > track[early, WIDTH] + 0.2


def test_lips_lead_the_audio_by_the_anticipation():
    segments = utterance(("sil", 0.5), ("AA", 0.4), ("sil", 0.5))
    late = articulation_track(segments, frames_of(segments), SpeakerStyle(anticipation_s=0.0))
    early = articulation_track(segments, frames_of(segments), SpeakerStyle(anticipation_s=0.08))
    onset = frame_at(0.5)
    assert early[onset, JAW] > late[onset, JAW] + 0.1
    assert early[: onset - 5, JAW].max() < 0.05  # still at rest well before


def test_wider_coarticulation_blends_more():
    segments = utterance(
        ("sil", 0.2), ("AA", 0.1), ("M", 0.06), ("IY", 0.1), ("W", 0.08), ("AE", 0.1), ("sil", 0.2)
    )
    total_variation = [
        np.abs(
            np.diff(articulation_track(segments, frames_of(segments), SpeakerStyle(coarticulation=c)), axis=0)
        ).sum()
        for c in (0.6, 1.6)
    ]
    assert total_variation[1] < 0.9 * total_variation[0]


def test_speakers_differ_and_utterances_differ():
    """No lookup table: the same phonemes give other tracks for another speaker, and for one speaker again."""
    segments = utterance(
        ("sil", 0.3), ("B", 0.07), ("IH", 0.1), ("N", 0.08), ("B", 0.07), ("L", 0.06), ("UW", 0.2)
    )
    count = frames_of(segments)
    one, two = (SpeakerStyle.sample(np.random.default_rng(seed)) for seed in (1, 2))
    assert one != two
    a = articulation_track(segments, count, one, np.random.default_rng(0))
    b = articulation_track(segments, count, two, np.random.default_rng(0))
    again = articulation_track(segments, count, one, np.random.default_rng(1))
    same = articulation_track(segments, count, one, np.random.default_rng(0))
    assert np.abs(a - b).max() > 0.1
    assert np.abs(a - again).max() > 0.02
    np.testing.assert_array_equal(a, same)
    np.testing.assert_array_equal(
        articulation_track(segments, count, one), articulation_track(segments, count, one)
    )


def test_idiosyncrasy_keeps_what_defines_a_viseme():
    segments = utterance(("sil", 0.8), ("AA", 0.2), ("P", 0.1), ("AA", 0.2), ("sil", 0.4))
    for seed in range(8):
        style = SpeakerStyle(idiosyncrasy=0.15, idiosyncrasy_seed=seed, anticipation_s=0.0)
        track = articulation_track(segments, frames_of(segments), style)
        assert track[middle(segments[2]), CLOSE] > 0.8
        assert track[frame_at(0.2), JAW] < 0.02  # at rest far from speech


def test_sampled_styles_are_valid_and_varied():
    rng = np.random.default_rng(0)
    styles = [SpeakerStyle.sample(rng) for _ in range(20)]
    assert len({s.idiosyncrasy_seed for s in styles}) == 20
    anticipations = [s.anticipation_s for s in styles]
    assert min(anticipations) >= 0 and max(anticipations) <= 0.08 and np.std(anticipations) > 0.01
    with pytest.raises(ValueError, match="visemes.py"):
        SpeakerStyle(jaw_scale=0.0)


def test_labels_stress_pauses_and_errors():
    stressed = articulation_track(utterance(("sp", 0.2), ("AA1", 0.3), ("SIL", 0.2)), 17)
    plain = articulation_track(utterance(("sil", 0.2), ("AA", 0.3), ("sil", 0.2)), 17)
    np.testing.assert_array_equal(stressed, plain)
    with pytest.raises(ValueError, match="visemes.py.*'XX'"):
        articulation_track(utterance(("XX", 0.2)), 5)
    assert articulation_track([], 0).shape == (0, NUM_PARAMS)
    assert articulation_track([], 3)[:, JAW].max() == 0.0
