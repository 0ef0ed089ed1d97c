"""The checks a run passes before any work: knob ranges, input files, the output path, the device.

Each raises ``UsageError`` naming the flag, so ``talking-face generate`` (and the Python API, which calls the
same checks) refuses a bad value before loading a model or speaking a word.
"""

from __future__ import annotations

import os
from pathlib import Path

from talking_face.errors import UsageError

__all__ = [
    "KNOB_RANGES", "VIDEO_CONTAINERS", "check_device", "check_input_file", "check_knobs", "check_output",
]  # fmt: skip

KNOB_RANGES: dict[str, tuple[float, float]] = {
    "head_motion": (0.0, 3.0),  # x the built-in corpus' head-motion amplitude
    "blinks": (0.0, 2.0),  # per second; people blink about 0.3 times a second
    "mouth_scale": (0.0, 3.0),  # x the predicted mouth motion; past 3 the lips tear
    "smoothing": (1, 51),  # frames
    "chunk_frames": (1, 100_000),
    "max_temporal_mask": (0.0, 1.0),
    "face_index": (0, 1_000),
    "max_side": (80, 100_000),  # pixels; below about 2 faces' width nothing is left to animate
    "crf": (0, 51),  # x264's constant rate factor: 0 lossless, 51 the coarsest
    "fps": (1.0, 120.0),  # frames per second of the output video
}
"""Sane range of each knob (inclusive)."""

VIDEO_CONTAINERS = (".mp4", ".mov", ".mkv", ".m4v")
"""Containers that hold H.264 video with AAC audio."""


def check_knobs(**values: float | int | None) -> None:
    """Every named knob within ``KNOB_RANGES`` (None means "the default" and passes)."""
    for name, value in values.items():
        low, high = KNOB_RANGES[name]
        if value is not None and not low <= value <= high:
            raise UsageError(name, f"{value} is out of range: give a value from {low} to {high}")


def check_input_file(flag: str, path: str | Path | None) -> None:
    """``path`` is an existing, readable file (None passes: the input was not given)."""
    if path is None:
        return
    path = Path(path)
    if not path.exists():
        raise UsageError(flag, f"{path}: no such file")
    if not path.is_file():
        raise UsageError(flag, f"{path}: is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(flag, f"{path}: cannot be read (permissions)")


def check_output(out: str | Path, inputs: dict[str, str | Path | None], flag: str = "out") -> Path:
    """A video path that can be written, is none of the ``inputs`` ({flag: path}), and whose folder exists
    (made if missing)."""
    out = Path(out)
    for name, path in inputs.items():
        if path is not None and Path(path).exists() and out.exists() and out.samefile(path):
            raise UsageError(flag, f"{out}: is the --{name} input; write the video somewhere else")
    if out.is_dir():
        raise UsageError(flag, f"{out}: is a folder; give a file name such as {out / 'out.mp4'}")
    if out.suffix.lower() not in VIDEO_CONTAINERS:
        raise UsageError(flag, f"{out}: give a video file name ending in {' or '.join(VIDEO_CONTAINERS)}")
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(flag, f"{out}: the folder {folder} cannot be made ({error.strerror})") from error
    if not os.access(folder, os.W_OK):
        raise UsageError(flag, f"{out}: the folder {folder} is not writable")
    return out


def check_device(device: str) -> None:
    """``device`` names a device this torch build has (cpu, cuda, cuda:N, mps)."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise UsageError("device", f"{device!r} is not a device: give cpu, cuda or cuda:N") from error
    if parsed.type == "cuda":
        if torch.version.cuda is None:
            raise UsageError(
                "device", "this torch build has no CUDA; install a CUDA build (README) or use --device cpu"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count or count == 0:
            raise UsageError("device", f"{device}: {count} CUDA device(s) visible; use another, or cpu")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device", "MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise UsageError("device", f"{device!r}: give cpu, cuda or cuda:N")
