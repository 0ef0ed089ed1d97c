"""An open neutral mouth (a smile with teeth) is closed before stage 1 moves it, so p/b/m can close it."""

from __future__ import annotations

import numpy as np
import pytest

from talking_face.datamodules.faces.mouth import mouth_opening
from talking_face.datamodules.phonemes import phoneme_id
from talking_face.generation.motion import close_on_bilabials
from talking_face.generation.mouth_calibration import UPPER_SHARE, closed_mouth


def _mouth(gap: float, tilt: float = 0.0) -> np.ndarray:
    """A mouth [20, 2] in pixels: 40 px wide, lips 6 px thick, inner lips ``gap`` px apart, turned by
    ``tilt`` radians."""
    x_outer = np.array([-20, -12, -5, 0, 5, 12, 20, 12, 5, 0, -5, -12], float)
    y_outer = np.array([0, -6, -8, -7, -8, -6, 0, 6, 8, 8, 8, 6], float) + np.r_[np.zeros(7), np.full(5, gap)]
    x_inner = np.array([-16, -6, 0, 6, 16, 6, 0, -6], float)
    y_inner = np.array([0, 0, 0, 0, 0, gap, gap, gap], float)
    points = np.stack([np.r_[x_outer, x_inner], np.r_[y_outer, y_inner]], axis=1)
    rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    return points @ rotation.T + [64, 90]


@pytest.mark.parametrize("tilt", [0.0, 0.3])
def test_an_open_mouth_closes_to_the_gap_and_keeps_its_corners(tilt):
    mouth = _mouth(gap=12.0, tilt=tilt)
    closed = closed_mouth(mouth, gap=1.0)
    assert mouth_opening(mouth) > 10
    assert mouth_opening(closed) == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(closed[[0, 6, 12, 16]], mouth[[0, 6, 12, 16]], atol=1e-4)  # corners stay
    upper_moved = closed[3] - mouth[3]  # 51, top of the upper lip: down, toward the lower lip
    lower_moved = closed[9] - mouth[9]  # 57: up
    down = np.array([-np.sin(tilt), np.cos(tilt)])
    assert upper_moved @ down > 2 and lower_moved @ down < -2
    # the lower lip, on the jaw, makes most of the closing: the skin under the nose is not stretched
    lower_share = 1 - UPPER_SHARE
    assert -(lower_moved @ down) == pytest.approx(lower_share / UPPER_SHARE * (upper_moved @ down), rel=0.01)


@pytest.mark.parametrize("scale", [0.01, 0.1, 1.0])
def test_the_closing_is_exact_in_any_units(scale):
    """A gap smaller than one unit (a face-normalised mouth, or a crop-pixel mouth nearly shut) closes to
    the gap asked for, not past it."""
    mouth = _mouth(gap=3.0) * scale
    closed = closed_mouth(mouth, gap=0.5 * scale)
    assert mouth_opening(closed) == pytest.approx(0.5 * scale, rel=0.02)


def test_lips_meet_on_p_b_m_and_only_there():
    """``close_on_bilabials``: the frames of p, b and m close to the gap asked for, the frames either side
    half way, and every other frame keeps its mouth."""
    ids = np.array([phoneme_id(p) for p in ["AA", "AA", "AA", "M", "B", "AA", "AA", "AA", "P", "AA", "AA"]])
    mouth = np.broadcast_to(_mouth(gap=6.0), (len(ids), 20, 2)).astype(np.float32)
    opening = mouth_opening(close_on_bilabials(mouth, ids, closed_gap=1.0))
    np.testing.assert_allclose(opening[[3, 4, 8]], 1.0, atol=0.05)
    np.testing.assert_allclose(opening[[2, 5, 7, 9]], 3.5, atol=0.05)  # half way from 6 to 1
    np.testing.assert_allclose(opening[[0, 1, 6, 10]], 6.0, atol=1e-4)


def test_a_closed_mouth_is_left_alone():
    mouth = _mouth(gap=0.5)
    np.testing.assert_allclose(closed_mouth(mouth, gap=1.0), mouth, atol=1e-5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"mouth must be \[20, 2\]"):
        closed_mouth(np.zeros((68, 2)), 1.0)
    with pytest.raises(ValueError, match="gap must be >= 0"):
        closed_mouth(_mouth(5.0), -1.0)
