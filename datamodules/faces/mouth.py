"""Mouth measurements on 68-point landmarks: how open it is, and what it looks like at rest.

Shared by the DataModule (the neutral mouth that stage 1 predicts displacements from), the notebooks
(mouth-opening curves) and generation (silence closes the mouth to the person's neutral mouth).
"""

from __future__ import annotations

import numpy as np

from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_MOUTH

# Inner-lip pairs facing each other across the opening (upper 61-63 over lower 67-65).
_UPPER_INNER = np.array([61, 62, 63]) - MOUTH.start
_LOWER_INNER = np.array([67, 66, 65]) - MOUTH.start


def mouth_points(landmarks: np.ndarray) -> np.ndarray:
    """The 20 mouth points [..., 20, 2] of 68-point landmarks [..., 68, 2]."""
    return landmarks[..., MOUTH.start : MOUTH.stop, :]


def mouth_opening(mouth: np.ndarray) -> np.ndarray:
    """Mean inner-lip gap [...] of mouth points [..., 20, 2], in the points' own units."""
    if mouth.shape[-2:] != (NUM_MOUTH, 2):
        raise ValueError(f"expected mouth points [..., {NUM_MOUTH}, 2], got {mouth.shape}")
    gaps = mouth[..., _LOWER_INNER, :] - mouth[..., _UPPER_INNER, :]
    return np.linalg.norm(gaps, axis=-1).mean(axis=-1)


def neutral_mouth(mouth: np.ndarray, resting: np.ndarray | None = None, quantile: float = 0.2) -> np.ndarray:
    """The resting mouth [20, 2] of a sequence [T, 20, 2]: the median over its most closed frames.

    ``resting`` (bool [T], e.g. frames under silence) narrows the candidates where it selects any.
    Using the most closed frames, not the mean, keeps speech out of the identity's mouth shape.
    """
    mouth = np.asarray(mouth, np.float32)
    if mouth.ndim != 3 or len(mouth) == 0:
        raise ValueError(f"expected a mouth sequence [T>0, 20, 2], got {mouth.shape}")
    candidates = mouth[resting] if resting is not None and resting.any() else mouth
    opening = mouth_opening(candidates)
    closed = opening <= np.quantile(opening, quantile)
    return np.median(candidates[closed], axis=0).astype(np.float32)
