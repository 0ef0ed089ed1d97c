"""The driving landmarks: stage 1's mouth retargeted to this person, the rest from the photo or the clip.

All in the crop pixels of a ``crop_size`` aligned crop (``datamodules.faces.alignment``):

- ``retarget_mouth``: stage 1 predicts the mouth in the face-normalised frame, conditioned on the person's
  neutral mouth; its displacement from that neutral mouth (times ``mouth_scale``) is added to the person's
  own neutral mouth in the crop, so lips keep their shape and thickness and only the motion is learned.
- ``rest_in_silence``: where nobody speaks the mouth eases back to the neutral mouth (no chewing in pauses).
- ``replace_mouth``: the new mouth goes into the face, and the chin rides with the lower lip (lips sit on
  the jaw), so an open mouth has a lower chin.
- ``photo_motion``: a still photo gets gentle head motion and blinks (the built-in corpus' motion models).
"""

from __future__ import annotations

import numpy as np

from talking_face.datamodules.faces.alignment import pixels_per_unit
from talking_face.datamodules.faces.landmark_scheme import MOUTH

__all__ = ["photo_motion", "replace_mouth", "rest_in_silence", "retarget_mouth"]

_JAW = np.arange(3, 14)
_JAW_FOLLOW = np.array([0.08, 0.25, 0.5, 0.75, 0.92, 1.0, 0.92, 0.75, 0.5, 0.25, 0.08])
"""How much of the lower lip's downward motion each jaw point (3-13) follows: all at the chin, none at
the ears."""
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


def _face_down(landmarks: np.ndarray) -> np.ndarray:
    """Unit vectors [T, 2] from the eyes toward the chin, perpendicular to the eye line, per frame."""
    eyes = landmarks[:, 42:48].mean(1) - landmarks[:, 36:42].mean(1)
    down = np.stack([-eyes[:, 1], eyes[:, 0]], axis=-1)
    return down / (np.linalg.norm(down, axis=-1, keepdims=True) + 1e-9)


def replace_mouth(face: np.ndarray, mouth: np.ndarray, neutral_mouth: np.ndarray) -> np.ndarray:
    """Landmarks [T, 68, 2] of ``face`` [T, 68, 2] with ``mouth`` [T, 20, 2] in place of their own.

    The chin rides with the lower lip: jaw points 3-13 move down the face by the new lower-lip drop minus
    the face's own (both from ``neutral_mouth`` [20, 2]), so a clip's chin follows the new speech, not the
    old one, and an open mouth gets a lower chin.
    """
    face = np.array(face, np.float32, copy=True)
    down = _face_down(face)
    own = face[:, MOUTH.start + _LOWER_LIP_CENTRE] - neutral_mouth[_LOWER_LIP_CENTRE]
    new = mouth[:, _LOWER_LIP_CENTRE] - neutral_mouth[_LOWER_LIP_CENTRE]
    drop = ((new - own) * down).sum(-1)
    face[:, _JAW] += (drop[:, None] * _JAW_FOLLOW[None])[..., None] * down[:, None]
    face[:, MOUTH.start : MOUTH.stop] = mouth
    return face


def photo_motion(
    faces: np.ndarray, neutral: np.ndarray, head_motion: float, blinks: float, seed: int = 0
) -> np.ndarray:
    """``faces`` [T, 68, 2] (a photo's landmarks with a speaking mouth) with head motion and blinks added.

    ``neutral`` [68, 2] is the photo's own face (the eyelids' open positions and the head's centre);
    ``head_motion`` scales the built-in corpus' head-motion model (1 is about 1.5 degrees of roll), ``blinks``
    is a rate per second; 0 and 0 keep the head still.
    """
    from talking_face.datamodules.synthetic.face_animator import (
        apply_blinks,
        blink_track,
        head_motion_track,
        inter_ocular,
        pose_matrices,
        transform_landmarks,
    )

    if head_motion < 0 or blinks < 0:
        raise ValueError(f"head_motion and blinks must be >= 0, got {head_motion} and {blinks}")
    neutral = np.asarray(neutral, np.float64)
    rng = np.random.default_rng(seed)
    closure = blink_track(len(faces), blinks, rng)
    pose = head_motion_track(len(faces), head_motion, rng)
    matrices = pose_matrices(pose, neutral.mean(0), float(inter_ocular(neutral)))
    blinking = apply_blinks(np.asarray(faces, np.float64), neutral, closure)
    return transform_landmarks(blinking, matrices).astype(np.float32)
