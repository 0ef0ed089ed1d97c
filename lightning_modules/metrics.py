"""Stage-1 metrics in crop pixels, as torchmetrics ``Metric``s (states are sums, so DDP reduces them exactly).

Inputs share one convention: ``preds`` and ``target`` [B, T, 20, 2] mouth landmarks in the face-normalised
frame, ``mask`` [B, T] bool (True on real frames), ``pixels_per_unit`` [B] crop pixels per normalised unit.
Every real frame weighs the same, whatever the batch it came in, so padding and batching never change a value.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from talking_face.shapes import check_shape

__all__ = ["LandmarkVelocityError", "MouthLandmarkDistance"]


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
