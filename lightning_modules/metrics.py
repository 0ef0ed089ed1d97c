"""Landmark metrics: the one mouth landmark distance (LMD) that both stages and generation report, and
stage 1's metrics as torchmetrics ``Metric``s (states are sums, so DDP reduces them exactly).

Inputs share one convention: ``preds`` and ``target`` [B, T, 20, 2] mouth landmarks in the face-normalised
frame, ``mask`` [B, T] bool (True on real frames), ``pixels_per_unit`` [B] crop pixels per normalised unit.
Every real frame weighs the same, whatever the batch it came in, so padding and batching never change a value.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from talking_face.datamodules.faces.alignment import face_normalise, pixels_per_unit
from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_LANDMARKS
from talking_face.shapes import check_shape

__all__ = ["REPORT_SIZE", "LandmarkVelocityError", "MouthLandmarkDistance", "mouth_distance"]

REPORT_SIZE = 128
"""LMD is reported in pixels of a 128-px aligned crop, whatever the size of the crops compared."""


def mouth_distance(
    detected: Tensor, target: Tensor, crop_size: int, target_crop_size: int | None = None
) -> Tensor:
    """LMD of each frame [N]: mean distance over the 20 mouth points of ``detected`` and ``target``
    [N, 68, 2], crop pixels of ``crop_size`` (and ``target_crop_size``) crops, face-normalised and reported
    in pixels of a ``REPORT_SIZE`` crop, so crops of any size compare."""
    dims = check_shape(detected, f"N {NUM_LANDMARKS} 2", "detected")
    check_shape(target, f"N {NUM_LANDMARKS} 2", "target", dims)
    mouth = slice(MOUTH.start, MOUTH.stop)
    detected_mouth = face_normalise(detected[:, mouth].double(), crop_size)
    target_mouth = face_normalise(target[:, mouth].double(), target_crop_size or crop_size)
    distance = torch.linalg.vector_norm(detected_mouth - target_mouth, dim=-1).mean(-1)
    return distance * pixels_per_unit(REPORT_SIZE)


def _check(preds: Tensor, target: Tensor, mask: Tensor, pixels_per_unit: Tensor) -> None:
    dims = check_shape(preds, "B T P 2", "preds")
    check_shape(target, "B T P 2", "target", dims)
    check_shape(mask, "B T", "mask", dims)
    check_shape(pixels_per_unit, "B", "pixels_per_unit", dims)


class _MeanOverFrames(Metric):
    """Sum of a per-frame error and the count of frames, reduced by summing across processes."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # float32 + int64 (not float64): Apple's MPS backend has no float64
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def _accumulate(self, frame_error: Tensor, frame_mask: Tensor) -> None:
        """frame_error [B, T'] in pixels, frame_mask [B, T'] bool."""
        self.total += (frame_error.float() * frame_mask).sum()
        self.count += frame_mask.sum()

    def compute(self) -> Tensor:
        """Mean over all real frames (NaN before any frame was seen)."""
        return self.total / self.count


class MouthLandmarkDistance(_MeanOverFrames):
    """LMD: mean Euclidean distance between predicted and true mouth landmarks, in crop pixels.

    Each frame's error is the mean over its 20 points of ||pred - target|| * pixels_per_unit; the metric is
    the mean over real frames. Shifting every point by (3, 4) units gives 5 * pixels_per_unit.
    """

    def update(self, preds: Tensor, target: Tensor, mask: Tensor, pixels_per_unit: Tensor) -> None:
        _check(preds, target, mask, pixels_per_unit)
        distance = torch.linalg.vector_norm(preds - target, dim=-1).mean(dim=-1)  # [B, T]
        self._accumulate(distance * pixels_per_unit[:, None], mask)


class LandmarkVelocityError(_MeanOverFrames):
    """Mean Euclidean error of frame-to-frame landmark velocity, in crop pixels per frame.

    Velocity v_t = x_{t+1} - x_t is counted where both frames are real; the error of a frame pair is the
    mean over points of ||v_pred - v_target|| * pixels_per_unit. A constant offset costs nothing here.
    """

    def update(self, preds: Tensor, target: Tensor, mask: Tensor, pixels_per_unit: Tensor) -> None:
        _check(preds, target, mask, pixels_per_unit)
        error = (preds.diff(dim=1) - target.diff(dim=1)).float()
        distance = torch.linalg.vector_norm(error, dim=-1).mean(dim=-1)  # [B, T - 1]
        self._accumulate(distance * pixels_per_unit[:, None], mask[:, 1:] & mask[:, :-1])
