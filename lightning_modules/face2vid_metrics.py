"""Stage 2's measurements, plain functions that training, evaluation and generation share: classical optical
flow (OpenCV's DIS) and the temporal warping error and flicker it measures, the mouth landmark distance of the
project's detector on generated frames, the mouth and face regions of a frame, and pooled PSNR.

Frames are [N, 3, S, S] or [B, T, 3, S, S] in [0, 1]; landmarks are crop pixels (68-point scheme); flows are
pixels, backward (``networks.warp``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from torchmetrics import MeanMetric

from talking_face.datamodules.faces.detector import make_detector
from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_LANDMARKS
from talking_face.lightning_modules.metrics import mouth_distance
from talking_face.lightning_modules.networks.warp import warp
from talking_face.shapes import check_shape

__all__ = [
    "METRIC_FLOW_PRESET",
    "TRAINING_FLOW_PRESET",
    "PSNRFromMSE",
    "estimate_flow",
    "face_region",
    "frame_difference_energy",
    "mouth_box",
    "mouth_lmd_on_frames",
    "resize_clip",
    "temporal_warping_error",
]

TRAINING_FLOW_PRESET = "fast"  # cheap enough to run on every training batch (benchmarks/README.md)
METRIC_FLOW_PRESET = "medium"  # more accurate: what the temporal metrics are measured with


@functools.cache
def _dis(preset: str):
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise ValueError(f"unknown DIS preset {preset!r}; known: {sorted(presets)}")
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
    check_shape(
        source, "N 3 H W", "estimate_flow's source", check_shape(target, "N 3 H W", "estimate_flow's target")
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
        [N] LMD (``metrics.mouth_distance``: pixels of a 128-px crop), NaN where no face was found.
    """
    import cv2

    dims = check_shape(frames, "N 3 S S", "frames")
    check_shape(landmarks, f"N {NUM_LANDMARKS} 2", "landmarks", dims)
    detector = detector or make_detector("dlib")
    size = frames.shape[-1]
    scale = max(1.0, min_size / size)
    images = (
        (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    )
    target = landmarks.detach().cpu()
    detected = torch.full_like(target, float("nan"), dtype=torch.float64)
    for index, image in enumerate(images):
        if scale > 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = detector.detect(np.ascontiguousarray(image))
        if faces:
            detected[index] = torch.from_numpy((faces[0].landmarks + 0.5) / scale - 0.5)
    return mouth_distance(detected, target, size).float()


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
