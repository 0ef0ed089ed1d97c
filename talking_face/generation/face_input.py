"""Who will speak: a face photo or a clip -> full frames, tracked 68 landmarks and where a face was found.

A photo is read with its EXIF orientation applied (phone photos) and kept at its resolution (scaled down
only to ``max_side`` when one is given); faces are detected on a copy of at most ``DETECT_SIDE`` px and
their 68 points fitted on the full image, so a 4K photo costs what a 1K one does. The face is the largest
one found, with a warning when there are several (``face_index`` picks another, in order of size). A clip
(scaled down to ``max_side`` too, when given) is decoded at its own frame rate (or one asked for) into a
frame store on disk, never whole into memory, and only as many frames as the speech needs; its landmarks
are tracked and smoothed over the same duration at any rate, and frames without a face are marked so they
can pass through untouched.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.media import MediaError, VideoInfo
from talking_face.errors import InputError, InputWarning
from talking_face.generation.checks import KNOB_RANGES, check_knobs

__all__ = ["DETECT_SIDE", "MIN_FACE_WIDTH", "FaceError", "FaceTrack", "load_face"]

DETECT_SIDE = 1024
"""Longest side of the photo copy the face detector scans (the 68 points are fitted at full size)."""

MIN_FACE_WIDTH = 40
"""Narrowest face (pixels between the jaw's ends) worth animating: below it the crop is mostly upsampling."""


class FaceError(InputError, ValueError):
    """The face input cannot be animated (no face, too small, a bad index); the message names the file."""


@dataclass
class FaceTrack:
    """Frames [N, H, W, 3] uint8 (a memory map on disk for clips), ``landmarks`` float32 [N, 68, 2] image
    pixels (smoothed; copied from the nearest found frame where ``found`` [N] is False), ``kind``, and the
    frame rate ``fps`` the clip was read at (a photo's: the rate asked for)."""

    source: Path
    kind: Literal["photo", "video"]
    frames: np.ndarray
    landmarks: np.ndarray
    found: np.ndarray
    fps: float
    _store: tempfile.TemporaryDirectory | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def close(self) -> None:
        """Delete the clip's frame store (also done when the track is garbage-collected)."""
        self.frames = self.frames[:0]
        if self._store is not None:
            self._store.cleanup()
            self._store = None


def _read_image(path: Path) -> np.ndarray | None:
    """RGB uint8 [H, W, 3] with EXIF orientation applied, or None when ``path`` is not an image."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError):
        return None


def _shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    side = max(image.shape[:2])
    if max_side is None or side <= max_side:
        return image
    scale = max_side / side
    size = (max(round(image.shape[1] * scale), 1), max(round(image.shape[0] * scale), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _face_width(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[16] - landmarks[0]))


def _choose(faces: list, path: Path, face_index: int | None):
    """The face to animate among detections; several faces warn and list themselves."""
    faces = sorted(faces, key=lambda f: _face_width(f.landmarks), reverse=True)
    if not faces:
        raise FaceError(f"{path}: no face found (a frontal face at least {MIN_FACE_WIDTH} px wide is needed)")
    if face_index is not None and not 0 <= face_index < len(faces):
        raise FaceError(f"{path}: face_index {face_index} is out of range: {len(faces)} face(s) found")
    if len(faces) > 1 and face_index is None:
        boxes = "; ".join(f"{i}: box {tuple(round(v) for v in f.box)}" for i, f in enumerate(faces))
        warnings.warn(
            f"{path}: {len(faces)} faces found, animating the largest (0); pick another with --face_index "
            f"({boxes})",
            InputWarning,
            stacklevel=3,
        )
    face = faces[face_index or 0]
    width = _face_width(face.landmarks)
    if width < MIN_FACE_WIDTH:
        raise FaceError(
            f"{path}: the face is too small ({width:.0f} px wide, at least {MIN_FACE_WIDTH} needed)"
        )
    return face


def load_face(
    path: str | Path,
    seconds: float,
    face_index: int | None = None,
    smoothing: int = 5,
    max_side: int | None = None,
    fps: float | None = timebase.FPS,
    progress: bool = False,
) -> FaceTrack:
    """Read a photo or a clip (its first ``seconds``) and find the face.

    ``max_side``: scale the input down so that its longer side is at most this (None: its own resolution).
    ``fps``: the rate a clip is read at (None: its own); ``smoothing`` is a window in frames at the models'
    rate (``timebase.FPS``), lasting as long at any other.

    Raises ``MediaError`` when the file is neither an image nor a readable video and ``FaceError`` when no
    usable face is in it.
    """
    from talking_face.datamodules.faces.detector import make_detector, smooth_landmarks, track_landmarks
    from talking_face.datamodules.media import iter_video_frames, probe_video

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    image = _read_image(path)
    detector = make_detector("dlib")
    check_knobs(max_side=max_side)
    if image is not None:
        image = _shrink(image, max_side)
        face = _choose(_detect_photo(image, detector), path, face_index)
        landmarks = face.landmarks[None].astype(np.float32)
        return FaceTrack(path, "photo", image[None], landmarks, np.ones(1, bool), fps or timebase.FPS)
    try:
        info = probe_video(path)
    except MediaError as error:
        raise MediaError(f"{path}: not an image or a video that can be read") from error
    fps = fps or _own_rate(path, info.fps)
    _check_room(path, info, min(seconds, info.duration or seconds), fps, max_side)
    store = tempfile.TemporaryDirectory(prefix="talking-face-clip-")
    frames = iter_video_frames(path, fps)
    if max_side is not None:
        frames = (_shrink(frame, max_side) for frame in frames)
    frames = _store_frames(frames, timebase.num_frames_at(seconds, fps), Path(store.name))
    detections = ((i, detector.detect(frames[i])) for i in range(min(len(frames), 50)))
    first, faces = next(((i, found) for i, found in detections if found), (None, []))
    if first is None:
        store.cleanup()
        raise FaceError(f"{path}: no face found in the first frames of the clip")
    face = _choose(faces, path, face_index)
    landmarks, found = track_landmarks(
        iter(frames),
        detector,
        progress=progress,
        prefer=face.landmarks,
        first_faces=faces if first == 0 else None,
    )
    landmarks = smooth_landmarks(landmarks, found, timebase.window_at(smoothing, fps))
    return FaceTrack(path, "video", frames, landmarks, found, fps, store)


def _detect_photo(image: np.ndarray, detector) -> list:
    """Faces in ``image``: detected on a copy of at most ``DETECT_SIDE`` px, landmarks fitted at full size."""
    from talking_face.datamodules.faces.detector import FaceDetection

    small = _shrink(image, DETECT_SIDE)
    if small is image:
        return detector.detect(image)
    scale = image.shape[1] / small.shape[1]
    faces = []
    for face in detector.detect(small):
        box = tuple(float((v + 0.5) * scale - 0.5) for v in face.box)
        faces.append(FaceDetection(box, face.score, detector.fit(image, box)))
    return faces


def _own_rate(path: Path, fps: float) -> float:
    """The clip's own frame rate, or the models' (with a warning) where the file states an unusable one (a
    variable-rate stream can report its timebase, 1000 or 90000)."""
    low, high = KNOB_RANGES["fps"]
    if low <= fps <= high:
        return fps
    warnings.warn(
        f"{path}: its frame rate reads {fps:g} fps; playing it at {timebase.FPS} fps (another: --fps)",
        InputWarning,
        stacklevel=3,
    )
    return timebase.FPS


def _check_room(path: Path, info: VideoInfo, seconds: float, fps: float, max_side: int | None) -> None:
    """Refuse, before decoding, a clip whose frames would not fit in the temporary folder (a memory map on a
    full disk kills the process instead of raising)."""
    import shutil

    side = max(info.width, info.height)
    scale = 1.0 if max_side is None or side <= max_side else max_side / side
    needed = timebase.num_frames_at(seconds, fps) * round(info.width * scale) * round(info.height * scale) * 3
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if needed > 0.9 * free:
        size = f"{info.width}x{info.height}"
        raise MediaError(
            f"{path}: {seconds:.1f} s at {fps:g} fps and {size} needs {needed / 1e9:.1f} GB in {folder}, "
            f"{free / 1e9:.1f} GB free: give --max_side or --fps, or set TMPDIR to a larger disk"
        )


def _store_frames(frames, max_frames: int, folder: Path) -> np.ndarray:
    """Up to ``max_frames`` frames in a memory-mapped array in ``folder`` (bounded memory for any clip)."""
    frames = iter(frames)
    first = next(frames)
    store = np.lib.format.open_memmap(folder / "frames.npy", "w+", np.uint8, (max_frames, *first.shape))
    store[0] = first
    count = 1
    for frame in frames:
        if count == max_frames:
            break
        store[count] = frame
        count += 1
    store.flush()
    return store[:count]
