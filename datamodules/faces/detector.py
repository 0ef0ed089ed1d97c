"""68-point facial landmarks from a real, offline detector, and fast tracking of them through a video.

Why dlib: its HOG face detector and the iBUG 68-point shape predictor install from PyPI (``dlib-bin``
wheel + ``face-recognition-models``, which ships ``shape_predictor_68_face_landmarks.dat``) and need no
download at run time. mediapipe's face mesh would be faster (2-3 ms an image) but the only release that
bundles its model (0.10.21) pins numpy<2 and protobuf<5, which breaks wandb 0.31 in the same environment;
``face-alignment`` downloads its weights at run time.

Tracking re-detects only now and then, which is what makes it fast (its speed: ``benchmarks/README.md``).

Why upsample 1 by default: the HOG window is 80 px, so without upsampling faces narrower than ~80 px are
missed (the astronaut photo at half size, a 40-px face, is found only with upsample 1); video frames of
lip-reading corpora (GRID: 360x288) hold faces of that size.

Why ``threshold = 0.2`` (dlib's own default is 0): on skimage's and scikit-learn's packaged non-face
photos the HOG detector scores below 0.2 (the astronaut's mission patch: 0.12-0.15 with upsample 1); real
faces score 0.8-1.5, down to 0.25 when blurred at 40 px.

Swappable: any object with the `LandmarkDetector` protocol works with `track_landmarks`; register new
ones in `make_detector`.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from talking_face.datamodules.faces.alignment import estimate_crop_transform, smooth_over_time, warp_to_crop
from talking_face.datamodules.faces.landmark_scheme import NUM_LANDMARKS, STABLE
from talking_face.datamodules.frame_runs import true_runs
from talking_face.shapes import check_shape

__all__ = [
    "DlibDetector",
    "FaceDetection",
    "LandmarkDetector",
    "dlib_model_path",
    "make_detector",
    "smooth_landmarks",
    "track_landmarks",
]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceDetection:
    """One face: ``box`` (x0, y0, x1, y1) and ``landmarks`` float32 [68, 2] (x, y), image pixels."""

    box: Box
    score: float
    landmarks: np.ndarray


class LandmarkDetector(Protocol):
    """Finds faces with 68 iBUG landmarks in RGB uint8 images [H, W, 3]; coordinates in image pixels."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces, best first (largest area x score); empty when there is none."""
        ...

    def fit(self, image: np.ndarray, box: Box) -> np.ndarray:
        """Landmarks float32 [68, 2] of the face inside ``box`` (a box like `detect` returns)."""
        ...


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"faces.detector: want an RGB uint8 image [H, W, 3], got {got}")
    return np.ascontiguousarray(image)


