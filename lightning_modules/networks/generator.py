"""The Face2Vid generator: a frame from its landmark sketch, the previous frames and a reference frame.

What the generator makes at frame t (vid2vid's composition, plus few-shot vid2vid's reference warp)::

    appearance = Mr * warp(reference, Fr) + (1 - Mr) * H      # identity from the reference photo
    frame      = M  * warp(previous,  F ) + (1 - M ) * appearance   # temporal dependency

- ``H`` (``hallucinated``): an image drawn from scratch (the mouth's inside, teeth, what no frame shows).
- ``F`` (``flow``) and ``M`` (``mask``): the **temporal** flow from the previous frame (t-1) to frame t and
  the occlusion mask, the weight of the warped previous frame; where the previous frame does not show a
  pixel (the mouth opening) the mask drops and the appearance takes over. Off with ``use_flow=False``:
  then the generator does not see previous frames at all and each frame is made independently (the
  paper's baseline).
- ``Fr`` and ``Mr``: the **reference** flow from the reference frame to frame t and its mask. Warping moves
  pixels whatever face they belong to, so a face never seen in training keeps its identity; without it
  (``use_reference_warp=False``) the appearance is ``H`` alone and identity must come through the encoder.

**Landmark priors.** The caller may give, for each warp, the flow that the landmarks imply
(``warp.landmark_flow``: lips and jaw moved where their points moved, nothing elsewhere); the generator
then predicts only a correction, ``F = prior + dF`` and ``Fr = prior_r + dFr``, and also sees the frames
already warped by the priors. Geometry that the landmarks state need not be learnt, and it holds for any
face; without priors (None) the corrections are the whole flows.

Flows follow ``lightning_modules.networks.warp`` (backward warp, pixels, (dx, dy) channels-first). Masks are
[B, 1, S, S] in [0, 1]. The network is a small U-Net: stride-2 encoder to S/8, residual blocks and spatial
self-attention at S/8 (``use_attention``), decoder with additive skips back to S/2, where the image comes
out through a pixel shuffle (full detail) and flows and masks by bilinear upsampling (smooth fields); its size
and cost are in ``benchmarks/README.md`` (``face2vid_speed.py``). At init the flows are the priors (or zero)
and both masks 0.88: the generator starts by copying.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from talking_face.lightning_modules.networks.attention import SpatialSelfAttention
from talking_face.lightning_modules.networks.rasterise import SKETCH_CHANNELS
from talking_face.lightning_modules.networks.warp import warp
from talking_face.shapes import check_shape

__all__ = ["Face2VidGenerator", "GeneratorOutput"]

_DOWNSAMPLING = 8  # the encoder halves the size three times
# At init the generator copies the warped frames (the previous one, else the reference): a video of the
# person that stands still is a good first guess, and training only has to learn what changes.
_MASK_LOGIT_AT_INIT = 2.0


@dataclass(frozen=True)
class GeneratorOutput:
    """What the generator made, all [B, C, S, S] (or [B, T, C, S, S] after ``stack``); None when switched off.

    frame: the output frame (3 channels, [0, 1]); hallucinated: H; flow / mask / warped_previous: F, M and
    warp(previous, F) (``use_flow``); reference_flow / reference_mask / warped_reference: Fr, Mr and
    warp(reference, Fr) (``use_reference_warp``).
    """

    frame: Tensor
    hallucinated: Tensor
    flow: Tensor | None = None
    mask: Tensor | None = None
    warped_previous: Tensor | None = None
    reference_flow: Tensor | None = None
    reference_mask: Tensor | None = None
    warped_reference: Tensor | None = None

    def map(self, fn: Callable[[Tensor], Tensor]) -> GeneratorOutput:
        """The same output with ``fn`` applied to every tensor (e.g. detach, unfold time, index)."""
        return GeneratorOutput(
            **{f.name: None if (v := getattr(self, f.name)) is None else fn(v) for f in fields(self)}
        )

    @staticmethod
    def stack(outputs: list[GeneratorOutput], dim: int = 1) -> GeneratorOutput:
        """Outputs of consecutive frames [B, C, S, S] each -> one output [B, T, C, S, S] (``dim=1``)."""
        first = outputs[0]
        return GeneratorOutput(
            **{
                f.name: None
                if getattr(first, f.name) is None
                else torch.stack([getattr(o, f.name) for o in outputs], dim)
                for f in fields(first)
            }
        )


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def _conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv -> GroupNorm (per sample: the same in training and frame-by-frame inference) -> LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1),
        nn.GroupNorm(_groups(out_channels), out_channels),
        nn.LeakyReLU(0.2),
    )


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_block(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.GroupNorm(_groups(channels), channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.body(x), 0.2)


def _plus(prior: Tensor | None, correction: Tensor) -> Tensor:
    return correction if prior is None else prior.to(correction.dtype) + correction


class Face2VidGenerator(nn.Module):
    """Conditional frame generator (see the module docstring for the composition).

    Args:
        sketch_channels: channels of a landmark sketch (``rasterise.SKETCH_CHANNELS``).
        num_previous: K, the previous frames (and their sketches) the generator sees; the flow warps the last.
        channels: width at S/2; S/4 has twice, S/8 four times as many.
        bottleneck_blocks: residual blocks at S/8.
        attention_heads: heads of the self-attention block at S/8.
        use_flow: temporal flow + mask from the previous frame (False: frames made independently).
        use_attention: spatial self-attention at S/8.
        use_reference_warp: reference flow + mask (the appearance path that keeps unseen identities).
    """

    def __init__(
        self,
        sketch_channels: int = SKETCH_CHANNELS,
        num_previous: int = 2,
        channels: int = 32,
        bottleneck_blocks: int = 2,
        attention_heads: int = 4,
        use_flow: bool = True,
        use_attention: bool = True,
        use_reference_warp: bool = True,
    ) -> None:
        super().__init__()
        if num_previous < 1 or channels < 4 or bottleneck_blocks < 1:
            raise ValueError(
                f"need num_previous >= 1, channels >= 4, bottleneck_blocks >= 1, got "
                f"{num_previous}, {channels}, {bottleneck_blocks}"
            )
        self.sketch_channels = sketch_channels
        self.num_previous = num_previous
        self.use_flow = use_flow
        self.use_attention = use_attention
        self.use_reference_warp = use_reference_warp
        # the sketch, the reference (as given, and warped by its prior) and its sketch; with the temporal flow
        # also the K previous frames, their sketches and the last one warped by its prior
        inputs = 2 * sketch_channels + 6 + ((num_previous * (3 + sketch_channels) + 3) if use_flow else 0)
        c = channels
        self.stem = _conv_block(inputs, c, stride=2)  # S/2
        self.down1 = _conv_block(c, 2 * c, stride=2)  # S/4
        self.down2 = _conv_block(2 * c, 4 * c, stride=2)  # S/8
        middle: list[nn.Module] = [_ResidualBlock(4 * c) for _ in range(bottleneck_blocks)]
        if use_attention:
            middle.insert(1, SpatialSelfAttention(4 * c, attention_heads))
        self.bottleneck = nn.Sequential(*middle)
        self.up1 = _conv_block(4 * c, 2 * c)  # after x2 upsampling to S/4, plus the down1 skip
        self.up2 = _conv_block(2 * c, c)  # to S/2, plus the stem skip
        self.image_head = nn.Conv2d(c, 3 * 4, 3, 1, 1)  # pixel shuffle x2 -> 3 channels at S
        motion_channels = 3 * use_flow + 3 * use_reference_warp  # (dx, dy, mask logit) per warp
        self.motion_head = nn.Conv2d(c, motion_channels, 3, 1, 1) if motion_channels else None
        if self.motion_head is not None:  # start by copying: identity warps, masks at sigmoid(2) = 0.88
            nn.init.zeros_(self.motion_head.weight)
            with torch.no_grad():
                self.motion_head.bias.copy_(
                    torch.tensor([0.0, 0.0, _MASK_LOGIT_AT_INIT] * (motion_channels // 3))
                )

    def forward(
        self,
        sketch: Tensor,
        reference: Tensor,
        reference_sketch: Tensor,
        previous: Tensor | None = None,
        previous_sketches: Tensor | None = None,
        reference_prior: Tensor | None = None,
        previous_prior: Tensor | None = None,
        max_temporal_mask: float = 1.0,
    ) -> GeneratorOutput:
        """Make frame t.

        Args:
            sketch: [B, Cs, S, S] landmark sketch of frame t (S a multiple of 8).
            reference: [B, 3, S, S] a frame of the person, [0, 1].
            reference_sketch: [B, Cs, S, S] its sketch.
            previous: [B, K, 3, S, S] frames t-K .. t-1 (oldest first; the reference where the video has
                none yet); needed with ``use_flow``, ignored without.
            previous_sketches: [B, K, Cs, S, S] their sketches.
            reference_prior: [B, 2, S, S] landmark flow from the reference to frame t, or None (zero).
            previous_prior: [B, 2, S, S] landmark flow from frame t-1 to frame t, or None (zero).
            max_temporal_mask: cap on the temporal mask M, for inference (``TalkingFacePipeline`` says
                why); 1 = as trained.
        Returns:
            ``GeneratorOutput`` of [B, ., S, S] tensors.
        """
        self._check(
            sketch, reference, reference_sketch, previous, previous_sketches, reference_prior, previous_prior
        )
        size = sketch.shape[-1]
        aligned_reference = reference if reference_prior is None else warp(reference, reference_prior)
        inputs = [sketch, reference, reference_sketch, aligned_reference]
        if self.use_flow:
            aligned_previous = (
                previous[:, -1] if previous_prior is None else warp(previous[:, -1], previous_prior)
            )
            inputs += [
                rearrange(previous, "b k c h w -> b (k c) h w"),
                rearrange(previous_sketches, "b k c h w -> b (k c) h w"),
                aligned_previous,
            ]
        skip0 = self.stem(torch.cat(inputs, dim=1))
        skip1 = self.down1(skip0)
        x = self.bottleneck(self.down2(skip1))
        x = self.up1(F.interpolate(x, scale_factor=2.0, mode="nearest")) + skip1
        x = self.up2(F.interpolate(x, scale_factor=2.0, mode="nearest")) + skip0
        hallucinated = torch.sigmoid(F.pixel_shuffle(self.image_head(x), 2))
        if self.motion_head is None:
            return GeneratorOutput(frame=hallucinated, hallucinated=hallucinated)
        motion = F.interpolate(self.motion_head(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        flows = motion * (size / 32)  # one unit of the head = S/32 px (4 px at 128)
        out: dict[str, Tensor] = {"hallucinated": hallucinated}
        appearance = hallucinated
        if self.use_reference_warp:
            out["reference_flow"] = reference_flow = _plus(reference_prior, flows[:, -3:-1])
            out["reference_mask"] = reference_mask = torch.sigmoid(motion[:, -1:])
            out["warped_reference"] = warped_reference = warp(reference, reference_flow)
            appearance = reference_mask * warped_reference + (1 - reference_mask) * hallucinated
        frame = appearance
        if self.use_flow:
            out["flow"] = flow = _plus(previous_prior, flows[:, 0:2])
            out["mask"] = mask = torch.sigmoid(motion[:, 2:3]).clamp(max=max_temporal_mask)
            out["warped_previous"] = warped_previous = warp(previous[:, -1], flow)
            frame = mask * warped_previous + (1 - mask) * appearance
        return GeneratorOutput(frame=frame, **out)

    def _check(
        self,
        sketch: Tensor,
        reference: Tensor,
        reference_sketch: Tensor,
        previous: Tensor | None,
        previous_sketches: Tensor | None,
        reference_prior: Tensor | None,
        previous_prior: Tensor | None,
    ) -> None:
        cs, k = self.sketch_channels, self.num_previous
        check_shape(sketch, f"B {cs} S S", "sketch")
        batch, _, size, _ = sketch.shape
        if size % _DOWNSAMPLING or size < 2 * _DOWNSAMPLING:
            raise ValueError(
                f"image size {size} is not supported: it must be a multiple of {_DOWNSAMPLING} "
                f"and at least {2 * _DOWNSAMPLING} (e.g. 128 or 256)"
            )
        expected = {"reference": (batch, 3, size, size), "reference_sketch": (batch, cs, size, size)}
        given = {"reference": reference, "reference_sketch": reference_sketch, "sketch": sketch}
        for name, prior in (("reference_prior", reference_prior), ("previous_prior", previous_prior)):
            if prior is not None:
                expected[name] = (batch, 2, size, size)
                given[name] = prior
        if self.use_flow:
            if previous is None or previous_sketches is None:
                raise ValueError("use_flow needs previous frames and their sketches, got None")
            if previous.ndim == 5 and previous.shape[1] != k:
                raise ValueError(
                    f"the generator needs K={k} previous frames, got {previous.shape[1]}; before "
                    f"the K-th frame of a video, the reference frame takes the missing places"
                )
            expected |= {
                "previous": (batch, k, 3, size, size),
                "previous_sketches": (batch, k, cs, size, size),
            }
            given |= {"previous": previous, "previous_sketches": previous_sketches}
        for name, shape in expected.items():
            if tuple(given[name].shape) != shape:
                raise ValueError(
                    f"{name} must be {list(shape)} like the sketch of frame t, got {list(given[name].shape)}"
                )
        for name, tensor in given.items():
            if not torch.isfinite(tensor).all():
                raise ValueError(f"{name} holds NaN or inf values")
