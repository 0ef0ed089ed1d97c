"""Stage 2 as a LightningModule: the Face2Vid GAN's training (manual optimisation), metrics and inference API.

The networks live in ``lightning_modules.networks`` (generator, discriminators, attention, rasteriser, warp);
this file owns the losses, the schedule of previous frames, the metrics and the optimisers. Batches follow
the stage-2 contract of ``datamodules.datasets.FaceClipDataset``: ``frames`` [B, L, 3, S, S] in [0, 1],
``landmarks`` [B, L, 68, 2] crop pixels, ``reference_frame`` [B, 3, S, S], ``reference_landmarks``
[B, 68, 2], ``speaker`` / ``utterance`` lists, ``start`` [B]. Clips at another size than ``image_size`` are
resized on entry (train at 64 px from a 128-px cache, say).

**Previous frames.** Frame t sees frames t-K .. t-1; before the first frame of a video those are the
reference frame (so a video starts from the photo, in training and at inference alike). Training starts
with the *real* previous frames (teacher forcing: every frame of a clip is made in one batched call) and
moves to the generator's *own* previous frames, made one after the other and detached, as at inference:
at step s (batches), each clip frame is replaced by its generated version with probability
``own_previous_max * clamp((s - own_previous_start) / (own_previous_end - own_previous_start), 0, 1)``.
The draws come from a generator seeded by (``seed``, step), so a resumed run makes the same draws.
Validation, test and ``generate_sequence`` are always autoregressive.

**Landmark priors** (``use_landmark_prior``). Both warps start from the flow the landmarks imply
(``networks.warp.landmark_flow``: from the reference's landmarks, and from the previous frame's, to frame t's)
and the generator predicts corrections. Measured on the built-in corpus at 64 px, warping the reference by
this prior alone lifts the face-region PSNR from 28.5 dB (copying) to 30.6 dB, for any face; the generator
still has to learn the mouth's inside and what the landmarks do not say.

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

**Safety.** A NaN in a batch, or a non-finite loss or gradient, raises ``FloatingPointError`` naming the
batch's utterances before the optimiser step that would use it. Since the generator loss contains the
critics' outputs on real and generated frames, a finite generator loss also vouches for the critic's
loss: a broken batch stops before any step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_LANDMARKS
from talking_face.lightning_modules.eval_mode import eval_mode
from talking_face.lightning_modules.networks.discriminator import MultiScaleDiscriminator
from talking_face.lightning_modules.networks.generator import Face2VidGenerator, GeneratorOutput
from talking_face.lightning_modules.networks.rasterise import SKETCH_CHANNELS, rasterise_landmarks
from talking_face.lightning_modules.networks.warp import landmark_flow, warp

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "TEST_SPLITS",
    "Face2VidModule",
    "PSNRFromMSE",
    "discriminator_loss",
    "estimate_flow",
    "face_region",
    "feature_matching_loss",
    "frame_difference_energy",
    "generator_adversarial_loss",
    "mouth_box",
    "mouth_lmd_on_frames",
    "resize_clip",
    "temporal_warping_error",
]

_WHERE = "lightning_modules/face2vid_module.py"

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

TEST_SPLITS = ("test_utterances", "test_speakers")
"""Log prefixes of the two test dataloaders, in the DataModule's order."""

_TRAINING_FLOW_PRESET = "fast"  # ~1 ms a pair at 128 px: cheap enough to run on every training batch
_METRIC_FLOW_PRESET = "medium"  # ~4 ms a pair, more accurate: what the temporal metrics are measured with


# --- classical flow, temporal metrics, LMD: plain functions that generate / evaluate reuse ---------------


@functools.cache
def _dis(preset: str):
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise ValueError(f"{_WHERE}: unknown DIS preset {preset!r}; known: {sorted(presets)}")
    return cv2.DISOpticalFlow_create(presets[preset])


def _grey_uint8(images: Tensor) -> np.ndarray:
    """[N, 3, H, W] in [0, 1] -> uint8 [N, H, W] luma."""
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    grey = (images.detach().float() * weights.float()).sum(1).clamp(0, 1) * 255
    return grey.round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def estimate_flow(target: Tensor, source: Tensor, preset: str = "medium") -> tuple[Tensor, Tensor]:
    """Classical optical flow (OpenCV DIS, no learned weights) and where it can be trusted.

    Args:
        target, source: [N, 3, H, W] frames in [0, 1] (e.g. frame t and frame t-1).
        preset: DIS preset, ``ultrafast``, ``fast`` or ``medium``.
    Returns:
        flow [N, 2, H, W] in pixels such that ``warp(source, flow) ~ target`` (the backward-warp convention
        of ``networks.warp``), and valid [N, 1, H, W] float 0/1: 1 where the flow passes the forward-backward
        check of Sundaram et al. (2010), |f + b(x + f)|^2 < 0.01 (|f|^2 + |b(x + f)|^2) + 0.5, 0 where the
        pixel is occluded or the flow unreliable.
    """
    if target.shape != source.shape or target.ndim != 4 or target.shape[1] != 3:
        raise ValueError(
            f"{_WHERE}: estimate_flow wants two [N, 3, H, W] batches, got {tuple(target.shape)} and "
            f"{tuple(source.shape)}"
        )
    dis = _dis(preset)
    grey_target, grey_source = _grey_uint8(target), _grey_uint8(source)
    forward = np.stack([dis.calc(t, s, None) for t, s in zip(grey_target, grey_source, strict=True)])
    backward = np.stack([dis.calc(s, t, None) for t, s in zip(grey_target, grey_source, strict=True)])
    flow = torch.from_numpy(forward).permute(0, 3, 1, 2).to(target.device)
    back = warp(torch.from_numpy(backward).permute(0, 3, 1, 2).to(target.device), flow)
    mismatch = (flow + back).square().sum(1, keepdim=True)
    bound = 0.01 * (flow.square().sum(1, keepdim=True) + back.square().sum(1, keepdim=True)) + 0.5
    return flow, (mismatch < bound).float()


