"""Drawing landmarks for people to look at: mouth animations and mouth-opening plots.

Pure functions over arrays (no Lightning), shared by the media callbacks and the notebooks.
Mouth points are [T, 20, 2] (68-point indices 48-67) in any frame of reference; they are fitted into
the canvas together, so predictions and ground truth stay comparable.
"""

from __future__ import annotations

import cv2
import numpy as np

from talking_face.datamodules.faces.landmark_scheme import INNER_LIP, MOUTH, OUTER_LIP
from talking_face.datamodules.faces.mouth import mouth_opening

# BGR-free RGB colours, one per series; ground truth is always the first.
COLOURS = {
    "truth": (40, 40, 40),
    "audio": (220, 60, 50),
    "text": (50, 110, 220),
    "both": (240, 150, 20),
}
_FALLBACK = (120, 60, 160)


def _fit(series: dict[str, np.ndarray], size: int, margin: float = 0.12) -> dict[str, np.ndarray]:
    """Map every series into canvas pixels with one shared scale and offset (y down, as images)."""
    points = np.concatenate([np.asarray(s, np.float32).reshape(-1, 2) for s in series.values()])
    low, high = points.min(axis=0), points.max(axis=0)
    scale = (1 - 2 * margin) * size / max(float((high - low).max()), 1e-6)
    centre = (low + high) / 2
    return {name: (np.asarray(s, np.float32) - centre) * scale + size / 2 for name, s in series.items()}


def draw_mouth(
    canvas: np.ndarray, mouth: np.ndarray, colour: tuple[int, int, int], thickness: int = 2
) -> None:
    """Draw the outer and inner lip contours of one mouth [20, 2] (canvas pixels) in place."""
    for part in (OUTER_LIP, INNER_LIP):
        contour = mouth[part.start - MOUTH.start : part.stop - MOUTH.start]
        cv2.polylines(canvas, [np.round(contour).astype(np.int32)], True, colour, thickness, cv2.LINE_AA)


def render_mouth_animation(series: dict[str, np.ndarray], size: int = 256) -> np.ndarray:
    """Frames uint8 [T, size, size + legend, 3] overlaying mouths [T, 20, 2] of each named series.

    ``series`` maps a name ("truth", "audio", "text", "both", ...) to its mouth sequence; all must
    have the same length. A legend on the right names the colours.
    """
    lengths = {len(s) for s in series.values()}
    if len(lengths) != 1:
        raise ValueError(f"all series need the same number of frames, got {sorted(lengths)}")
    fitted = _fit(series, size)
    legend = 90
    frames = np.full((lengths.pop(), size, size + legend, 3), 255, np.uint8)
    for row, name in enumerate(series):
        colour = COLOURS.get(name, _FALLBACK)
        cv2.putText(frames[0], name, (size + 8, 24 + 22 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1)
    frames[1:, :, size:] = frames[0, :, size:]
    for t, frame in enumerate(frames):
        for name, mouth in fitted.items():
            draw_mouth(frame, mouth[t], COLOURS.get(name, _FALLBACK), 3 if name == "truth" else 2)
    return frames


def plot_mouth_opening(series: dict[str, np.ndarray], fps: float = 25.0, ax=None):
    """Mouth opening over time (seconds) of each named mouth sequence [T, 20, 2]; returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 2.8))
    for name, mouth in series.items():
        colour = np.array(COLOURS.get(name, _FALLBACK)) / 255
        opening = mouth_opening(np.asarray(mouth))
        ax.plot(
            np.arange(len(opening)) / fps,
            opening,
            label=name,
            color=colour,
            lw=2.4 if name == "truth" else 1.4,
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening")
    ax.legend(loc="upper right", fontsize=8)
    ax.figure.tight_layout()
    return ax.figure
