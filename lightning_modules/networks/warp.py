"""The one image warp of stage 2 (on kornia), the flow that landmarks imply, and a colour wheel for flows.

Convention, used by the generator, the losses, the metrics and the classical flow alike:

- **Backward warp**: ``warp(image, flow)(x, y) = image(x + dx(x, y), y + dy(x, y))``. The flow lives on the
  grid of the *output* (the frame being made) and points to where each of its pixels is found in ``image``
  (the previous frame, or the reference). To move content right by 2 px, the flow is dx = -2.
- **Pixels**, not normalised units: ``flow`` [B, 2, H, W] channels-first, channel 0 = dx, channel 1 = dy,
  so a flow means the same at 128 and 256 px up to a factor of 2.
- Pixel centres sit at integer coordinates (0 .. W-1), the same as the landmarks of the cache and OpenCV;
  this is ``align_corners=True`` in ``grid_sample`` terms (kornia's ``remap`` pixel maps assume it).
- Bilinear sampling; a sample outside the image takes the nearest border pixel (``padding_mode="border"``),
  so a face warped towards the edge smears its border instead of fading to black.

>>> image = torch.arange(4.0).view(1, 1, 1, 4)
>>> warp(image, torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 1, 4))  # read one pixel right
tensor([[[[1., 2., 3., 3.]]]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from talking_face.shapes import check_shape

__all__ = ["flow_to_colour", "landmark_flow", "warp"]


def _check_flow(flow: Tensor, batch: int, height: int, width: int, where: str) -> None:
    if flow.ndim != 4 or flow.shape[1] != 2 or flow.shape[0] != batch or flow.shape[2:] != (height, width):
        raise ValueError(
            f"{where} wants flow [B, 2, H, W] = [{batch}, 2, {height}, "
            f"{width}] (dx, dy in pixels), got {tuple(flow.shape)}"
        )


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``image`` [B, C, H, W] by ``flow`` [B, 2, H, W] (dx, dy in pixels) -> [B, C, H, W].

    ``out(x, y) = image(x + dx, y + dy)``, bilinear, border-replicated; differentiable in both arguments.
    The flow is cast to the image's dtype (grid_sample wants one dtype, e.g. under bf16 autocast).
    """
    from kornia.geometry import create_meshgrid
    from kornia.geometry.transform import remap

    check_shape(image, "B C H W", "warp's image")
    batch, _, height, width = image.shape
    _check_flow(flow, batch, height, width, "warp")
    flow = flow.to(image.dtype)
    grid = create_meshgrid(height, width, False, image.device, image.dtype)  # [1, H, W, 2] as (x, y)
    return remap(
        image,
        grid[..., 0] + flow[:, 0],
        grid[..., 1] + flow[:, 1],
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )


def landmark_flow(target: Tensor, source: Tensor, size: int, sigma: float | None = None) -> Tensor:
    """The flow that landmarks imply: where each pixel of the target frame is found in the source frame.

    Each landmark says exactly that for its own pixel (target point p_i, source point q_i: the flow there is
    q_i - p_i); between them the displacements are blended with normalised Gaussian weights,
    ``f(x) = sum_i w_i(x) (q_i - p_i) / (sum_i w_i(x) + 0.05)``, ``w_i(x) = exp(-|x - p_i|^2 / (2 sigma^2))``,
    each weight kept within a square of +-3 sigma around its point (a compact kernel: no work far from the
    face). The flow follows the landmarks near them and is 0 (no motion) farther away: the lips and the jaw
    move, the background stays. ``warp(source_image, landmark_flow(...))`` moves the source's face towards
    the target's landmarks, whoever the face is.

    Args:
        target: [B, P, 2] points (x, y) in pixels on the frame being made.
        source: [B, P, 2] the same points on the image to be warped.
        size: S of the square frame.
        sigma: reach of each point in pixels (default S / 64).
    Returns:
        flow [B, 2, S, S] in pixels (backward-warp convention of ``warp``).
    """
    check_shape(
        source, "B P 2", "landmark_flow's source", check_shape(target, "B P 2", "landmark_flow's target")
    )
    sigma = size / 64 if sigma is None else float(sigma)
    target, displacement = target.float(), (source - target).float()
    # each point reaches 3 sigma: sum over a square window around it
    reach = math.ceil(3 * sigma)
    window = torch.arange(-reach, reach + 1, device=target.device, dtype=torch.float32)
    x = torch.round(target[..., :1]) + window.repeat(len(window))  # [B, P, side*side] pixel centres
    y = torch.round(target[..., 1:]) + window.repeat_interleave(len(window))
    weight = torch.exp(((x - target[..., :1]) ** 2 + (y - target[..., 1:]) ** 2) / (-2 * sigma**2))
    weight = weight * ((x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1))
    index = (y.clamp(0, size - 1) * size + x.clamp(0, size - 1)).long().flatten(1)
    sums = target.new_zeros(len(target), 3, size * size)  # sum of w*dx, w*dy, w per pixel
    for channel, values in enumerate(
        (weight * displacement[..., :1], weight * displacement[..., 1:], weight)
    ):
        sums[:, channel].scatter_add_(1, index, values.flatten(1))
    flow = sums[:, :2] / (sums[:, 2:] + 0.05)
    return flow.view(len(target), 2, size, size)


def flow_to_colour(flow: Tensor, max_magnitude: float | None = None) -> Tensor:
    """Colour-wheel picture of a flow [B, 2, H, W] (pixels) -> RGB [B, 3, H, W] in [0, 1], for logging.

    Hue is the direction (red: pointing right, i.e. content comes from the right; then green, blue around
    the wheel), saturation the length relative to ``max_magnitude`` (default: the largest length of each
    image; give a fixed value to compare frames of a video), full value: zero flow is white.
    """
    from kornia.color import hsv_to_rgb

    check_shape(flow, "B 2 H W", "flow_to_colour's flow")
    flow = flow.detach().float()
    magnitude = torch.linalg.vector_norm(flow, dim=1, keepdim=True)  # [B, 1, H, W]
    scale = (
        magnitude.amax(dim=(2, 3), keepdim=True)
        if max_magnitude is None
        else torch.full_like(magnitude[:, :, :1, :1], float(max_magnitude))
    )
    hue = torch.atan2(flow[:, 1:2], flow[:, 0:1]).remainder(2 * math.pi)
    saturation = (magnitude / scale.clamp_min(1e-6)).clamp(0.0, 1.0)
    return hsv_to_rgb(torch.cat([hue, saturation, torch.ones_like(hue)], dim=1)).clamp(0.0, 1.0)
