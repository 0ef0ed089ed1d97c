"""The timebase: per-frame values made at the models' 25 fps, read at another frame rate (a clip's own)."""

from __future__ import annotations

import numpy as np
import pytest

from talking_face.datamodules import timebase


def test_motion_made_at_25_fps_plays_at_any_rate():
    ramp = np.arange(50, dtype=np.float64)[:, None] * [1.0, -2.0]  # 2 s of steady motion at 25 fps
    times = np.asarray(timebase.frame_times(120, 60))
    at_60 = timebase.resample_frames(ramp, 120, 60)
    inside = (times >= 0.5 / 25) & (times <= 49.5 / 25)  # between the first and last centres at 25 fps
    np.testing.assert_allclose(at_60[inside, 0], times[inside] * 25 - 0.5)
    np.testing.assert_allclose(at_60[:, 1], -2 * at_60[:, 0])
    assert at_60[0, 0] == 0 and at_60[-1, 0] == 49  # held at the ends
    np.testing.assert_array_equal(timebase.resample_frames(ramp, 50, 25), ramp)  # its own rate: itself


def test_a_label_read_at_another_rate_is_the_one_under_the_frame():
    under = timebase.frames_under(60, 30, 50)
    centres = (np.arange(60) + 0.5) / 30
    assert ((under / 25 <= centres) & (centres < (under + 1) / 25)).all()
    np.testing.assert_array_equal(timebase.frames_under(50, 25, 50), np.arange(50))
    assert timebase.frames_under(13, 30, 10).max() == 9  # a last partial frame reads the last label


@pytest.mark.parametrize("fps", [24, 29.97, 50, 60])
def test_counts_and_smoothing_windows_last_as_long_at_any_rate(fps):
    assert timebase.num_frames_at(0.8, 25) == 20 and timebase.num_frames_at(0.81, 25) == 21
    assert timebase.num_frames_at(7 * 640 / 16000, 25) == timebase.num_frames_for(7 * 640)
    assert timebase.num_frames_at(2.0, fps) == int(np.ceil(2 * fps - 1e-6))
    assert timebase.window_at(5, 25) == 5 and timebase.window_at(1, fps) == 1
    window = timebase.window_at(5, fps)
    assert window % 2 == 1 and abs(window / fps - 5 / 25) <= 1 / fps + 1e-9  # the nearest odd count
