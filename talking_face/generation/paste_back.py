"""Put a generated face crop back into the full frame: feathered mask, colour matched at the seam.

The mask covers the face (the hull of its 68 points, brows to chin, a little grown) for both the new
landmarks and the frame's own, so an old open chin under a newly closed mouth is covered too, and a moving
head or a blink is pasted whole; its edge is soft. Inside it, the generated crop's low-frequency colour
is pulled to the original's along the seam, so no box or colour step shows; outside it, every pixel of
the frame is left exactly as it was.
"""

from __future__ import annotations

import numpy as np

__all__ = ["face_mask", "paste_face"]


def face_mask(landmarks: list[np.ndarray], size: int, feather: float = 0.05) -> np.ndarray:
    """Float32 [size, size] in [0, 1]: the union of the face hulls of each of ``landmarks`` ([68, 2] crop
    pixels), grown by ``feather / 2`` and softened over ``feather * size`` pixels: 1 inside the face, a soft
    band across its outline, exactly 0 beyond."""
    import cv2

    hulls = np.zeros((size, size), np.uint8)
    for points in landmarks:
        hull = cv2.convexHull(np.round(np.asarray(points) * 4).astype(np.int32))
        cv2.fillConvexPoly(hulls, hull, 255, lineType=cv2.LINE_AA, shift=2)
    radius = max(int(round(feather * size)), 1)

    def disc(r: int) -> np.ndarray:
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    mask = cv2.dilate(hulls, disc(max(radius // 2, 1)))
    inner = cv2.erode(mask, disc(radius))
    soft = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), radius / 2.0)
    return np.where(mask > 0, soft, 0.0).astype(np.float32)


def _colour_match(generated: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``generated`` [S, S, 3] float with its low frequencies moved to the original's along the seam.

    The difference original - generated is averaged over the seam (0 < mask < 1) and spread smoothly
    inward (normalised Gaussian blur), so a lighting or tint offset of the generator vanishes at the edge.
    """
    import cv2

    seam = ((mask > 0.02) & (mask < 0.98)).astype(np.float32)
    if seam.sum() < 8:
        return generated
    size = mask.shape[0]
    small = (max(size // 4, 8),) * 2  # a smooth field: computed at a quarter of the size, 10x cheaper
    difference = cv2.resize((original - generated) * seam[..., None], small, interpolation=cv2.INTER_AREA)
    weight = cv2.GaussianBlur(cv2.resize(seam, small, interpolation=cv2.INTER_AREA), (0, 0), small[0] / 8)
    spread = cv2.GaussianBlur(difference, (0, 0), small[0] / 8) / np.maximum(weight, 1e-3)[..., None]
    return generated + cv2.resize(spread, (size, size), interpolation=cv2.INTER_LINEAR)


def paste_face(
    frame: np.ndarray, crop: np.ndarray, transform: np.ndarray, mask: np.ndarray, colour_match: bool = True
) -> np.ndarray:
    """``frame`` [H, W, 3] uint8 with ``crop`` [S, S, 3] uint8 pasted in through ``mask`` [S, S].

    ``transform`` [2, 3] maps frame pixels to crop pixels (the crop's own transform). Pixels where the
    warped mask is 0 are returned unchanged, bit for bit.
    """
    import cv2

    size = crop.shape[0]
    original = cv2.warpAffine(
        frame, transform, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    generated = crop.astype(np.float32)
    if colour_match:
        generated = _colour_match(generated, original.astype(np.float32), mask)
    height, width = frame.shape[:2]
    rows, columns = np.nonzero(mask)
    if rows.size == 0:
        return frame.copy()
    corners = np.array(
        [[columns.min(), rows.min()], [columns.max(), rows.min()], [columns.min(), rows.max()],
         [columns.max(), rows.max()]], np.float64
    )  # fmt: skip
    inverse = cv2.invertAffineTransform(transform)
    spots = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.maximum(np.floor(spots.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(spots.max(0)).astype(int) + 2, [width, height])
    if x1 <= x0 or y1 <= y0:
        return frame.copy()
    shifted = transform.copy()
    shifted[:, 2] += transform[:, :2] @ np.array([x0, y0], np.float64)  # the box's pixel (0, 0) is (x0, y0)
    box = (int(x1 - x0), int(y1 - y0))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    face = cv2.warpAffine(
        np.clip(generated, 0, 255), shifted, box, flags=flags, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpAffine(mask, shifted, box, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    out = frame.copy()
    region = out[y0:y1, x0:x1]
    alpha = alpha[..., None]  # where it is 0 the blend is the frame's own value exactly (1 * x + 0 * y)
    region[...] = np.clip(np.rint(alpha * face + (1 - alpha) * region), 0, 255).astype(np.uint8)
    return out
