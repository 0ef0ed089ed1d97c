"""A stage-2 batch made ready for training and evaluation: checked, resized to the model's size, drawn as
sketches, with the classical flows the losses and metrics need.

Batches follow the stage-2 contract of ``datamodules.datasets.FaceClipDataset``: ``frames`` [B, L, 3, S, S]
in [0, 1], ``landmarks`` [B, L, 68, 2] crop pixels, ``reference_frame`` [B, 3, S, S], ``reference_landmarks``
[B, 68, 2], ``speaker`` / ``utterance`` lists, ``start`` [B]. Clips at another size than the model's are
resized (train at 64 px from a 128-px cache, say).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from talking_face.datamodules.faces.landmark_scheme import NUM_LANDMARKS
from talking_face.lightning_modules.face2vid_metrics import estimate_flow, mouth_box, resize_clip
from talking_face.lightning_modules.rollout import fold
from talking_face.shapes import check_shape

__all__ = ["Clip", "prepare_clip"]


@dataclass(frozen=True)
class Clip:
    """frames [B, L, 3, S, S], landmarks [B, L, 68, 2], sketches [B, L, Cs, S, S], reference [B, 3, S, S],
    reference_landmarks [B, 68, 2], mouth_box [B, L, 1, S, S] bool, flow / flow_valid [B, L-1, ., S, S]
    (classical, real pair t-1 -> t), reference_flow / reference_flow_valid [B, L, ., S, S] (classical,
    reference -> real frame t), None when not asked for; names "speaker/utterance@start" for messages."""

    frames: Tensor
    landmarks: Tensor
    sketches: Tensor
    reference: Tensor
    reference_landmarks: Tensor
    mouth_box: Tensor
    flow: Tensor | None
    flow_valid: Tensor | None
    reference_flow: Tensor | None
    reference_flow_valid: Tensor | None
    names: list[str]


def _clip_flow(targets: Tensor, sources: Tensor, preset: str) -> tuple[Tensor, Tensor]:
    """``estimate_flow`` over clips: [B, T, 3, S, S] twice -> flow [B, T, 2, S, S], valid [B, T, 1, S, S]."""
    flow, valid = estimate_flow(fold(targets), fold(sources), preset)
    return tuple(rearrange(x, "(b t) ... -> b t ...", b=len(targets)) for x in (flow, valid))


def prepare_clip(
    batch: dict,
    image_size: int,
    sketch: Callable[[Tensor], Tensor],
    flow_preset: str | None = None,
    reference_flow_preset: str | None = None,
) -> Clip:
    """Check, resize and draw a batch (``sketch``: landmarks [..., 68, 2] -> [..., Cs, S, S]); with a DIS
    preset, also the classical flows between frames and from the reference."""
    names = [
        f"{s}/{u}@{int(t)}"
        for s, u, t in zip(batch["speaker"], batch["utterance"], batch["start"], strict=True)
    ]
    dims = check_shape(batch["frames"], "B L 3 S S", f"frames (batch {names})")
    check_shape(batch["landmarks"], f"B L {NUM_LANDMARKS} 2", f"landmarks (batch {names})", dims)
    for key in ("frames", "landmarks", "reference_frame", "reference_landmarks"):
        if not torch.isfinite(batch[key]).all():
            raise FloatingPointError(f"{key} holds NaN or inf values in the batch of {names}")
    frames, landmarks = resize_clip(batch["frames"], batch["landmarks"], image_size)
    reference, reference_landmarks = resize_clip(
        batch["reference_frame"], batch["reference_landmarks"], image_size
    )
    flows: dict[str, Tensor | None] = dict.fromkeys(
        ("flow", "flow_valid", "reference_flow", "reference_flow_valid")
    )
    if flow_preset is not None and frames.shape[1] > 1:
        flows["flow"], flows["flow_valid"] = _clip_flow(frames[:, 1:], frames[:, :-1], flow_preset)
    if reference_flow_preset is not None:
        sources = reference[:, None].expand_as(frames)
        flows["reference_flow"], flows["reference_flow_valid"] = _clip_flow(
            frames, sources, reference_flow_preset
        )
    return Clip(
        frames=frames,
        landmarks=landmarks,
        sketches=sketch(landmarks),
        reference=reference,
        reference_landmarks=reference_landmarks,
        mouth_box=mouth_box(landmarks, image_size),
        names=names,
        **flows,
    )
