"""The dlib landmark detector and tracker on real packaged photos (astronaut, Grace Hopper)."""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data

from talking_face.datamodules.faces.alignment import transform_points
from talking_face.datamodules.faces.detector import (
    DlibDetector,
    FaceDetection,
    make_detector,
    smooth_landmarks,
    track_landmarks,
)
from talking_face.datamodules.faces.landmark_scheme import INNER_LIP, LEFT_EYE, MOUTH, NOSE_BASE, RIGHT_EYE

GRID_SIZE = (360, 288)  # (width, height) of a GRID corpus video frame


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    return make_detector("dlib")


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    grace = iio.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return {"astronaut": skimage.data.astronaut(), "grace": grace}


def video_frame(photo: np.ndarray) -> np.ndarray:
    """The photo scaled to the height of a GRID frame, centred on grey: a ~90-px face."""
    width, height = GRID_SIZE
    scale = height / photo.shape[0]
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 128, np.uint8)
    left = (width - small.shape[1]) // 2
    frame[:, left : left + small.shape[1]] = small
    return frame


class CountingDetector:
    """A `LandmarkDetector` that counts how often `track_landmarks` detects and fits."""

    name = "counting"

    def __init__(self, inner: DlibDetector) -> None:
        self.inner, self.detects, self.fits = inner, 0, 0

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        self.detects += 1
        return self.inner.detect(image)

    def fit(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        self.fits += 1
        return self.inner.fit(image, box)


@pytest.mark.parametrize("name", ["astronaut", "grace"])
def test_one_face_with_plausible_landmarks_on_real_photos(detector, photos, name):
    faces = detector.detect(photos[name])
    assert len(faces) == 1
    face = faces[0]
    points = face.landmarks
    assert points.shape == (68, 2) and points.dtype == np.float32
    x0, y0, x1, y1 = face.box
    size = x1 - x0
    assert size > 50 and face.score > 0.2
    # The inner face (brows, eyes, nose, mouth) lies in the box; the jaw may reach a little beyond it.
    inner = points[17:]
    assert np.all((inner >= np.array([x0, y0]) - 0.05 * size) & (inner <= np.array([x1, y1]) + 0.05 * size))
    assert np.all((points >= np.array([x0, y0]) - 0.2 * size) & (points <= np.array([x1, y1]) + 0.2 * size))
    # Upright face: eyes above the nose base above the mouth above the chin.
    eyes_y = points[[*RIGHT_EYE, *LEFT_EYE], 1].mean()
    assert eyes_y < points[list(NOSE_BASE), 1].mean() < points[list(MOUTH), 1].mean() < points[8, 1]
    # The subject's right is on the image's left: jaw 0 < 16, right eye < left eye, mouth corner 48 < 54.
    assert points[0, 0] < points[16, 0]
    assert points[list(RIGHT_EYE), 0].max() < points[list(LEFT_EYE), 0].min()
    assert points[48, 0] < points[list(INNER_LIP), 0].mean() < points[54, 0]


def test_fit_in_the_detected_box_reproduces_the_detection(detector, photos):
    face = detector.detect(photos["grace"])[0]
    np.testing.assert_allclose(detector.fit(photos["grace"], face.box), face.landmarks, atol=1e-4)
    # dlib's points are integers; fitting on the box resampled to `fit_size` gives sub-pixel landmarks.
    assert np.any(face.landmarks % 1 != 0)
    assert not np.any(make_detector(fit_size=0).fit(photos["grace"], face.box) % 1 != 0)


@pytest.mark.parametrize("image", ["coffee", "grey"])
def test_no_face(detector, image):
    frame = skimage.data.coffee() if image == "coffee" else np.full((288, 360, 3), 128, np.uint8)
    assert detector.detect(frame) == []


def test_two_faces_side_by_side_best_first(detector, photos):
    astronaut = photos["astronaut"]
    grace = cv2.resize(photos["grace"], (round(512 * 512 / 600), 512), interpolation=cv2.INTER_AREA)
    faces = detector.detect(np.concatenate([astronaut, grace], axis=1))
    assert len(faces) == 2
    centres_x = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centres_x[0] < 512 < centres_x[1]
    rank = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) * f.score for f in faces]
    assert rank[0] >= rank[1]


def test_upsampling_finds_small_faces(photos):
    """A ~50-px face (astronaut in a GRID-sized frame) is below the 80-px HOG window without upsampling."""
    frame = video_frame(photos["astronaut"])
    assert len(make_detector(upsample=1).detect(frame)) == 1
    assert len(make_detector(upsample=0).detect(frame)) == 0


def test_bad_input_and_unknown_name(detector):
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(KeyError, match="unknown detector"):
        make_detector("no-such-detector")


