"""A photo whose mouth is open (a smile with teeth) must still close for p, b and m (issue 13, item 4).

Stage 1 predicts the mouth as a displacement from the person's neutral mouth, and was trained on faces whose
neutral mouth is closed: it learned that a closure is "about no displacement". From an open neutral mouth
the lips then never meet. Measured on real speech (``benchmarks/articulation.py``): scikit-image's astronaut
(a broad smile, inner-lip gap 0.11 inter-ocular units, against 0.008-0.011 for two closed-mouth photos) had
a bilabial closure ratio of 0.54-0.88 in every mode; the closed-mouth faces reached 0.16-0.41.

``closed_mouth`` brings the two lips of an open neutral mouth together (the corners stay, the middle moves
most), so stage 1 starts from, and retargets onto, a closed mouth like the ones it learned from.
"""

from __future__ import annotations

import numpy as np

from talking_face.datamodules.faces.alignment import pixels_per_unit
from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_MOUTH
from talking_face.datamodules.faces.mouth import mouth_opening
from talking_face.shapes import check_shape

__all__ = ["CLOSED_GAP", "UPPER_SHARE", "closed_gap", "closed_mouth"]

CLOSED_GAP = 0.02
"""Inner-lip gap (inter-ocular units, ``mouth_opening`` of a face-normalised mouth) above which a neutral
mouth counts as open and is closed to this gap; closed-mouth photos measured 0.008-0.011."""

UPPER_SHARE = 0.25
"""How much of a closing the upper lip makes (the lower lip, on the jaw, makes the rest): moved as far as the
lower one, the upper lip of a closing smile stretched the skin under the nose into streaks."""

_UPPER = np.array([49, 50, 51, 52, 53, 61, 62, 63]) - MOUTH.start
_LOWER = np.array([55, 56, 57, 58, 59, 65, 66, 67]) - MOUTH.start


def closed_gap(crop_size: int) -> float:
    """``CLOSED_GAP`` in the crop pixels of a ``crop_size`` crop: the gap a closed mouth keeps there."""
    return CLOSED_GAP * pixels_per_unit(crop_size)


def closed_mouth(mouth: np.ndarray, gap: float) -> np.ndarray:
    """``mouth`` [20, 2] with its lips brought together until ``mouth_opening`` is ``gap`` (same units).

    The upper lip moves down by ``UPPER_SHARE`` of the closing and the lower lip up by the rest, weighted by
    how far a point lies from the corners (1 in the middle, 0 at the corners, which stay). A mouth already at
    most ``gap`` open comes back unchanged.
    """
    mouth = np.asarray(mouth, np.float64)
    check_shape(mouth, f"{NUM_MOUTH} 2", "mouth")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    opening = float(mouth_opening(mouth))
    if opening <= gap:
        return mouth.astype(np.float32)
    left, right = mouth[0], mouth[6]  # outer corners 48 and 54
    across = (right - left) / np.linalg.norm(right - left)
    down = np.array([-across[1], across[0]])  # image y grows downward
    if np.dot(mouth[_LOWER].mean(0) - mouth[_UPPER].mean(0), down) < 0:
        down = -down
    half_width = np.linalg.norm(right - left) / 2
    centre = (left + right) / 2
    weight = np.clip(1 - (((mouth - centre) @ across) / half_width) ** 2, 0.0, 1.0)

    def closing(amount: float) -> np.ndarray:
        moved = mouth.copy()
        moved[_UPPER] += UPPER_SHARE * amount * weight[_UPPER, None] * down
        moved[_LOWER] -= (1 - UPPER_SHARE) * amount * weight[_LOWER, None] * down
        return moved

    # the opening falls linearly with the closing until the lips meet: one secant step that stops short of
    # their meeting (no point moves by more than the amount) finds the amount, in any units
    step = opening / 2
    slope = (opening - float(mouth_opening(closing(step)))) / step
    return closing((opening - gap) / slope).astype(np.float32)
