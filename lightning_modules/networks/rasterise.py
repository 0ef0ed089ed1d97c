"""68 landmarks -> a soft line sketch of the face, one channel per part: what the generator is conditioned on.

Why lines and not point heatmaps: a contour tells the generator the shape between the points (the lip line
between two corners), and a few channels by part let it tell an inner lip from an outer one. The sketch is
drawn in pure torch, batched, without gradient: a frame of 128 px costs well under a millisecond of work per
face on a CPU, so it is redrawn from landmarks on the fly (no cache, any predicted mouth).

Coordinates: landmarks in crop pixels, (x, y), pixel centres at integer coordinates, as in the cache.
"""

from __future__ import annotations

import torch
from torch import Tensor

from talking_face.datamodules.faces.landmark_scheme import (
    INNER_LIP,
    JAW,
    LEFT_BROW,
    LEFT_EYE,
    NOSE_BASE,
    NOSE_BRIDGE,
    NUM_LANDMARKS,
    OUTER_LIP,
    RIGHT_BROW,
    RIGHT_EYE,
)
from talking_face.shapes import check_shape

__all__ = ["SKETCH_CHANNELS", "SKETCH_PARTS", "rasterise_landmarks", "sketch_to_colour"]


def _polyline(points: range, closed: bool = False) -> list[tuple[int, int]]:
    pairs = list(zip(points[:-1], points[1:], strict=True))
    return pairs + [(points[-1], points[0])] if closed else pairs


SKETCH_PARTS: dict[str, list[tuple[int, int]]] = {
    "jaw": _polyline(JAW),
    "brows": _polyline(RIGHT_BROW) + _polyline(LEFT_BROW),
    "nose": _polyline(NOSE_BRIDGE) + _polyline(NOSE_BASE),
    "eyes": _polyline(RIGHT_EYE, closed=True) + _polyline(LEFT_EYE, closed=True),
    "outer_lips": _polyline(OUTER_LIP, closed=True),
    "inner_lips": _polyline(INNER_LIP, closed=True),
}
"""Sketch channels in order, each a list of (start, end) landmark index pairs drawn as line segments."""

SKETCH_CHANNELS: int = len(SKETCH_PARTS)

_SEGMENTS = torch.tensor([pair for pairs in SKETCH_PARTS.values() for pair in pairs])  # [N, 2]
_CHANNEL_OF_SEGMENT = torch.tensor([c for c, pairs in enumerate(SKETCH_PARTS.values()) for _ in pairs])

# one distinct colour per channel for people to look at (RGB in [0, 1])
_COLOURS = torch.tensor(
    [[0.9, 0.9, 0.9], [0.9, 0.7, 0.2], [0.3, 0.8, 0.9], [0.3, 0.9, 0.3], [1.0, 0.3, 0.3], [1.0, 0.4, 0.9]]
)


@torch.no_grad()
def rasterise_landmarks(landmarks: Tensor, size: int, sigma: float | None = None) -> Tensor:
    """Landmarks [B, 68, 2] (crop pixels) -> sketch [B, SKETCH_CHANNELS, size, size] in [0, 1].

    Each pixel of a channel is ``exp(-d^2 / (2 sigma^2))`` with d its distance in pixels to the nearest
    segment of that part, so lines are soft (anti-aliased, sub-pixel positions kept) and peak at 1 on the
    line. ``sigma`` is the line's half-width in pixels, by default ``size / 128`` (the same look at any size)
    and never under half a pixel (thinner lines fall between pixel centres and flicker as they move).
    Points may lie outside the image (lines are cut at the border). NaN landmarks are an error.
    """
    check_shape(landmarks, f"B {NUM_LANDMARKS} 2", "landmarks (crop pixels)")
    if not torch.isfinite(landmarks).all():
        raise ValueError("landmarks hold NaN or inf values; cannot draw a sketch")
    sigma = max(size / 128, 0.5) if sigma is None else float(sigma)
    if size < 1 or sigma <= 0:
        raise ValueError(f"need size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    points = landmarks.float()
    segments = _SEGMENTS.to(points.device)
    start, end = points[:, segments[:, 0]], points[:, segments[:, 1]]  # [B, N, 2]
    # Each segment is drawn only in a square window around it (a few sigma beyond its ends): the same
    # result as over the whole image, at a few percent of the work.
    reach = 3.0 * sigma
    side = min(int(torch.ceil((end - start).abs().amax() + 2 * reach).item()) + 2, size + 1)
    corner = torch.floor(torch.minimum(start, end) - reach)  # [B, N, 2]
    window = torch.arange(side, device=points.device, dtype=points.dtype)
    x = corner[..., :1] + window.repeat(side)  # [B, N, side*side] integer pixel centres, row-major window
    y = corner[..., 1:] + window.repeat_interleave(side)
    ox, oy = x - start[..., :1], y - start[..., 1:]  # from the segment's start
    dx, dy = (end - start)[..., :1], (end - start)[..., 1:]  # [B, N, 1]
    along = ((ox * dx + oy * dy) / (dx * dx + dy * dy).clamp_min(1e-6)).clamp(0.0, 1.0)
    distance2 = (ox - along * dx) ** 2 + (oy - along * dy) ** 2  # to the nearest point of the segment
    inside = (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)
    intensity = torch.exp(distance2 / (-2 * sigma**2)) * inside
    channel = _CHANNEL_OF_SEGMENT.to(points.device)[None, :, None]
    index = (channel * size + y.clamp(0, size - 1).long()) * size + x.clamp(0, size - 1).long()
    sketch = intensity.new_zeros(len(points), SKETCH_CHANNELS * size * size)
    sketch.scatter_reduce_(1, index.flatten(1), intensity.flatten(1), reduce="amax")
    return sketch.view(len(points), SKETCH_CHANNELS, size, size)


@torch.no_grad()
def sketch_to_colour(sketch: Tensor) -> Tensor:
    """Sketch [B, SKETCH_CHANNELS, H, W] -> RGB [B, 3, H, W] in [0, 1] on black, one colour per part."""
    check_shape(sketch, f"B {SKETCH_CHANNELS} H W", "sketch")
    colours = _COLOURS.to(sketch.device, torch.float32)
    return torch.einsum("bchw,ck->bkhw", sketch.float(), colours).clamp(0.0, 1.0)
