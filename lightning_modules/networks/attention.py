"""Multi-head self-attention over the spatial positions of a feature map (the paper's spatial dependency).

Every position of a low-resolution map (e.g. 16 x 16 at 128 px) looks at every other, so the two corners of
the mouth, or an eye and its twin, can agree with each other; convolutions see only a neighbourhood. Written
the lucidrains way: one fused qkv projection, heads split and merged with einops, the kernel from
``F.scaled_dot_product_attention``. A learned gate on the residual starts at 0, so a new block is the
identity and training opens it as far as it helps (SAGAN's gamma). No positional encoding: the block is
equivariant to any permutation of positions, the features carry where they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from talking_face.shapes import check_shape

__all__ = ["SpatialSelfAttention"]


class SpatialSelfAttention(nn.Module):
    """``x + gate * attention(norm(x))`` over the H*W positions of x [B, C, H, W] -> [B, C, H, W].

    Args:
        channels: C of the feature map.
        heads: attention heads.
        head_channels: channels per head (default C // heads).
    """

    def __init__(self, channels: int, heads: int = 4, head_channels: int | None = None) -> None:
        super().__init__()
        head_channels = head_channels or channels // heads
        if heads < 1 or head_channels < 1:
            raise ValueError(
                f"need heads >= 1 and channels per head >= 1, got channels={channels}, heads={heads}"
            )
        self.heads = heads
        inner = heads * head_channels
        self.norm = nn.GroupNorm(1, channels)  # statistics over all positions: permutation-invariant
        self.qkv = nn.Conv2d(channels, 3 * inner, 1, bias=False)
        self.out = nn.Conv2d(inner, channels, 1)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        check_shape(x, f"B {self.norm.num_channels} H W", "attention input")
        height = x.shape[2]
        q, k, v = rearrange(
            self.qkv(self.norm(x)), "b (qkv heads d) h w -> qkv b heads (h w) d", qkv=3, heads=self.heads
        )
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = rearrange(attended, "b heads (h w) d -> b (heads d) h w", h=height)
        return x + self.gate * self.out(attended)