def dlib_model_path() -> Path:
    """``shape_predictor_68_face_landmarks.dat`` of the installed ``face-recognition-models`` package.

    Found with ``importlib.util.find_spec``: importing the package needs ``pkg_resources``, which recent
    setuptools no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "faces.detector: package face-recognition-models is missing (pip install face-recognition-models)"
        )
    path = (
        Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    )
    if not path.is_file():
        raise FileNotFoundError(f"faces.detector: {path} is missing; reinstall face-recognition-models")
    return path


@functools.cache
def _dlib_models(model_path: str) -> tuple[object, object]:
    """(HOG frontal face detector, 68-point shape predictor), loaded once per process (~0.5 s)."""
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(model_path)


class DlibDetector:
    """dlib HOG face detector + iBUG 68-point shape predictor (regression trees).

    Args:
        upsample: image doublings before HOG detection (0 finds faces >= ~80 px wide, 1 >= ~40 px, 4x slower).
        threshold: minimum HOG score of a face (see the module docstring for the evidence).
        fit_size: the face box is resampled to at least this width before the shape fit, because dlib returns
            integer landmark coordinates: a 100-px face fitted at 200 px gets half-pixel resolution.
        model_path: the shape predictor file; default from `dlib_model_path`.
    """

    name = "dlib"

    def __init__(
        self,
        upsample: int = 1,
        threshold: float = 0.2,
        fit_size: int = 200,
        model_path: str | Path | None = None,
    ) -> None:
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self.fit_size = int(fit_size)
        self.model_path = str(model_path or dlib_model_path())
        if not Path(self.model_path).is_file():
            raise FileNotFoundError(f"faces.detector: shape predictor {self.model_path} does not exist")

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        image = _check_image(image)
        face_detector, _ = _dlib_models(self.model_path)
        rects, scores, _ = face_detector.run(image, self.upsample, self.threshold)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
            faces.append(FaceDetection(box, float(score), self._fit(image, box)))
        return sorted(faces, key=lambda f: (_area(f.box) * max(f.score, 0.0), f.score), reverse=True)

    def fit(self, image: np.ndarray, box: Box) -> np.ndarray:
        return self._fit(_check_image(image), box)

    def _fit(self, image: np.ndarray, box: Box) -> np.ndarray:
        import cv2
        import dlib

        _, predictor = _dlib_models(self.model_path)
        x0, y0, x1, y1 = (float(v) for v in box)
        zoom = max(1.0, self.fit_size / max(x1 - x0, 1.0))
        if zoom == 1.0:
            shape = predictor(image, dlib.rectangle(round(x0), round(y0), round(x1), round(y1)))
            return _points(shape)
        # Resample a region around the box (a margin for points outside it) at `zoom`, fit, map back.
        w, h = x1 - x0, y1 - y0
        shift = -zoom * np.array([x0 - 0.5 * w, y0 - 0.5 * h])  # region pixel = zoom * image pixel + shift
        zoom_in = np.array([[zoom, 0.0, shift[0]], [0.0, zoom, shift[1]]])
        size = (round(2 * w * zoom), round(2 * h * zoom))
        region = cv2.warpAffine(image, zoom_in, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        zx0, zy0, zx1, zy1 = (round(v) for v in (zoom * np.array([x0, y0, x1, y1]) + np.tile(shift, 2)))
        shape = predictor(region, dlib.rectangle(zx0, zy0, zx1, zy1))
        return ((_points(shape) - shift) / zoom).astype(np.float32)


def _points(shape: object) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _area(box: Box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


_DETECTORS: dict[str, Callable[..., LandmarkDetector]] = {"dlib": DlibDetector}


@functools.cache
def make_detector(name: str = "dlib", **kwargs: object) -> LandmarkDetector:
    """The landmark detector registered as ``name``, built with ``kwargs``: one per process and settings
    (loading dlib's model takes a moment), shared by preprocessing, generation and the metrics."""
    if name not in _DETECTORS:
        raise KeyError(f"faces.detector: unknown detector {name!r}; known: {sorted(_DETECTORS)}")
    return _DETECTORS[name](**kwargs)


# ---------------------------------------------------------------------------------------------- tracking

_PATCH = 32  # side of the grey face patch compared between frames
# Normalised cross-correlation with the last detection's patch below which the face counts as lost. Measured
# on the Grace Hopper photo: the same face moved/rotated/brightened 0.97-0.99; the astronaut's face 0.34;
# a noise frame or the coffee photo under the face ~0.0.
_MIN_SIMILARITY = 0.5
_MAX_SCALE_CHANGE = 1.3  # a fitted shape that grows or shrinks more than this in one frame has drifted


@dataclass(frozen=True)
class _BoxModel:
    """A detection box in the frame of its landmarks' STABLE points (centroid, RMS radius, eye-line angle),
    so that the box of a later frame follows the face's motion: the box the detector itself would draw."""

    offset: complex  # (box centre - centroid) / (radius * e^{i angle})
    width: float  # box width / radius
    height: float

    @staticmethod
    def frame(landmarks: np.ndarray) -> tuple[complex, float, complex]:
        points = landmarks[list(STABLE)].astype(np.float64)
        z = points[:, 0] + 1j * points[:, 1]
        centroid = z.mean()
        radius = float(np.sqrt((np.abs(z - centroid) ** 2).mean()))
        eye_line = complex(*(landmarks[45] - landmarks[36]).astype(np.float64))
        return centroid, radius, eye_line / abs(eye_line)

    @classmethod
    def from_detection(cls, box: Box, landmarks: np.ndarray) -> _BoxModel:
        centroid, radius, rotation = cls.frame(landmarks)
        centre = complex((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        return cls(
            (centre - centroid) / (radius * rotation), (box[2] - box[0]) / radius, (box[3] - box[1]) / radius
        )

    def box(self, landmarks: np.ndarray) -> Box:
        centroid, radius, rotation = self.frame(landmarks)
        centre = centroid + self.offset * radius * rotation
        w, h = self.width * radius / 2, self.height * radius / 2
        return (centre.real - w, centre.imag - h, centre.real + w, centre.imag + h)


def _face_patch(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """Zero-mean, unit-norm grey aligned face patch [_PATCH * _PATCH], or None when it is flat (no face)."""
    crop = warp_to_crop(image, estimate_crop_transform(landmarks, _PATCH), _PATCH)
    patch = crop.mean(axis=2, dtype=np.float32).ravel()
    patch = patch - patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm > 1e-3 * patch.size else None


def _plausible(landmarks: np.ndarray, previous: np.ndarray, shape: tuple[int, ...]) -> bool:
    """The fitted face stays in the frame and keeps its size (else the tracker has drifted)."""
    height, width = shape[:2]
    inside = (
        (landmarks[:, 0] >= 0)
        & (landmarks[:, 0] < width)
        & (landmarks[:, 1] >= 0)
        & (landmarks[:, 1] < height)
    )
    scale = _BoxModel.frame(landmarks)[1] / _BoxModel.frame(previous)[1]
    return inside.mean() >= 0.5 and 1 / _MAX_SCALE_CHANGE <= scale <= _MAX_SCALE_CHANGE


def _pick(faces: list[FaceDetection], previous: np.ndarray | None) -> FaceDetection:
    """The detection nearest the tracked face (same person through a redetection), else the best one."""
    if previous is None or len(faces) == 1:
        return faces[0]
    centre = previous[list(STABLE)].mean(axis=0)
    return min(faces, key=lambda f: float(np.linalg.norm(f.landmarks[list(STABLE)].mean(axis=0) - centre)))


def track_landmarks(
    frames: Iterable[np.ndarray],
    detector: LandmarkDetector,
    redetect_every: int = 25,
    progress: bool = False,
    prefer: np.ndarray | None = None,
    first_faces: list[FaceDetection] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """68 landmarks of one face through a video: float32 [T, 68, 2] image pixels and ``found`` bool [T].

    frames: RGB uint8 [H, W, 3] each. The detector runs on the first frame, every ``redetect_every`` frames,
    and whenever tracking is lost; in between, the shape is fitted inside the box that the last detection's
    box model puts around the previous frame's landmarks (about 15x cheaper than detecting). A fit is
    rejected (and the frame re-detected) when it leaves the frame, jumps in size, or its aligned grey patch
    no longer correlates with the last detection's (noise, black or cut frames). Frames with no face get
    ``found = False`` and the landmarks of the nearest found frame (zeros when no frame has a face).
    ``prefer`` [68, 2]: where several faces are found before any is tracked, follow the one nearest it.
    ``first_faces``: the detector's faces in the first frame when the caller has them (not detected again).
    """
    if redetect_every < 1:
        raise ValueError(f"faces.detector.track_landmarks: redetect_every must be >= 1, got {redetect_every}")
    if progress:
        from tqdm.auto import tqdm

        frames = tqdm(frames, desc="landmarks", unit="frame")
    tracks: list[np.ndarray | None] = []
    previous: np.ndarray | None = None
    box_model: _BoxModel | None = None
    reference: np.ndarray | None = None
    since_detection = 0
    for index, frame in enumerate(frames):
        frame = _check_image(frame)
        landmarks = None
        if previous is not None and since_detection < redetect_every:
            fitted = detector.fit(frame, box_model.box(previous))
            patch = _face_patch(frame, fitted) if _plausible(fitted, previous, frame.shape) else None
            if patch is not None and float(patch @ reference) >= _MIN_SIMILARITY:
                landmarks = fitted
        if landmarks is None:
            faces = first_faces if index == 0 and first_faces is not None else detector.detect(frame)
            face = _pick(faces, previous if previous is not None else prefer) if faces else None
            patch = _face_patch(frame, face.landmarks) if face is not None else None
            if patch is not None:
                landmarks, reference, since_detection = face.landmarks, patch, 0
                box_model = _BoxModel.from_detection(face.box, face.landmarks)
        since_detection += 1
        tracks.append(landmarks)
        previous = landmarks
    return _fill_missing(tracks)


def _fill_missing(tracks: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-frame landmarks, filling each missing frame from the nearest found one (earlier on ties)."""
    found = np.array([t is not None for t in tracks], dtype=bool)
    out = np.zeros((len(tracks), NUM_LANDMARKS, 2), dtype=np.float32)
    if found.any():
        index = np.flatnonzero(found)
        out[index] = np.stack([tracks[i] for i in index])
        missing = np.flatnonzero(~found)
        right = np.clip(np.searchsorted(index, missing), 0, len(index) - 1)
        left = np.clip(right - 1, 0, len(index) - 1)
        use_left = np.abs(index[left] - missing) <= np.abs(index[right] - missing)
        out[missing] = out[np.where(use_left, index[left], index[right])]
    return out, found


def smooth_landmarks(landmarks: np.ndarray, found: np.ndarray | None = None, window: int = 5) -> np.ndarray:
    """Remove detector jitter from landmarks [T, 68, 2] with a zero-phase Savitzky-Golay filter over time.

    Each run of consecutive ``found`` frames is smoothed on its own, so filled frames neither bleed into
    nor get blended with real ones (they are returned unchanged). ``window`` frames (odd; 1 = no smoothing)
    with a quadratic fit: jitter goes, real motion keeps its timing. Returns float32 [T, 68, 2].
    """
    landmarks = np.asarray(landmarks, dtype=np.float32)
    dims = check_shape(landmarks, f"T {NUM_LANDMARKS} 2", "landmarks")
    found = np.ones(len(landmarks), dtype=bool) if found is None else np.asarray(found, dtype=bool)
    check_shape(found, "T", "found", dims)
    out = landmarks.copy()
    for start, stop in true_runs(found):
        out[start:stop] = smooth_over_time(landmarks[start:stop], window)
    return out
