"""Stage 2's validation and test metrics for one split, updated from a clip and the frames made for it.

Image quality (PSNR, SSIM; over the face and the mouth box too), each beside the same score for simply
copying the reference frame; temporal quality (warping error and flicker against the real clip's classical
flow); and, when asked (it is slow), the mouth landmark distance of the project's detector on the frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from talking_face.lightning_modules.face2vid_clips import Clip
from talking_face.lightning_modules.face2vid_metrics import (
    PSNRFromMSE,
    face_region,
    frame_difference_energy,
    mouth_lmd_on_frames,
    temporal_warping_error,
)
from talking_face.lightning_modules.rollout import fold

__all__ = ["Face2VidScores"]


class Face2VidScores(nn.ModuleDict):
    """The metrics of one split, by name: ``score`` a batch, then log ``self.items()``."""

    def __init__(self) -> None:
        super().__init__(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
                "psnr_reference": PeakSignalNoiseRatio(data_range=1.0),
                "ssim_reference": StructuralSimilarityIndexMeasure(data_range=1.0),
                "psnr_face": PSNRFromMSE(),
                "psnr_face_reference": PSNRFromMSE(),
                "psnr_mouth": PSNRFromMSE(),
                "psnr_mouth_reference": PSNRFromMSE(),
                "l1": MeanMetric(),
                "warp_error": MeanMetric(),
                "warp_error_real": MeanMetric(),
                "flicker": MeanMetric(),
                "lmd": MeanMetric(nan_strategy="ignore"),
                "lmd_real": MeanMetric(nan_strategy="ignore"),
                "face_found": MeanMetric(),
            }
        )

    def score(self, clip: Clip, generated: Tensor, detector: bool) -> None:
        """Score ``generated`` [B, L, 3, S, S] against ``clip``; ``detector``: also the landmark distance."""
        generated, real = generated.float(), clip.frames.float()
        copied = clip.reference[:, None].expand_as(real).float()
        for name, frames in (("", generated), ("_reference", copied)):
            self[f"psnr{name}"].update(fold(frames), fold(real))
            self[f"ssim{name}"].update(fold(frames), fold(real))
        self["l1"].update((generated - real).abs().mean(dim=(1, 2, 3, 4)))
        size = real.shape[-1]
        for region, inside in (("face", face_region(clip.landmarks, size)), ("mouth", clip.mouth_box)):
            inside = inside.expand_as(real)
            count = inside.sum(dim=(2, 3, 4))
            for name, frames in ((f"psnr_{region}", generated), (f"psnr_{region}_reference", copied)):
                error = ((frames - real).square() * inside).sum(dim=(2, 3, 4))
                self[name].update(error / count.clamp_min(1), count)
        if clip.flow is not None:
            for name, frames in (("warp_error", generated), ("warp_error_real", real)):
                self[name].update(*temporal_warping_error(frames, clip.flow, clip.flow_valid))
            self["flicker"].update(frame_difference_energy(generated) - frame_difference_energy(real))
        if detector:
            lmd = mouth_lmd_on_frames(fold(generated), fold(clip.landmarks))
            self["lmd"].update(lmd)
            self["face_found"].update(torch.isfinite(lmd).float())
            self["lmd_real"].update(mouth_lmd_on_frames(fold(real), fold(clip.landmarks)))
