"""Discriminators of Face2Vid: a multi-scale patch critic of single frames and a temporal critic of clips.

- **Image** (pix2pixHD's multi-scale PatchGAN): judges (landmark sketch, frame) pairs, so a frame must look
  real *and* match its landmarks; at scales S, S/2, ... so both texture and face layout are judged.
  Spatial self-attention (``use_attention``) at the lowest resolution of each scale lets it compare distant
  parts (the two eyes, the mouth against the jaw), as in the generator.
- **Temporal** (vid2vid's D_T): judges K+1 consecutive frames stacked on channels, optionally with the
  flows between them estimated on the real clip (the motion the frames should show), so flicker and
  frames that do not follow each other are penalised.

Both are the same ``MultiScaleDiscriminator`` with different inputs. Every conv is spectrally normalised
(a Lipschitz critic keeps the GAN stable without tuning). ``forward`` returns, per scale, the features of
every layer with the patch logits last, so the module can compute feature matching.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from talking_face.lightning_modules.networks.attention import SpatialSelfAttention
from talking_face.shapes import check_shape

__all__ = ["MultiScaleDiscriminator", "PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """A PatchGAN: x [B, C, S, S] -> features per layer, the last [B, 1, S', S'] patch logits.

    Args:
        in_channels: C.
        channels: width of the first layer (doubling per stride-2 layer, at most 8x).
        layers: stride-2 layers (the receptive field grows with them; S' = S / 2^layers).
        use_attention: self-attention after the last stride-2 layer.
        attention_heads: its heads.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 64,
        layers: int = 3,
        use_attention: bool = True,
        attention_heads: int = 4,
    ) -> None:
        super().__init__()
        widths = [channels * min(2**i, 8) for i in range(layers)]
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            blocks.append(nn.Sequential(nn.Conv2d(previous, width, 4, 2, 1), nn.LeakyReLU(0.2)))
            previous = width
        if use_attention:
            blocks.append(SpatialSelfAttention(previous, attention_heads))
        blocks.append(nn.Sequential(nn.Conv2d(previous, previous, 3, 1, 1), nn.LeakyReLU(0.2)))
        blocks.append(nn.Conv2d(previous, 1, 3, 1, 1))
        self.blocks = nn.ModuleList(blocks)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                spectral_norm(module)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchDiscriminators on x [B, C, S, S], x downsampled by 2, by 4, ...

    ``forward`` -> list over scales of lists of features (logits last).
    """

    def __init__(
        self,
        in_channels: int,
        num_scales: int = 2,
        channels: int = 64,
        layers: int = 3,
        use_attention: bool = True,
        attention_heads: int = 4,
    ) -> None:
        super().__init__()
        if num_scales < 1 or layers < 1:
            raise ValueError(f"need num_scales >= 1 and layers >= 1, got {num_scales}, {layers}")
        self.in_channels = in_channels
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, channels, layers, use_attention, attention_heads)
            for _ in range(num_scales)
        )

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        check_shape(x, f"B {self.in_channels} H W", "critic input")
        outputs = []
        for index, critic in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            outputs.append(critic(x))
        return outputs
