"""The driving landmarks: stage 1's mouth retargeted to this person, the rest from the photo or the clip.

All in the crop pixels of a ``crop_size`` aligned crop (``datamodules.faces.alignment``):

- ``retarget_mouth``: stage 1 predicts the mouth in the face-normalised frame, conditioned on the person's
  neutral mouth; its displacement from that neutral mouth (times ``mouth_scale``) is added to the person's
  own neutral mouth in the crop, so lips keep their shape and thickness and only the motion is learned.
- ``rest_in_silence``: where nobody speaks the mouth eases back to the neutral mouth (no chewing in pauses).
- ``replace_mouth``: the new mouth goes into the face, and the chin rides with the lower lip (lips sit on
  the jaw), so an open mouth has a lower chin.
"""

from __future__ import annotations

import numpy as np

from talking_face.datamodules.faces.alignment import pixels_per_unit
from talking_face.datamodules.faces.landmark_scheme import MOUTH
from talking_face.datamodules.faces.motion import JAW, JAW_FOLLOW, face_down_direction

__all__ = ["replace_mouth", "rest_in_silence", "retarget_mouth"]

_LOWER_LIP_CENTRE = 57 - MOUTH.start


def retarget_mouth(
    predicted: np.ndarray, reference: np.ndarray, neutral_crop: np.ndarray, crop_size: int, mouth_scale: float
) -> np.ndarray:
    """Mouth [T, 20, 2] in crop pixels.

    predicted: [T, 20, 2] stage 1's output, face-normalised; reference: [20, 2] the neutral mouth it was
    given (face-normalised); neutral_crop: [20, 2] the person's neutral mouth in crop pixels.
    """
    displacement = (np.asarray(predicted) - np.asarray(reference)[None]) * pixels_per_unit(crop_size)
    return (np.asarray(neutral_crop)[None] + mouth_scale * displacement).astype(np.float32)


def rest_in_silence(
    mouth: np.ndarray, neutral: np.ndarray, voiced: np.ndarray, ease_frames: int = 3
) -> np.ndarray:
    """Blend ``mouth`` [T, 20, 2] toward ``neutral`` [20, 2] where ``voiced`` [T] is False.

    The weight of speech ramps over ``ease_frames`` frames on each side of a pause (a raised-cosine
    window), so the lips close and reopen smoothly instead of jumping.
    """
    weight = np.asarray(voiced, np.float64)
    if ease_frames > 0:
        window = np.hanning(2 * ease_frames + 3)[1:-1]
        weight = np.convolve(np.pad(weight, ease_frames, mode="edge"), window / window.sum(), "valid")
        weight = np.maximum(weight, 0.0)[: len(voiced)]
    weight = weight[:, None, None]
    return (neutral[None] + weight * (mouth - neutral[None])).astype(np.float32)


def replace_mouth(face: np.ndarray, mouth: np.ndarray, neutral_mouth: np.ndarray) -> np.ndarray:
    """Landmarks [T, 68, 2] of ``face`` [T, 68, 2] with ``mouth`` [T, 20, 2] in place of their own.

    The chin rides with the lower lip: jaw points 3-13 move down the face by the new lower-lip drop minus
    the face's own (both from ``neutral_mouth`` [20, 2]), so a clip's chin follows the new speech, not the
    old one, and an open mouth gets a lower chin.
    """
    face = np.array(face, np.float32, copy=True)
    down = face_down_direction(face)
    own = face[:, MOUTH.start + _LOWER_LIP_CENTRE] - neutral_mouth[_LOWER_LIP_CENTRE]
    new = mouth[:, _LOWER_LIP_CENTRE] - neutral_mouth[_LOWER_LIP_CENTRE]
    drop = ((new - own) * down).sum(-1)
    face[:, JAW] += (drop[:, None] * JAW_FOLLOW[None])[..., None] * down[:, None]
    face[:, MOUTH.start : MOUTH.stop] = mouth
    return face
