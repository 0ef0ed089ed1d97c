"""Stage 2's losses: the GAN's (hinge or LSGAN over critic scales, feature matching), a perceptual loss on
VGG19 features from a LOCAL state dict (never downloaded), and the flow loss against a classical flow."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "VGGFeatures", "discriminator_loss", "feature_matching_loss", "flow_loss", "generator_adversarial_loss",
]  # fmt: skip


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
