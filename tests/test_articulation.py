"""Articulation measures (issue 13): known answers on made-up lip gaps, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from talking_face.generation.articulation import OPENNESS, articulation, openness_track

PHONES = ["sil", "sil", "M", "M", "M", "AA", "AA", "AA", "B", "B", "B", "AE", "AE", "AE", "S", "IY",
          "P", "P", "P", "AY", "AY", "AY", "sil"]  # fmt: skip


def test_a_mouth_that_follows_the_phones_scores_perfectly():
    steps = articulation(openness_track(PHONES, smooth=1), PHONES)  # each phone's opening, held
    assert steps["bilabial_ratio"] == 0.0
    assert steps["openness_corr"] > 0.8  # against the 3-frame smoothed table, not the steps themselves
    assert steps["bilabial_frames"] == 9 and steps["open_frames"] == 9
    assert articulation(openness_track(PHONES), PHONES)["openness_corr"] == pytest.approx(1.0)


def test_a_mouth_that_ignores_the_phones_scores_badly():
    rng = np.random.default_rng(0)
    still = articulation(np.full(len(PHONES), 0.2), PHONES)
    assert still["bilabial_ratio"] == 1.0 and still["openness_corr"] == 0.0 and still["gap_spread"] < 1e-12
    upside_down = 1.0 - openness_track(PHONES, smooth=1) + 0.01 * rng.random(len(PHONES))
    reversed_mouth = articulation(upside_down, PHONES)  # open on p/b/m, shut on the vowels
    assert reversed_mouth["bilabial_ratio"] > 1.5 and reversed_mouth["openness_corr"] < -0.8


def test_frames_without_a_face_are_left_out():
    gap = openness_track(PHONES, smooth=1)
    lost = np.ones(len(PHONES), bool)
    lost[[2, 3, 4]] = False  # the M frames: P and B remain
    gap_wrong = gap.copy()
    gap_wrong[[2, 3, 4]] = 5.0  # garbage where the detector lost the face
    assert articulation(gap_wrong, PHONES, lost)["bilabial_ratio"] == 0.0
    assert np.isnan(articulation(gap, PHONES, np.zeros(len(PHONES), bool))["bilabial_ratio"])


def test_smoothing_is_a_three_frame_moving_mean():
    track = openness_track(["AA", "P", "AA"])
    np.testing.assert_allclose(track, [2 / 3, 2 / 3, 2 / 3])
    assert set(OPENNESS) >= {"sil", "P", "AA"}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"phones must be \[T\] with T=3, got \[2\]"):
        articulation(np.zeros(3), ["AA", "AA"])
    with pytest.raises(ValueError, match="without an openness: XX"):
        articulation(np.zeros(2), ["AA", "XX"])