def moving_sequence(frame: np.ndarray, length: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``frame`` under a known similarity motion (roll +-8 deg, scale +-8 %, shifts), and the motions."""
    height, width = frame.shape[:2]
    motions = []
    for t in range(length):
        motion = cv2.getRotationMatrix2D(
            (width / 2, height / 2.4), 8 * np.sin(2 * np.pi * t / 40), 1 + 0.08 * np.sin(2 * np.pi * t / 33)
        )
        motion[:, 2] += (20 * np.sin(2 * np.pi * t / 50), 0.4 * t)
        motions.append(motion)
    frames = [cv2.warpAffine(frame, m, (width, height), borderMode=cv2.BORDER_REPLICATE) for m in motions]
    return frames, motions


def test_tracking_follows_known_motion_mostly_by_fitting(detector, photos):
    frame = video_frame(photos["grace"])
    frames, motions = moving_sequence(frame, 50)
    first = detector.detect(frame)[0].landmarks
    truth = np.stack([transform_points(first, m) for m in motions])
    counting = CountingDetector(detector)
    landmarks, found = track_landmarks(frames, counting, redetect_every=25)
    assert landmarks.shape == (50, 68, 2) and landmarks.dtype == np.float32 and found.all()
    assert counting.detects == 2 and counting.fits == 48  # frames 0 and 25 detected, the rest tracked
    error = np.linalg.norm(landmarks - truth, axis=-1)
    assert error.mean() < 1.5 and np.median(error[:, 17:]) < 1.5 and error.mean(axis=1).max() < 3.0


def test_tracking_takes_the_first_frames_faces_when_given(detector, photos):
    frames, _ = moving_sequence(video_frame(photos["grace"]), 30)
    expected = track_landmarks(frames, detector, redetect_every=25)
    counting = CountingDetector(detector)
    landmarks, found = track_landmarks(
        frames, counting, redetect_every=25, first_faces=detector.detect(frames[0])
    )
    assert counting.detects == 1  # frame 25 only: frame 0's faces were given
    np.testing.assert_array_equal(landmarks, expected[0])
    np.testing.assert_array_equal(found, expected[1])


def test_tracking_marks_and_fills_frames_without_a_face(detector, photos):
    frames, _ = moving_sequence(video_frame(photos["grace"]), 16)
    rng = np.random.default_rng(0)
    frames[4] = rng.integers(0, 256, frames[4].shape, dtype=np.uint8)
    frames[5] = np.zeros_like(frames[5])
    frames[6] = np.zeros_like(frames[6])
    frames[11] = cv2.resize(skimage.data.coffee(), GRID_SIZE)
    landmarks, found = track_landmarks(frames, detector)
    missing = [4, 5, 6, 11]
    assert np.flatnonzero(~found).tolist() == missing
    # Filled from the nearest found frame, the earlier one on a tie.
    for index, source in zip(missing, [3, 3, 7, 10], strict=True):
        np.testing.assert_array_equal(landmarks[index], landmarks[source])


def test_tracking_with_no_face_at_all_does_not_crash(detector):
    landmarks, found = track_landmarks([np.full((96, 128, 3), 90, np.uint8)] * 3, detector)
    assert landmarks.shape == (3, 68, 2) and not found.any() and not landmarks.any()


def test_smoothing_removes_jitter_without_lag():
    t = np.arange(40, dtype=np.float32)
    motion = np.stack([0.05 * t**2, 3.0 * t], axis=-1)  # quadratic motion: kept exactly by the filter
    clean = np.broadcast_to(motion[:, None], (40, 68, 2)) + np.random.default_rng(0).normal(0, 20, (1, 68, 2))
    jitter = np.random.default_rng(1).normal(0, 0.7, clean.shape)
    smoothed = smooth_landmarks(clean + jitter, window=7)
    assert smoothed.shape == clean.shape and smoothed.dtype == np.float32
    np.testing.assert_allclose(smooth_landmarks(clean, window=7), clean, atol=1e-3)  # no lag on motion
    assert np.abs(smoothed - clean).std() < 0.6 * jitter.std()
    np.testing.assert_array_equal(
        smooth_landmarks(clean + jitter, window=1), (clean + jitter).astype(np.float32)
    )


def test_smoothing_leaves_filled_frames_alone():
    landmarks = np.random.default_rng(0).normal(0, 1, (12, 68, 2)).astype(np.float32)
    found = np.ones(12, bool)
    found[5:7] = False
    smoothed = smooth_landmarks(landmarks, found, window=5)
    np.testing.assert_array_equal(smoothed[5:7], landmarks[5:7])
    # Each found run is smoothed on its own: the frames after the gap do not see those before it.
    np.testing.assert_array_equal(smoothed[7:], smooth_landmarks(landmarks[7:], window=5))
    assert not np.allclose(smoothed[:5], landmarks[:5])
