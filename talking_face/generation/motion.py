"""The driving landmarks: stage 1's mouth retargeted to this person, the rest from the photo or the clip.

All in the crop pixels of a ``crop_size`` aligned crop (``datamodules.faces.alignment``):

- ``retarget_mouth``: stage 1 predicts the mouth in the face-normalised frame, conditioned on the person's
  neutral mouth; its displacement from that neutral mouth (times ``mouth_scale``) is added to the person's
  own neutral mouth in the crop, so lips keep their shape and thickness and only the motion is learned.
- ``close_on_bilabials``: where the phones say p, b or m, the lips meet (stage 1 alone leaves them a little
  apart on such short closures);
- ``rest_in_silence``: where nobody speaks the mouth eases back to the neutral mouth (no chewing in pauses).
- ``replace_mouth``: the new mouth goes into the face, and the chin rides with the lower lip (lips sit on
  the jaw), so an open mouth has a lower chin.
"""

from __future__ import annotations

import numpy as np

from talking_face.datamodules.faces.alignment import pixels_per_unit
from talking_face.datamodules.faces.landmark_scheme import MOUTH
from talking_face.datamodules.faces.motion import JAW, JAW_FOLLOW, face_down_direction
from talking_face.datamodules.phonemes import BILABIALS, phoneme_id
from talking_face.generation.mouth_calibration import closed_mouth

__all__ = ["close_on_bilabials", "replace_mouth", "rest_in_silence", "retarget_mouth"]

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


def close_on_bilabials(mouth: np.ndarray, phoneme_ids: np.ndarray, closed_gap: float) -> np.ndarray:
    """``mouth`` [T, 20, 2] with the lips brought together (``closed_mouth``, to the inner gap ``closed_gap``,
    same units) on the frames whose phoneme (``phoneme_ids`` [T], ``VOCAB`` ids) is p, b or m, and half way
    on the frame before and after each such run, so they close and open over a frame.

    Why: a bilabial closure lasts two or three frames; stage 1, trained to be close on average, leaves the
    lips a little apart there, and a viewer reads a mouth that never shuts as mumbling.
    """
    mouth = np.array(mouth, np.float32, copy=True)
    bilabial = np.isin(phoneme_ids, [phoneme_id(label) for label in BILABIALS]).astype(np.float64)
    weight = np.maximum(bilabial, 0.5 * np.convolve(bilabial, [1.0, 0.0, 1.0], "same").clip(0, 1))
    for t in np.flatnonzero(weight):
        closed = closed_mouth(mouth[t], closed_gap)
        mouth[t] += weight[t] * (closed - mouth[t])
    return mouth


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
