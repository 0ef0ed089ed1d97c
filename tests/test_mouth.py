import numpy as np
import pytest

from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points, neutral_mouth


def _mouth(gap: float) -> np.ndarray:
    """A 20-point mouth whose inner lips are ``gap`` apart."""
    mouth = np.zeros((20, 2), np.float32)
    mouth[:, 0] = np.arange(20)
    mouth[[19, 18, 17], 0] = mouth[[13, 14, 15], 0]  # inner lips face each other, as on a real face
    mouth[[13, 14, 15], 1] = -gap / 2  # 61-63 upper inner
    mouth[[19, 18, 17], 1] = gap / 2  # 67-65 lower inner
    return mouth


def test_opening_measures_the_inner_lip_gap():
    assert mouth_opening(_mouth(0.0)) == pytest.approx(0.0)
    assert mouth_opening(np.stack([_mouth(2.0), _mouth(4.0)])) == pytest.approx([2.0, 4.0])
    assert mouth_points(np.zeros((5, 68, 2))).shape == (5, 20, 2)
    with pytest.raises(ValueError, match="mouth points"):
        mouth_opening(np.zeros((68, 2)))


def test_neutral_mouth_ignores_speech_frames():
    speech = np.stack([_mouth(g) for g in [5.0, 0.1, 6.0, 0.0, 7.0, 8.0, 0.2, 9.0, 6.5, 4.0]])
    assert mouth_opening(neutral_mouth(speech)) < 0.25
    resting = np.zeros(10, bool)
    resting[[0, 2]] = True  # only open frames marked resting: the quietest of them is used
    assert mouth_opening(neutral_mouth(speech, resting)) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="mouth sequence"):
        neutral_mouth(np.zeros((0, 20, 2)))