@torch.no_grad()
def temporal_warping_error(frames: Tensor, flow: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Temporal warping error (Lai et al. 2018) of a video with the motion of another (the real one).

    Args:
        frames: [B, T, 3, S, S] generated frames in [0, 1].
        flow: [B, T-1, 2, S, S] flow of the REAL frames, pair (t-1 -> t) as ``estimate_flow(real_t,
            real_t-1)``.
        valid: [B, T-1, 1, S, S] its non-occluded pixels.
    Returns:
        per pair [B, T-1]: the mean absolute error (over channels and valid pixels) between frame t and frame
        t-1 warped to t, and the count of valid pixels (weights for a mean over pairs). A video that moves as
        the real one did scores like the real video itself; flicker and drift score higher.
    """
    previous = rearrange(frames[:, :-1], "b t c h w -> (b t) c h w")
    warped = warp(previous.float(), rearrange(flow, "b t c h w -> (b t) c h w")).view_as(frames[:, 1:])
    error = (warped - frames[:, 1:].float()).abs().mean(2, keepdim=True) * valid
    count = valid.sum(dim=(2, 3, 4))
    return error.sum(dim=(2, 3, 4)) / count.clamp_min(1.0), count


@torch.no_grad()
def frame_difference_energy(frames: Tensor) -> Tensor:
    """Mean squared difference of consecutive frames, per video: frames [B, T, 3, S, S] -> [B].

    Flicker of a generated video = its energy minus the real video's (0: it changes as much as the real one;
    > 0: it flickers or shimmers; < 0: it is stiller than the real one).
    """
    return (frames[:, 1:].float() - frames[:, :-1].float()).square().mean(dim=(1, 2, 3, 4))


@functools.cache
def _default_detector():
    from talking_face.datamodules.faces.detector import make_detector

    return make_detector("dlib")


@torch.no_grad()
def mouth_lmd_on_frames(frames: Tensor, landmarks: Tensor, detector=None, min_size: int = 128) -> Tensor:
    """LMD of generated frames: does the face do what the landmarks say?

    The project's landmark detector (dlib by default, ``datamodules.faces.detector``) runs on every frame;
    its mouth (points 48-67) is compared with the driving landmarks' mouth.

    Args:
        frames: [N, 3, S, S] in [0, 1] (generated crops).
        landmarks: [N, 68, 2] the driving landmarks, crop pixels.
        detector: a ``LandmarkDetector`` (default: dlib, loaded once).
        min_size: smaller frames are upscaled to this before detection (dlib's HOG finds faces >= ~40 px).
    Returns:
        [N] mean distance over the 20 mouth points in crop pixels, NaN where no face was found.
    """
    import cv2

    if frames.ndim != 4 or frames.shape[1] != 3 or landmarks.shape != (len(frames), NUM_LANDMARKS, 2):
        raise ValueError(
            f"{_WHERE}: mouth_lmd_on_frames wants frames [N, 3, S, S] and landmarks [N, 68, 2], got "
            f"{tuple(frames.shape)} and {tuple(landmarks.shape)}"
        )
    detector = detector or _default_detector()
    size = frames.shape[-1]
    scale = max(1.0, min_size / size)
    images = (
        (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    )
    target = landmarks.detach().float().cpu().numpy()[:, MOUTH.start : MOUTH.stop]
    distances = np.full(len(images), np.nan, np.float32)
    for index, image in enumerate(images):
        if scale > 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = detector.detect(np.ascontiguousarray(image))
        if faces:
            mouth = (faces[0].landmarks[MOUTH.start : MOUTH.stop] + 0.5) / scale - 0.5
            distances[index] = np.linalg.norm(mouth - target[index], axis=-1).mean()
    return torch.from_numpy(distances)


def resize_clip(frames: Tensor, landmarks: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Frames [..., 3, S, S] and landmarks [..., 68, 2] (crop pixels) at S -> the same at ``size``.

    Area-averaged when shrinking, bilinear when growing; landmarks keep pixel centres at integer
    coordinates (x' = (x + 0.5) * size / S - 0.5).
    """
    current = frames.shape[-1]
    if current == size:
        return frames, landmarks
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    mode = {"mode": "area"} if size < current else {"mode": "bilinear", "align_corners": False}
    resized = F.interpolate(flat, size=(size, size), **mode).reshape(*lead, 3, size, size)
    return resized, (landmarks + 0.5) * (size / current) - 0.5


def mouth_box(landmarks: Tensor, size: int) -> Tensor:
    """Landmarks [..., 68, 2] (crop pixels) -> bool [..., 1, S, S], True inside the mouth's box.

    The box bounds landmarks 48-67 with a margin of 25% of its size (at least 2 px): the lips and the skin
    that moves with them, where the L1 loss weighs more and the mouth PSNR is measured.
    """
    mouth = landmarks[..., MOUTH.start : MOUTH.stop, :]
    low, high = mouth.amin(-2), mouth.amax(-2)  # [..., 2]
    margin = ((high - low) * 0.25).clamp_min(2.0)
    low, high = low - margin, high + margin
    axis = torch.arange(size, device=landmarks.device, dtype=landmarks.dtype)
    inside_x = (axis >= low[..., :1]) & (axis <= high[..., :1])  # [..., S]
    inside_y = (axis >= low[..., 1:]) & (axis <= high[..., 1:])
    return (inside_y[..., :, None] & inside_x[..., None, :])[..., None, :, :]


def face_region(landmarks: Tensor, size: int) -> Tensor:
    """Landmarks [..., 68, 2] (crop pixels) -> bool [..., 1, S, S], True inside the face.

    The face is the polygon of the jaw line (0-16) closed over the brows (26-17). What Face2Vid is asked to
    get right: ``generate`` pastes this region back into the full frame, and the background of a crop moves
    with the head in a way no landmark tells (the crop follows the face).
    """
    outline = landmarks[..., [*range(17), *range(26, 16, -1)], :]
    axis = torch.arange(size, device=landmarks.device, dtype=landmarks.dtype)
    y, x = axis.view(size, 1), axis.view(1, size)
    inside = torch.zeros(*landmarks.shape[:-2], size, size, dtype=torch.bool, device=landmarks.device)
    for start, end in zip(outline.unbind(-2), outline.roll(-1, dims=-2).unbind(-2), strict=True):
        x0, y0 = start[..., 0, None, None], start[..., 1, None, None]  # [..., 1, 1] against the grid
        x1, y1 = end[..., 0, None, None], end[..., 1, None, None]
        straddles = (y0 > y) != (y1 > y)
        crossing = x0 + (x1 - x0) * (y - y0) / torch.where(y1 == y0, torch.ones_like(y1), y1 - y0)
        inside ^= straddles & (x < crossing)  # even-odd rule: a ray to the right crosses the outline
    return inside[..., None, :, :]


class PSNRFromMSE(MeanMetric):
    """PSNR (data range 1) of the weighted mean of squared errors given to ``update`` (e.g. per frame
    region MSE weighted by its pixel count): PSNR of the pooled MSE, as torchmetrics' PSNR pools."""

    higher_is_better = True

    def compute(self) -> Tensor:
        return -10.0 * torch.log10(super().compute())


# --- GAN losses ----------------------------------------------------------------------------------------


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


class _VGGFeatures(nn.Module):
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
                        raise ValueError(f"{_WHERE}: {path} is not a torchvision VGG19 state dict")
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


# --- the module ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clip:
    """A prepared batch: frames [B, L, 3, S, S], landmarks [B, L, 68, 2], sketches [B, L, Cs, S, S],
    reference [B, 3, S, S], reference_sketch [B, Cs, S, S], mouth_box [B, L, 1, S, S] bool,
    flow / flow_valid [B, L-1, ., S, S] (classical, real pair t-1 -> t), reference_flow /
    reference_flow_valid [B, L, ., S, S] (classical, reference -> real frame t); None when not needed."""

    frames: Tensor
    landmarks: Tensor
    sketches: Tensor
    reference: Tensor
    reference_landmarks: Tensor
    reference_sketch: Tensor
    mouth_box: Tensor
    flow: Tensor | None
    flow_valid: Tensor | None
    reference_flow: Tensor | None
    reference_flow_valid: Tensor | None
    names: list[str]


@dataclass(frozen=True)
class _History:
    """What frame t sees of the past: frames [B, K, 3, S, S] and sketches [B, K, Cs, S, S] (oldest first)
    and the landmarks [B, 68, 2] of the last of them (for its landmark prior)."""

    frames: Tensor
    sketches: Tensor
    last_landmarks: Tensor


def _flow_loss(flow: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean end-point L1 (|dx| + |dy|, pixels) over the pixels where the classical target flow is valid."""
    error = (flow - target).abs().sum(-3, keepdim=True)
    return (error * valid).sum() / valid.sum().clamp_min(1.0)


def _fold(x: Tensor) -> Tensor:
    return rearrange(x, "b t ... -> (b t) ...")


def _clip_flow(targets: Tensor, sources: Tensor, preset: str) -> tuple[Tensor, Tensor]:
    """``estimate_flow`` over clips: [B, T, 3, S, S] twice -> flow [B, T, 2, S, S], valid [B, T, 1, S, S]."""
    flow, valid = estimate_flow(_fold(targets), _fold(sources), preset)
    return tuple(rearrange(x, "(b t) ... -> b t ...", b=len(targets)) for x in (flow, valid))


def _windows(frames: Tensor, length: int) -> Tensor:
    """All runs of ``length`` consecutive frames: [B, T, ...] -> [B, T - length + 1, length, ...]."""
    count = frames.shape[1] - length + 1
    return torch.stack([frames[:, j : j + count] for j in range(length)], dim=2)


class Face2VidModule(L.LightningModule):
    """Face2Vid (stage 2): landmarks + a reference frame of a person -> video frames, trained as a GAN.

    Args:
        image_size: side S of the frames the generator makes (clips of another size are resized).
        num_previous: K, previous frames the generator sees.
        channels: generator width at S/2.
        bottleneck_blocks: generator residual blocks at S/8.
        attention_heads: heads of every self-attention block (generator and critics).
        use_flow: temporal flow + occlusion mask (False: frames made independently, the paper's baseline).
        use_attention: self-attention in the generator and the image critic.
        use_reference_warp: the reference-warp appearance path (keeps unseen identities).
        use_landmark_prior: start both warps from the flow the landmarks imply (``warp.landmark_flow``); the
            generator predicts corrections.
        prior_sigma: reach of each landmark in that flow, in pixels (default S / 64).
        sketch_sigma: half-width in pixels of the sketch lines (default S / 128).
        discriminator_channels: width of the critics' first layer.
        discriminator_layers: stride-2 layers per critic scale.
        discriminator_scales: scales of the image critic.
        temporal_scales: scales of the temporal critic.
        temporal_with_flow: the temporal critic also sees the real clip's classical flow.
        gan_loss: ``hinge`` or ``lsgan``.
        loss_weights: weights by loss name, overriding ``DEFAULT_LOSS_WEIGHTS`` (0 switches a loss off).
        mouth_weight: L1 weight inside the mouth box relative to outside.
        perceptual_weights: a LOCAL torchvision VGG19 state dict; None or missing: perceptual loss off.
        own_previous_start: training step (batches) where the switch to own previous frames begins.
        own_previous_end: step where it reaches ``own_previous_max``.
        own_previous_max: final probability that a previous frame is the generator's own.
        lr_generator: Adam learning rate of the generator.
        lr_discriminator: Adam learning rate of the critics.
        beta1: Adam beta1 (0.5, as pix2pixHD / vid2vid); beta2 is 0.999.
        lr_schedule: ``constant``, or ``linear_decay`` to 0 from ``decay_start_fraction`` of the run.
        decay_start_fraction: where the linear decay starts.
        gradient_clip_val: max gradient norm per optimiser step (None: no clipping).
        channels_last: keep weights in channels_last memory format (faster convolutions on GPUs).
        lmd_every_n_epochs: run the (slow) detector LMD in validation every n epochs (0: only in test).
        seed: seed of the own-previous-frame draws.
    """

    def __init__(
        self,
        image_size: int = 128,
        num_previous: int = 2,
        channels: int = 32,
        bottleneck_blocks: int = 2,
        attention_heads: int = 4,
        use_flow: bool = True,
        use_attention: bool = True,
        use_reference_warp: bool = True,
        use_landmark_prior: bool = True,
        prior_sigma: float | None = None,
        sketch_sigma: float | None = None,
        discriminator_channels: int = 64,
        discriminator_layers: int = 3,
        discriminator_scales: int = 2,
        temporal_scales: int = 1,
        temporal_with_flow: bool = True,
        gan_loss: Literal["hinge", "lsgan"] = "hinge",
        loss_weights: dict[str, float] | None = None,
        mouth_weight: float = 4.0,
        perceptual_weights: str | None = None,
        own_previous_start: int = 0,
        own_previous_end: int = 2000,
        own_previous_max: float = 1.0,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        beta1: float = 0.5,
        lr_schedule: Literal["constant", "linear_decay"] = "constant",
        decay_start_fraction: float = 0.5,
        gradient_clip_val: float | None = 1.0,
        channels_last: bool = False,
        lmd_every_n_epochs: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(
                f"{_WHERE}: unknown loss names {sorted(unknown)} in loss_weights; known: "
                f"{sorted(DEFAULT_LOSS_WEIGHTS)}"
            )
        weights = DEFAULT_LOSS_WEIGHTS | dict(loss_weights or {})
        bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"{_WHERE}: loss weights must be finite and >= 0, got {bad}")
        if image_size % 8 or image_size < 16:
            raise ValueError(f"{_WHERE}: image_size must be a multiple of 8 and >= 16, got {image_size}")
        if not 0.0 <= own_previous_max <= 1.0:
            raise ValueError(f"{_WHERE}: own_previous_max must lie in [0, 1], got {own_previous_max}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Face2VidGenerator(
            SKETCH_CHANNELS,
            num_previous,
            channels,
            bottleneck_blocks,
            attention_heads,
            use_flow,
            use_attention,
            use_reference_warp,
        )
        self.image_discriminator = MultiScaleDiscriminator(
            SKETCH_CHANNELS + 3,
            discriminator_scales,
            discriminator_channels,
            discriminator_layers,
            use_attention,
            attention_heads,
        )
        temporal_inputs = 3 * (num_previous + 1) + (2 * num_previous if temporal_with_flow else 0)
        self.temporal_discriminator = MultiScaleDiscriminator(
            temporal_inputs, temporal_scales, discriminator_channels, discriminator_layers, False
        )
        self.perceptual = self._load_perceptual(perceptual_weights, weights["perceptual"])
        if self.perceptual is None:
            weights["perceptual"] = 0.0
        if not use_flow:  # nothing to supervise without a temporal flow and mask
            weights["flow"] = weights["warp"] = weights["mask"] = 0.0
        if not use_reference_warp:
            weights["reference_warp"] = weights["reference_flow"] = 0.0
        self.loss_weights = weights
        self.metrics = nn.ModuleDict({split: self._split_metrics() for split in ("val", *TEST_SPLITS)})
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _load_perceptual(path: str | None, weight: float) -> _VGGFeatures | None:
        if weight == 0:
            return None
        if path is None or not Path(path).is_file():
            rank_zero_info(
                f"Face2Vid: perceptual loss is OFF (no local VGG19 weights"
                f"{'' if path is None else f' at {path}'}; set model.perceptual_weights to a torchvision "
                "VGG19 state dict on disk to use it; nothing is downloaded)"
            )
            return None
        rank_zero_info(f"Face2Vid: perceptual loss on, VGG19 weights from {path}")
        return _VGGFeatures(Path(path))

    @staticmethod
    def _split_metrics() -> nn.ModuleDict:
        return nn.ModuleDict(
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

    def setup(self, stage: str) -> None:
        """Let DDP look for unused parameters: the generator and the critics step with separate backward
        passes, each leaving the other's parameters unused, so plain ``--trainer.strategy ddp`` works."""
        from lightning.pytorch.strategies import DDPStrategy

        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters"):
            # DDPStrategy reads its kwargs when it wraps the model, which happens after this hook
            strategy._ddp_kwargs["find_unused_parameters"] = True
            rank_zero_info("Face2Vid: DDP set to find_unused_parameters=True (two optimisers, two backwards)")

    # --- inputs ---------------------------------------------------------------------------------------

    def sketch(self, landmarks: Tensor) -> Tensor:
        """Landmarks [..., 68, 2] (pixels at ``image_size``) -> sketches [..., Cs, S, S]."""
        hp = self.hparams
        flat = rasterise_landmarks(landmarks.reshape(-1, NUM_LANDMARKS, 2), hp.image_size, hp.sketch_sigma)
        return flat.reshape(*landmarks.shape[:-2], *flat.shape[1:])

    def _prepare(
        self, batch: dict, flow_preset: str | None = None, reference_flow_preset: str | None = None
    ) -> _Clip:
        """Check, resize and draw a batch; with a DIS preset, also the classical flows the losses need."""
        hp = self.hparams
        names = [
            f"{s}/{u}@{int(t)}"
            for s, u, t in zip(batch["speaker"], batch["utterance"], batch["start"], strict=True)
        ]
        frames, landmarks = batch["frames"], batch["landmarks"]
        if (
            frames.ndim != 5
            or frames.shape[2] != 3
            or landmarks.shape != (*frames.shape[:2], NUM_LANDMARKS, 2)
        ):
            raise ValueError(
                f"{_WHERE}: want frames [B, L, 3, S, S] and landmarks [B, L, 68, 2], got "
                f"{tuple(frames.shape)} and {tuple(landmarks.shape)} (batch {names})"
            )
        for key in ("frames", "landmarks", "reference_frame", "reference_landmarks"):
            if not torch.isfinite(batch[key]).all():
                raise FloatingPointError(f"{_WHERE}: {key} holds NaN or inf values in the batch of {names}")
        frames, landmarks = resize_clip(frames, landmarks, hp.image_size)
        reference, reference_landmarks = resize_clip(
            batch["reference_frame"], batch["reference_landmarks"], hp.image_size
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
        return _Clip(
            frames=frames,
            landmarks=landmarks,
            sketches=self.sketch(landmarks),
            reference=reference,
            reference_landmarks=reference_landmarks,
            reference_sketch=self.sketch(reference_landmarks),
            mouth_box=mouth_box(landmarks, hp.image_size),
            names=names,
            **flows,
        )

    # --- the generator over time -----------------------------------------------------------------------

    def _start_history(
        self, reference: Tensor, reference_sketch: Tensor, reference_landmarks: Tensor
    ) -> _History:
        """Before the first frame of a video, the K previous frames are the reference."""
        k = self.hparams.num_previous
        return _History(
            reference[:, None].expand(-1, k, -1, -1, -1),
            reference_sketch[:, None].expand(-1, k, -1, -1, -1),
            reference_landmarks,
        )

    def _priors(
        self, landmarks: Tensor, reference_landmarks: Tensor, last_landmarks: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        """Landmark flows [B, T, 2, S, S] to every frame from the reference and from the frame before it
        (``last_landmarks`` [B, 68, 2] before the first); (None, None) without ``use_landmark_prior``."""
        hp = self.hparams
        if not hp.use_landmark_prior:
            return None, None
        b, size = len(landmarks), hp.image_size
        before = torch.cat([last_landmarks[:, None], landmarks[:, :-1]], 1)
        targets = _fold(landmarks)

        def flow_from(sources: Tensor) -> Tensor:
            flow = landmark_flow(targets, _fold(sources), size, hp.prior_sigma)
            return rearrange(flow, "(b t) ... -> b t ...", b=b)

        reference_prior = flow_from(reference_landmarks[:, None].expand_as(landmarks))
        return reference_prior, flow_from(before) if hp.use_flow else None

    def _unroll(
        self,
        sketches: Tensor,
        landmarks: Tensor,
        reference: Tensor,
        reference_sketch: Tensor,
        reference_landmarks: Tensor,
        history: _History,
        teacher: Tensor | None = None,
        teacher_mask: Tensor | None = None,
    ) -> GeneratorOutput:
        """Run the generator over T frames -> ``GeneratorOutput`` of [B, T, ...] tensors.

        Args:
            sketches, landmarks: [B, T, Cs, S, S], [B, T, 68, 2] of the frames to make.
            reference, reference_sketch, reference_landmarks: [B, 3, S, S], [B, Cs, S, S], [B, 68, 2].
            history: the frames before the first.
            teacher: [B, T, 3, S, S] real frames, or None (autoregressive: own frames only).
            teacher_mask: [B, T] bool, True where the real frame (not the generated one) becomes the previous
                frame of the frames after it. All True: teacher forcing, every frame in one batched call.
        """
        generator = self.generator
        b, t = sketches.shape[:2]
        reference_prior, previous_prior = self._priors(landmarks, reference_landmarks, history.last_landmarks)
        if not generator.use_flow or (teacher is not None and bool(teacher_mask.all())):
            previous = previous_sketches = None
            if generator.use_flow:
                k = self.hparams.num_previous
                previous = _fold(_windows(torch.cat([history.frames, teacher], 1), k)[:, :t])
                previous_sketches = _fold(_windows(torch.cat([history.sketches, sketches], 1), k)[:, :t])
            out = generator(
                _fold(sketches),
                _fold(reference[:, None].expand(-1, t, -1, -1, -1)),
                _fold(reference_sketch[:, None].expand(-1, t, -1, -1, -1)),
                previous,
                previous_sketches,
                None if reference_prior is None else _fold(reference_prior),
                None if previous_prior is None else _fold(previous_prior),
            )
            return out.map(lambda x: rearrange(x, "(b t) ... -> b t ...", b=b))
        outputs = []
        frames, frame_sketches = history.frames, history.sketches
        for step in range(t):
            out = generator(
                sketches[:, step],
                reference,
                reference_sketch,
                frames,
                frame_sketches,
                None if reference_prior is None else reference_prior[:, step],
                None if previous_prior is None else previous_prior[:, step],
            )
            outputs.append(out)
            shown = out.frame.detach()
            if teacher is not None:
                shown = torch.where(teacher_mask[:, step, None, None, None], teacher[:, step], shown)
            frames = torch.cat([frames[:, 1:], shown[:, None]], 1)
            frame_sketches = torch.cat([frame_sketches[:, 1:], sketches[:, step : step + 1]], 1)
        return GeneratorOutput.stack(outputs)

    def own_previous_probability(self, step: int) -> float:
        """Probability that a previous frame is the generator's own at training step ``step`` (batches)."""
        hp = self.hparams
        span = max(hp.own_previous_end - hp.own_previous_start, 1)
        return hp.own_previous_max * min(max((step - hp.own_previous_start) / span, 0.0), 1.0)

    @property
    def _batches_done(self) -> int:
        """Training batches done (the generator's scheduler steps once a batch; restored on resume)."""
        return self.lr_schedulers()[0].last_epoch

    @torch.no_grad()
    def rollout(
        self,
        landmarks: Tensor,
        reference_frame: Tensor,
        reference_landmarks: Tensor,
        previous: Tensor | None = None,
        previous_landmarks: Tensor | None = None,
    ) -> GeneratorOutput:
        """Autoregressive generation of a batch of videos, with every intermediate (flows, masks, ...).

        Args:
            landmarks: [B, T, 68, 2] driving landmarks, crop pixels at ``image_size``.
            reference_frame: [B, 3, S, S] in [0, 1], S = ``image_size``; reference_landmarks: [B, 68, 2].
            previous: [B, k, 3, S, S] frames just before the first (e.g. the end of the last chunk), oldest
                first; only the last K are used, and fewer than K are preceded by the reference frame, as at
                the start of a video, so generating in chunks gives the same frames as in one go.
            previous_landmarks: [B, k, 68, 2] their landmarks (required with ``previous``).
        Returns:
            ``GeneratorOutput`` of [B, T, ...] tensors; ``.frame`` is the video.
        """
        hp = self.hparams
        if landmarks.ndim != 4 or landmarks.shape[2:] != (NUM_LANDMARKS, 2) or landmarks.shape[1] < 1:
            raise ValueError(f"{_WHERE}: landmarks must be [B, T >= 1, 68, 2], got {tuple(landmarks.shape)}")
        expected = (len(landmarks), 3, hp.image_size, hp.image_size)
        if tuple(reference_frame.shape) != expected:
            raise ValueError(
                f"{_WHERE}: reference_frame must be {list(expected)} (this model makes {hp.image_size}-px "
                f"crops; crop or resize the face to that size), got {list(reference_frame.shape)}"
            )
        if reference_landmarks.shape != (len(landmarks), NUM_LANDMARKS, 2):
            raise ValueError(
                f"{_WHERE}: reference_landmarks must be [B, 68, 2], got {tuple(reference_landmarks.shape)}"
            )
        device = self.device
        reference = reference_frame.to(device, torch.float32)
        reference_landmarks, landmarks = reference_landmarks.to(device), landmarks.to(device)
        reference_sketch = self.sketch(reference_landmarks)
        history = self._start_history(reference, reference_sketch, reference_landmarks)
        if previous is not None:
            history = self._continue_history(history, previous, previous_landmarks)
        with eval_mode(self):
            return self._unroll(
                self.sketch(landmarks), landmarks, reference, reference_sketch, reference_landmarks, history
            )

    def _continue_history(
        self, history: _History, previous: Tensor, previous_landmarks: Tensor | None
    ) -> _History:
        """The last K of ``previous`` [B, k, 3, S, S] (landmarks [B, k, 68, 2]) become the history; with fewer
        than K, the reference stays in front, as at the start of a video."""
        k = self.hparams.num_previous
        if previous_landmarks is None or previous.shape[:2] != previous_landmarks.shape[:2]:
            raise ValueError(
                f"{_WHERE}: previous frames {tuple(previous.shape)} need their landmarks [B, k, 68, 2], got "
                f"{None if previous_landmarks is None else tuple(previous_landmarks.shape)}"
            )
        frames = history.frames
        if previous.ndim != 5 or previous.shape[0] != len(frames) or previous.shape[2:] != frames.shape[2:]:
            raise ValueError(
                f"{_WHERE}: previous must be [B, k, 3, S, S] like the reference, got {tuple(previous.shape)}"
            )
        previous, previous_landmarks = previous[:, -k:].to(frames), previous_landmarks[:, -k:].to(frames)
        keep = k - previous.shape[1]
        return _History(
            torch.cat([frames[:, :keep], previous], 1),
            torch.cat([history.sketches[:, :keep], self.sketch(previous_landmarks)], 1),
            previous_landmarks[:, -1],
        )

    @torch.no_grad()
    def generate_sequence(
        self,
        landmarks: Tensor,
        reference_frame: Tensor,
        reference_landmarks: Tensor,
        previous: Tensor | None = None,
        previous_landmarks: Tensor | None = None,
        chunk_frames: int = 64,
    ) -> Tensor:
        """Frames of one video, autoregressive, on the module's device, in eval mode.

        Args:
            landmarks: [T, 68, 2] driving landmarks (crop pixels at ``image_size``).
            reference_frame: [3, S, S] in [0, 1]; reference_landmarks: [68, 2].
            previous / previous_landmarks: [k, 3, S, S] / [k, 68, 2] the frames before the first (to continue
                across chunk borders: pass the last K frames made and their landmarks), or None.
            chunk_frames: frames per internal chunk (bounds the memory of intermediates).
        Returns:
            frames [T, 3, S, S] in [0, 1], float32 on the module's device.
        """
        if landmarks.ndim != 3:
            raise ValueError(f"{_WHERE}: landmarks must be [T, 68, 2], got {tuple(landmarks.shape)}")
        if reference_frame.ndim != 3 or reference_landmarks.ndim != 2:
            raise ValueError(
                f"{_WHERE}: reference_frame must be [3, S, S] and reference_landmarks [68, 2], got "
                f"{tuple(reference_frame.shape)} and {tuple(reference_landmarks.shape)}"
            )
        if len(landmarks) < 1:
            raise ValueError(f"{_WHERE}: landmarks hold no frame: {tuple(landmarks.shape)}")
        if previous is not None:
            if previous_landmarks is None:
                raise ValueError(f"{_WHERE}: previous frames need their previous_landmarks [k, 68, 2]")
            previous, previous_landmarks = previous[None], previous_landmarks[None]
        k = self.hparams.num_previous
        chunks = []
        for start in range(0, len(landmarks), chunk_frames):
            part = landmarks[None, start : start + chunk_frames]
            out = self.rollout(
                part, reference_frame[None], reference_landmarks[None], previous, previous_landmarks
            )
            chunks.append(out.frame[0])
            previous = out.frame if previous is None else torch.cat([previous.to(out.frame), out.frame], 1)
            previous_landmarks = (
                part if previous_landmarks is None else torch.cat([previous_landmarks.to(part), part], 1)
            )
            previous, previous_landmarks = previous[:, -k:], previous_landmarks[:, -k:]
        return torch.cat(chunks)

    def forward(self, *args, **kwargs) -> GeneratorOutput:
        """The generator for one frame (see ``Face2VidGenerator.forward``)."""
        return self.generator(*args, **kwargs)

    # --- training -------------------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp, weights = self.hparams, self.loss_weights
        need_flow = (weights["flow"] + weights["mask"] > 0) or (
            hp.temporal_with_flow and weights["temporal_adversarial"] > 0
        )
        clip = self._prepare(
            batch,
            _TRAINING_FLOW_PRESET if need_flow else None,
            _TRAINING_FLOW_PRESET if weights["reference_flow"] > 0 else None,
        )
        if clip.frames.shape[1] < hp.num_previous + 1:
            raise ValueError(
                f"{_WHERE}: training clips have {clip.frames.shape[1]} frames, fewer than K+1 = "
                f"{hp.num_previous + 1} (the temporal critic judges K+1 frames): set data.clip_length >= "
                f"{hp.num_previous + 1}"
            )
        generator_optimizer, discriminator_optimizer = self.optimizers()
        fake = self._generator_step(clip, generator_optimizer)
        if weights["adversarial"] + weights["temporal_adversarial"] > 0:
            self._discriminator_step(clip, fake, discriminator_optimizer)
        for scheduler in self.lr_schedulers():
            scheduler.step()

    def _generator_step(self, clip: _Clip, optimizer) -> GeneratorOutput:
        probability = self.own_previous_probability(self._batches_done)
        draws = torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + self._batches_done)
        teacher_mask = (torch.rand(clip.frames.shape[:2], generator=draws) >= probability).to(self.device)
        with self.toggled_optimizer(optimizer):
            fake = self._unroll(
                clip.sketches,
                clip.landmarks,
                clip.reference,
                clip.reference_sketch,
                clip.reference_landmarks,
                self._start_history(clip.reference, clip.reference_sketch, clip.reference_landmarks),
                clip.frames,
                teacher_mask,
            )
            losses = self._generator_losses(clip, fake)
            total = sum(self.loss_weights[name] * value for name, value in losses.items())
            self._step(optimizer, total, losses, clip, "generator")
        self._log_losses("generator", total, losses, len(clip.names))
        self.log("train/own_previous_probability", probability, on_step=True, on_epoch=False)
        return fake.map(Tensor.detach)

    def _discriminator_step(self, clip: _Clip, fake: GeneratorOutput, optimizer) -> None:
        weights, kind = self.loss_weights, self.hparams.gan_loss
        losses = {}
        with self.toggled_optimizer(optimizer):
            if weights["adversarial"] > 0:
                real_scores, fake_scores = self._image_scores(clip, clip.frames, fake.frame)
                losses["adversarial"] = discriminator_loss(real_scores, fake_scores, kind)
            if weights["temporal_adversarial"] > 0:
                real_scores, fake_scores = self._temporal_scores(clip, clip.frames, fake.frame)
                losses["temporal_adversarial"] = discriminator_loss(real_scores, fake_scores, kind)
            total = sum(weights[name] * value for name, value in losses.items())
            self._step(optimizer, total, losses, clip, "discriminator")
        self._log_losses("discriminator", total, losses, len(clip.names))

    def _step(self, optimizer, total: Tensor, losses: dict[str, Tensor], clip: _Clip, what: str) -> None:
        """Backward, check, clip and step; raise before the step if anything is not finite."""
        if not torch.isfinite(total):
            values = ", ".join(f"{name}={float(value.detach()):.4g}" for name, value in losses.items())
            raise FloatingPointError(
                f"{_WHERE}: non-finite {what} loss at step {self._batches_done} ({values}) in the batch of "
                f"{clip.names}; stopped before the optimiser step, the weights are untouched by it"
            )
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if not str(self.trainer.precision).startswith(
            "16"
        ):  # fp16's GradScaler skips overflowing steps itself
            grads = [
                p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
            ]
            if grads and not torch.isfinite(torch.stack([torch.linalg.vector_norm(g) for g in grads]).sum()):
                raise FloatingPointError(
                    f"{_WHERE}: non-finite {what} gradient at step {self._batches_done} in the batch of "
                    f"{clip.names}; stopped before the optimiser step"
                )
        if self.hparams.gradient_clip_val:
            self.clip_gradients(optimizer, self.hparams.gradient_clip_val, "norm")
        optimizer.step()

    def _log_losses(self, what: str, total: Tensor, losses: dict[str, Tensor], size: int) -> None:
        self.log(f"train/{what}_loss", total, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        for name, value in losses.items():
            self.log(f"train/{what}_{name}", value, on_step=True, on_epoch=True, batch_size=size)

    def _image_scores(self, clip: _Clip, real: Tensor, fake: Tensor) -> tuple[list, list]:
        """Image critic on (sketch, frame) pairs of every frame: scores of real and of generated frames."""
        sketches = _fold(clip.sketches)
        return (
            self.image_discriminator(torch.cat([sketches, _fold(real)], 1)),
            self.image_discriminator(torch.cat([sketches, _fold(fake)], 1)),
        )

    def _temporal_scores(self, clip: _Clip, real: Tensor, fake: Tensor) -> tuple[list, list]:
        """Temporal critic on every run of K+1 frames (with the real clip's flows when configured)."""
        length = self.hparams.num_previous + 1

        def clips(frames: Tensor) -> Tensor:
            x = rearrange(_windows(frames, length), "b n k c h w -> (b n) (k c) h w")
            if self.hparams.temporal_with_flow:
                flow = clip.flow / (self.hparams.image_size / 32)  # about unit scale, as the generator's
                x = torch.cat([x, rearrange(_windows(flow, length - 1), "b n k c h w -> (b n) (k c) h w")], 1)
            return x

        return self.temporal_discriminator(clips(real)), self.temporal_discriminator(clips(fake))

    def _generator_losses(self, clip: _Clip, fake: GeneratorOutput) -> dict[str, Tensor]:
        """Every loss with a positive weight, by name (see the module docstring)."""
        weights, kind, real = self.loss_weights, self.hparams.gan_loss, clip.frames
        losses: dict[str, Tensor] = {}
        matching = []
        if weights["adversarial"] > 0 or weights["feature_matching"] > 0:
            real_scores, fake_scores = self._image_scores(clip, real, fake.frame)
            losses["adversarial"] = generator_adversarial_loss(fake_scores, kind)
            matching.append(feature_matching_loss(fake_scores, real_scores))
        if weights["temporal_adversarial"] > 0 or weights["feature_matching"] > 0:
            real_scores, fake_scores = self._temporal_scores(clip, real, fake.frame)
            losses["temporal_adversarial"] = generator_adversarial_loss(fake_scores, kind)
            matching.append(feature_matching_loss(fake_scores, real_scores))
        if matching:
            losses["feature_matching"] = torch.stack(matching).mean()
        weight = 1.0 + (self.hparams.mouth_weight - 1.0) * clip.mouth_box.float()
        losses["l1"] = (weight * (fake.frame - real).abs()).mean()
        losses["hallucinated"] = (weight * (fake.hallucinated - real).abs()).mean()
        if self.perceptual is not None:
            losses["perceptual"] = self.perceptual(_fold(fake.frame).float(), _fold(real).float())
        if fake.flow is not None and clip.flow is not None:
            losses["flow"] = _flow_loss(fake.flow[:, 1:], clip.flow, clip.flow_valid)
            losses["mask"] = (fake.mask[:, 1:] * (1 - clip.flow_valid)).mean()
        if fake.reference_flow is not None and clip.reference_flow is not None:
            losses["reference_flow"] = _flow_loss(
                fake.reference_flow, clip.reference_flow, clip.reference_flow_valid
            )
        if fake.flow is not None:
            warped = warp(_fold(real[:, :-1]), _fold(fake.flow[:, 1:]))
            losses["warp"] = (warped - _fold(real[:, 1:])).abs().mean()
        if fake.warped_reference is not None:
            losses["reference_warp"] = (fake.warped_reference - real).abs().mean()
        return {name: value for name, value in losses.items() if weights[name] > 0}

    # --- evaluation -----------------------------------------------------------------------------------

    def _evaluate(self, batch: dict, split: str) -> None:
        clip = self._prepare(batch, _METRIC_FLOW_PRESET)
        generated = self._unroll(
            clip.sketches,
            clip.landmarks,
            clip.reference,
            clip.reference_sketch,
            clip.reference_landmarks,
            self._start_history(clip.reference, clip.reference_sketch, clip.reference_landmarks),
        ).frame.float()
        real, size = clip.frames.float(), len(clip.names)
        metrics = self.metrics[split]
        copied = clip.reference[:, None].expand_as(real).float()
        metrics["psnr"].update(_fold(generated), _fold(real))
        metrics["ssim"].update(_fold(generated), _fold(real))
        metrics["psnr_reference"].update(_fold(copied), _fold(real))
        metrics["ssim_reference"].update(_fold(copied), _fold(real))
        metrics["l1"].update((generated - real).abs().mean(dim=(1, 2, 3, 4)))
        for region, inside in (
            ("face", face_region(clip.landmarks, self.hparams.image_size)),
            ("mouth", clip.mouth_box),
        ):
            inside = inside.expand_as(real)
            count = inside.sum(dim=(2, 3, 4))
            for name, frames in ((f"psnr_{region}", generated), (f"psnr_{region}_reference", copied)):
                error = ((frames - real).square() * inside).sum(dim=(2, 3, 4))
                metrics[name].update(error / count.clamp_min(1), count)
        if clip.flow is not None:
            error, count = temporal_warping_error(generated, clip.flow, clip.flow_valid)
            metrics["warp_error"].update(error, count)
            error, count = temporal_warping_error(real, clip.flow, clip.flow_valid)
            metrics["warp_error_real"].update(error, count)
            metrics["flicker"].update(frame_difference_energy(generated) - frame_difference_energy(real))
        every = self.hparams.lmd_every_n_epochs
        if split != "val" or (every > 0 and self.current_epoch % every == 0):
            lmd = mouth_lmd_on_frames(_fold(generated), _fold(clip.landmarks))
            metrics["lmd"].update(lmd)
            metrics["face_found"].update(torch.isfinite(lmd).float())
            metrics["lmd_real"].update(mouth_lmd_on_frames(_fold(real), _fold(clip.landmarks)))
        for name, metric in metrics.items():
            if metric.update_called:
                self.log(f"{split}/{name}", metric, on_epoch=True, batch_size=size, add_dataloader_idx=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, TEST_SPLITS[dataloader_idx])

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Autoregressive frames [B, L, 3, S, S] for a stage-2 batch, with the batch's names."""
        clip = self._prepare(batch, None)
        frames = self.rollout(clip.landmarks, clip.reference, clip.reference_landmarks).frame
        return {"frames": frames, "speaker": batch["speaker"], "utterance": batch["utterance"]}

    # --- optimisation ---------------------------------------------------------------------------------

    def configure_optimizers(self):
        hp = self.hparams
        betas = (hp.beta1, 0.999)
        generator = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_generator, betas=betas)
        critics = [*self.image_discriminator.parameters(), *self.temporal_discriminator.parameters()]
        discriminator = torch.optim.Adam(critics, lr=hp.lr_discriminator, betas=betas)
        total = self.trainer.estimated_stepping_batches
        if hp.lr_schedule == "linear_decay" and not math.isfinite(total):
            raise ValueError(
                f"{_WHERE}: lr_schedule linear_decay needs a finite run (trainer.max_epochs or max_steps)"
            )
        decay_start = hp.decay_start_fraction * total if hp.lr_schedule == "linear_decay" else math.inf

        def factor(step: int) -> float:  # constant, then linear to 0 from decay_start
            if step < decay_start:
                return 1.0
            return max(0.0, 1.0 - (step - decay_start) / max(total - decay_start, 1.0))

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (generator, discriminator)]
        return [generator, discriminator], [{"scheduler": s, "interval": "step"} for s in schedulers]
