"""Face alignment: template, crop transforms, warps and the face-normalised frame, on real packaged photos."""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
import torch

from talking_face.datamodules.faces.alignment import (
    INTEROCULAR,
    MIRROR_68,
    MOUTH_CENTRE,
    TEMPLATE_68,
    TEMPLATE_STABLE,
    derive_template,
    estimate_crop_transform,
    face_denormalise,
    face_normalise,
    invert_transform,
    pixels_per_unit,
    similarity_fit,
    smooth_transforms,
    template_points,
    transform_points,
    warp_to_crop,
)
from talking_face.datamodules.faces.detector import make_detector
from talking_face.datamodules.faces.landmark_scheme import STABLE


@pytest.fixture(scope="module")
def detector():
    return make_detector("dlib")


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    grace = iio.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return {"astronaut": skimage.data.astronaut(), "grace": grace}


def similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = scale * np.exp(1j * np.deg2rad(angle_deg))
    return np.array([[a.real, -a.imag, shift[0]], [a.imag, a.real, shift[1]]])


def test_template_is_a_symmetric_upright_whole_face_in_the_square():
    assert TEMPLATE_68.shape == (68, 2) and TEMPLATE_STABLE.shape == (len(STABLE), 2)
    mirrored = TEMPLATE_68[list(MIRROR_68)] * [-1, 1] + [1, 0]
    np.testing.assert_allclose(mirrored, TEMPLATE_68, atol=2e-4)
    assert np.all((TEMPLATE_68 > 0.05) & (TEMPLATE_68 < 0.95))
    assert TEMPLATE_68[36, 1] == pytest.approx(TEMPLATE_68[45, 1], abs=1e-4)  # eye line horizontal
    assert (
        MOUTH_CENTRE[0] == pytest.approx(0.5, abs=1e-4)
        and TEMPLATE_68[45, 1] < MOUTH_CENTRE[1] < TEMPLATE_68[8, 1]
    )
    assert pytest.approx(np.linalg.norm(TEMPLATE_68[45] - TEMPLATE_68[36])) == INTEROCULAR


def test_template_numbers_reproduce_from_the_real_photos(detector, photos):
    shapes = np.stack([detector.detect(photo)[0].landmarks for photo in photos.values()])
    np.testing.assert_allclose(derive_template(shapes), TEMPLATE_68, atol=2e-3)


def test_similarity_fit_recovers_a_known_similarity():
    src = np.random.default_rng(0).uniform(0, 100, (5, 13, 2))
    truth = similarity(23.0, 1.7, (-12.0, 40.0))
    fitted = similarity_fit(src, transform_points(src, truth))
    assert fitted.shape == (5, 2, 3)
    np.testing.assert_allclose(fitted, np.broadcast_to(truth, (5, 2, 3)), atol=1e-9)
    with pytest.raises(ValueError, match="degenerate"):
        similarity_fit(np.zeros((13, 2)), src[0])


@pytest.mark.parametrize("crop_size", [128, 256])
def test_crop_transform_puts_stable_points_on_the_template(crop_size):
    motion = similarity(-31.0, 2.3, (80.0, 15.0))  # template crop pixels -> "image"
    landmarks = transform_points(template_points(crop_size, TEMPLATE_68), motion)
    transform = estimate_crop_transform(landmarks, crop_size)
    np.testing.assert_allclose(transform, invert_transform(motion), atol=1e-9)
    batched = estimate_crop_transform(np.stack([landmarks, landmarks + 3.0]), crop_size)
    assert batched.shape == (2, 2, 3)
    np.testing.assert_allclose(
        transform_points(landmarks + 3.0, batched[1]), transform_points(landmarks, transform)
    )


def test_transform_and_inverse_round_trip():
    rng = np.random.default_rng(1)
    transforms = np.stack(
        [similarity(a, s, (x, y)) for a, s, x, y in rng.uniform(-90, 90, (4, 4)) * [1, 0.02, 1, 1]]
    )
    transforms[:, :, :2] += rng.normal(0, 0.1, (4, 2, 2))  # any affine
    points = rng.uniform(-50, 50, (4, 68, 2))
    back = transform_points(transform_points(points, transforms), invert_transform(transforms))
    np.testing.assert_allclose(back, points, atol=1e-9)
    single = transform_points(points[0, :3], transforms[0])
    np.testing.assert_allclose(single, transform_points(points[:1, :3], transforms[:1])[0])
    np.testing.assert_allclose(transform_points(transform_points(points[0], invert_transform(transforms[0])),
                                                transforms[0]), points[0], atol=1e-9)  # fmt: skip


