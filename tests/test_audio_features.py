import numpy as np
import pytest

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_features import fit_to_frames, log_mel


@pytest.mark.parametrize("samples", [1, 639, 640, 641, 16_000, 48_123])
def test_exactly_four_steps_per_video_frame_for_any_length(samples):
    audio = np.random.default_rng(0).normal(0, 0.1, samples).astype(np.float32)
    features = log_mel(audio)
    frames = timebase.num_frames_for(samples)
    assert features.shape == (frames * timebase.STEPS_PER_FRAME, timebase.N_MELS)
    assert features.dtype == np.float32 and np.isfinite(features).all()


def test_features_follow_the_audio_in_time():
    """A burst in frame 10 lights up steps 40..43, not its neighbours' far away."""
    audio = np.zeros(25 * timebase.SAMPLES_PER_FRAME, np.float32)
    burst = slice(10 * timebase.SAMPLES_PER_FRAME, 11 * timebase.SAMPLES_PER_FRAME)
    audio[burst] = np.random.default_rng(1).normal(0, 0.5, timebase.SAMPLES_PER_FRAME)
    energy = log_mel(audio).mean(axis=1)
    loud = np.flatnonzero(energy > energy.min() + 5)
    assert set(range(41, 43)) <= set(loud) and loud.min() >= 38 and loud.max() <= 45


def test_fit_to_frames_pads_and_trims():
    assert fit_to_frames(np.ones(10), 2).shape == (2 * timebase.SAMPLES_PER_FRAME,)
    assert fit_to_frames(np.ones(5000), 2).sum() == 2 * timebase.SAMPLES_PER_FRAME


def test_bad_audio_is_refused():
    with pytest.raises(ValueError, match="empty"):
        log_mel(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 100), np.float32))
