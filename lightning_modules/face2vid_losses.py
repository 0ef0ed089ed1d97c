"""Stage 2's losses: the GAN's (hinge or LSGAN over critic scales, feature matching), a perceptual loss on
VGG19 features from a LOCAL state dict (never downloaded), and the flow loss against a classical flow.

**Losses**, by name with weights from the config (``DEFAULT_LOSS_WEIGHTS``; 0 switches one off):
``adversarial`` (image critic on (sketch, frame) pairs) and ``temporal_adversarial`` (clips of K+1
frames), hinge or LSGAN; ``feature_matching`` (L1 between critic features of real and generated);
``l1`` (``mouth_weight`` times more inside the mouth box of landmarks 48-67); ``hallucinated`` (the same
L1 on H alone, as vid2vid's loss on its raw image: H must be worth blending in before the masks can learn to
use it, otherwise the generator keeps copying warped frames whatever the landmarks say); ``perceptual`` (VGG19
features, only when ``perceptual_weights`` names a local file: nothing is ever downloaded); ``flow`` (L1 in
pixels against OpenCV DIS flow of the real frames, where that flow is forward-backward consistent);
``reference_flow`` (the same for the reference flow, against DIS flow from the reference to the real frame);
``warp`` (the real previous frame warped by the predicted flow against the real frame); ``reference_warp``
(the reference warped by the reference flow against the real frame); ``mask`` (the occlusion mask's mean
where the real flow fails its consistency check: do not trust the warp where the previous frame does not show
the pixel; elsewhere the reconstruction losses decide, so the mask may also drop where an own previous frame
went wrong).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "VGGFeatures",
    "discriminator_loss",
    "feature_matching_loss",
    "flow_loss",
    "generator_adversarial_loss",
    "loss_weights",
]

DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "adversarial": 1.0,
    "temporal_adversarial": 1.0,
    "feature_matching": 10.0,
    "l1": 10.0,
    "hallucinated": 5.0,
    "perceptual": 10.0,
    "flow": 1.0,
    "reference_flow": 1.0,
    "warp": 10.0,
    "reference_warp": 2.0,
    "mask": 1.0,
}
"""The losses known by name and their default weights (the config's ``loss_weights`` overrides some)."""


def loss_weights(overrides: dict[str, float] | None) -> dict[str, float]:
    """``DEFAULT_LOSS_WEIGHTS`` with ``overrides``, checked: known names, finite and >= 0."""
    unknown = set(overrides or {}) - set(DEFAULT_LOSS_WEIGHTS)
    if unknown:
        known = sorted(DEFAULT_LOSS_WEIGHTS)
        raise ValueError(f"unknown loss names {sorted(unknown)} in loss_weights; known: {known}")
    weights = DEFAULT_LOSS_WEIGHTS | dict(overrides or {})
    bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"loss weights must be finite and >= 0, got {bad}")
    return weights


def discriminator_loss(real: list[list[Tensor]], fake: list[list[Tensor]], kind: str) -> Tensor:
    """Critic loss over scales (logits = each scale's last feature): hinge or LSGAN."""
    losses = []
    for real_features, fake_features in zip(real, fake, strict=True):
        r, f = real_features[-1].float(), fake_features[-1].float()
        if kind == "hinge":
            losses.append(F.relu(1 - r).mean() + F.relu(1 + f).mean())
        else:
            losses.append((r - 1).square().mean() + f.square().mean())
    return torch.stack(losses).mean()


def generator_adversarial_loss(fake: list[list[Tensor]], kind: str) -> Tensor:
    """Generator's adversarial loss over scales: hinge (-D(fake)) or LSGAN ((D(fake) - 1)^2)."""
    logits = [features[-1].float() for features in fake]
    if kind == "hinge":
        return torch.stack([-f.mean() for f in logits]).mean()
    return torch.stack([(f - 1).square().mean() for f in logits]).mean()


def feature_matching_loss(fake: list[list[Tensor]], real: list[list[Tensor]]) -> Tensor:
    """L1 between the critic's intermediate features on generated and on real inputs (pix2pixHD)."""
    return torch.stack(
        [
            (f.float() - r.detach().float()).abs().mean()
            for fake_features, real_features in zip(fake, real, strict=True)
            for f, r in zip(fake_features[:-1], real_features[:-1], strict=True)
        ]
    ).mean()


class VGGFeatures(nn.Module):
    """VGG19's relu1_1 .. relu5_1 features from a LOCAL torchvision-format state dict (never downloaded).

    The weights are non-persistent buffers: they follow the module's device but stay out of checkpoints.
    """

    _LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
    _TAPS = (1, 6, 11, 20, 29)  # indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in vgg19.features
    _WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # pix2pixHD's

    def __init__(self, path: Path) -> None:
        super().__init__()
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {key.removeprefix("features."): value for key, value in state.items()}
        index = 0
        for item in self._LAYOUT:
            if item != "M":
                for kind in ("weight", "bias"):
                    if f"{index}.{kind}" not in state:
                        raise ValueError(f"{path}: not a torchvision VGG19 state dict")
                    self.register_buffer(f"{kind}{index}", state[f"{index}.{kind}"].float(), persistent=False)
            index += 1 if item == "M" else 2
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        """Weighted L1 between the features of fake and real [N, 3, H, W] in [0, 1]."""
        x = (torch.cat([fake, real]) - self.mean) / self.std
        loss, index = x.new_zeros(()), 0
        for item in self._LAYOUT:
            if item == "M":
                x, index = F.max_pool2d(x, 2), index + 1
                continue
            x = F.relu(F.conv2d(x, getattr(self, f"weight{index}"), getattr(self, f"bias{index}"), padding=1))
            index += 2
            if index - 1 in self._TAPS:
                f, r = x.chunk(2)
                loss = loss + self._WEIGHTS[self._TAPS.index(index - 1)] * (f - r.detach()).abs().mean()
        return loss


def flow_loss(flow: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean end-point L1 (|dx| + |dy|, pixels) over the pixels where the classical target flow is valid."""
    error = (flow - target).abs().sum(-3, keepdim=True)
    return (error * valid).sum() / valid.sum().clamp_min(1.0)