def test_crop_undoes_head_motion_on_a_real_photo(detector, photos):
    """Rotating, scaling and shifting the photo does not move the face in the aligned crop."""
    photo = photos["grace"]
    motion = similarity(12.0, 0.8, (0.0, 0.0))
    motion[:, 2] += (40.0, -30.0) + (np.eye(2) - motion[:, :2]) @ (256.0, 300.0)  # about the photo centre
    moved = cv2.warpAffine(photo, motion, (photo.shape[1], photo.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    crop_size = 128
    crops, aligned = [], []
    for image in (photo, moved):
        landmarks = detector.detect(image)[0].landmarks
        transform = estimate_crop_transform(landmarks, crop_size)
        aligned.append(transform_points(landmarks, transform))
        crops.append(warp_to_crop(image, transform, crop_size).astype(np.float32))
    stable = list(STABLE)
    assert np.linalg.norm(aligned[0][stable] - aligned[1][stable], axis=-1).mean() < 1.5
    assert np.linalg.norm(aligned[0] - aligned[1], axis=-1).mean() < 2.0
    centre = slice(crop_size // 4, 3 * crop_size // 4)
    assert np.abs(crops[0][centre, centre] - crops[1][centre, centre]).mean() < 12  # of 255


def test_crops_at_128_and_256_show_the_same_face(detector, photos):
    photo = photos["astronaut"]
    landmarks = detector.detect(photo)[0].landmarks
    small = warp_to_crop(photo, estimate_crop_transform(landmarks, 128), 128)
    large = warp_to_crop(photo, estimate_crop_transform(landmarks, 256), 256)
    assert small.shape == (128, 128, 3) and large.shape == (256, 256, 3) and large.dtype == np.uint8
    halved = cv2.resize(large, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(halved - small).mean() < 6
    # Crop pixels scale with the crop: p_256 = 2 p_128 + 0.5 (pixel centres).
    at_128 = transform_points(landmarks, estimate_crop_transform(landmarks, 128))
    np.testing.assert_allclose(
        transform_points(landmarks, estimate_crop_transform(landmarks, 256)), 2 * at_128 + 0.5
    )


def test_downscaling_warp_is_antialiased(photos):
    photo = photos["astronaut"]
    transform = similarity(0.0, 0.2, (-20.0, -10.0))  # 512 -> about 100 px
    crop = warp_to_crop(photo, transform, 64).astype(np.float32)
    reference = cv2.resize(photo, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    shifted = cv2.warpAffine(reference, np.array([[1.0, 0, -20 + 0.4], [0, 1, -10 + 0.4]]), (64, 64))
    assert np.abs(crop - shifted).mean() < 6


def test_smooth_transforms_keeps_similarities_and_removes_jitter():
    t = np.arange(60)
    angles, scales, shifts = 170 + 0.5 * t, 1 + 0.002 * t, 2.0 * t  # the angle crosses 180 degrees
    clean = np.stack([similarity(a, s, (x, 3.0)) for a, s, x in zip(angles, scales, shifts, strict=True)])
    rng = np.random.default_rng(2)
    jitter = rng.normal(0, [0.5, 0.003, 0.5, 0.5], (60, 4))  # degrees, relative scale, pixels
    noisy = np.stack(
        [
            similarity(a + da, s * (1 + ds), (x + dx, 3.0 + dy))
            for a, s, x, (da, ds, dx, dy) in zip(angles, scales, shifts, jitter, strict=True)
        ]
    )
    smoothed = smooth_transforms(noisy, window=9)
    assert smoothed.shape == (60, 2, 3)
    np.testing.assert_allclose(smoothed[:, 0, 0], smoothed[:, 1, 1], atol=1e-9)  # still similarities
    np.testing.assert_allclose(smoothed[:, 0, 1], -smoothed[:, 1, 0], atol=1e-9)
    np.testing.assert_allclose(smooth_transforms(clean, window=9), clean, atol=1e-2)  # smooth motion kept
    probe = np.broadcast_to(np.array([[50.0, 60.0], [80.0, 90.0]]), (60, 2, 2))
    truth = transform_points(probe, clean)
    error_noisy = np.abs(transform_points(probe, noisy) - truth).mean()
    assert np.abs(transform_points(probe, smoothed) - truth).mean() < 0.6 * error_noisy


@pytest.mark.parametrize("crop_size", [128, 256])
def test_face_normalised_frame(crop_size):
    template = template_points(crop_size, TEMPLATE_68)
    normalised = face_normalise(template, crop_size)
    mouth = normalised[48:68].mean(axis=0)
    np.testing.assert_allclose(mouth, 0.0, atol=1e-5)  # origin at the template's mouth centre
    assert np.linalg.norm(normalised[45] - normalised[36]) == pytest.approx(
        1.0, abs=1e-5
    )  # unit: inter-ocular
    assert pixels_per_unit(crop_size) == pytest.approx(np.linalg.norm(template[45] - template[36]))
    points = np.random.default_rng(3).uniform(0, crop_size, (7, 20, 2)).astype(np.float32)
    np.testing.assert_allclose(
        face_denormalise(face_normalise(points, crop_size), crop_size), points, atol=1e-3
    )
    tensor = torch.from_numpy(points)
    as_tensor = face_normalise(tensor, crop_size)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_tensor.numpy(), face_normalise(points, crop_size), atol=1e-6)
    torch.testing.assert_close(face_denormalise(as_tensor, crop_size), tensor, atol=1e-3, rtol=0)


def test_normalised_frame_is_the_same_at_every_crop_size():
    points_128 = np.array([[40.0, 90.0], [70.5, 81.25]])
    np.testing.assert_allclose(face_normalise(points_128, 128), face_normalise(2 * points_128 + 0.5, 256))
