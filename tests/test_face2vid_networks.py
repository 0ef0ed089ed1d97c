"""Face2Vid networks: warp, rasteriser, attention, generator, critics (known answers and invariants)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from talking_face.datamodules.faces.landmark_scheme import JAW, NOSE_BASE, NOSE_BRIDGE
from talking_face.lightning_modules.networks.attention import SpatialSelfAttention
from talking_face.lightning_modules.networks.discriminator import MultiScaleDiscriminator
from talking_face.lightning_modules.networks.generator import Face2VidGenerator, GeneratorOutput
from talking_face.lightning_modules.networks.rasterise import (
    SKETCH_CHANNELS,
    SKETCH_PARTS,
    rasterise_landmarks,
    sketch_to_colour,
)
from talking_face.lightning_modules.networks.warp import flow_to_colour, landmark_flow, warp

PART_OF_POINT = {i: c for c, pairs in enumerate(SKETCH_PARTS.values()) for pair in pairs for i in pair}


@pytest.fixture(scope="module")
def photo_landmarks() -> np.ndarray:
    """68 landmarks [68, 2] that the project's detector finds on a real packaged photo, in a 128-px frame."""
    from skimage.data import astronaut

    from talking_face.datamodules.faces.detector import make_detector

    faces = make_detector("dlib").detect(astronaut())
    assert faces, "dlib found no face on skimage's astronaut"
    points = faces[0].landmarks
    low, high = points.min(0), points.max(0)
    scale = 96 / (high - low).max()
    return ((points - (low + high) / 2) * scale + 64).astype(np.float32)


# --- warp -------------------------------------------------------------------------------------------------


def test_warp_with_zero_flow_is_the_identity() -> None:
    for height, width in ((9, 11), (128, 128)):  # exact up to float rounding of the normalised grid
        image = torch.rand(2, 3, height, width)
        assert torch.allclose(warp(image, torch.zeros(2, 2, height, width)), image, atol=2e-5)


def test_warp_moves_the_image_by_a_known_shift() -> None:
    image = torch.rand(1, 3, 8, 10)
    right_by_two = torch.zeros(1, 2, 8, 10)
    right_by_two[:, 0] = -2.0  # backward warp: out(x) = image(x - 2), content moves right
    assert torch.allclose(warp(image, right_by_two)[..., 2:], image[..., :-2], atol=1e-6)
    assert torch.allclose(warp(image, right_by_two)[..., :2], image[..., :1].expand(-1, -1, -1, 2), atol=1e-6)
    up_by_one = torch.zeros(1, 2, 8, 10)
    up_by_one[:, 1] = 1.0  # out(y) = image(y + 1)
    assert torch.allclose(warp(image, up_by_one)[:, :, :-1], image[:, :, 1:], atol=1e-6)
    half = torch.zeros(1, 2, 8, 10)
    half[:, 0] = 0.5  # bilinear: halfway between two pixels
    expected = (image[..., :-1] + image[..., 1:]) / 2
    assert torch.allclose(warp(image, half)[..., :-1], expected, atol=1e-6)


def test_warp_gradients_match_finite_differences() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    flow = (0.1 + 0.3 * torch.rand(1, 2, 4, 5, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(warp, (image, flow), eps=1e-6, atol=1e-5)


def test_warp_rejects_a_flow_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"flow \[B, 2, H, W\]"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 7))
    with pytest.raises(ValueError, match="image"):
        warp(torch.rand(3, 8, 8), torch.zeros(1, 2, 8, 8))


def test_flow_colours_zero_white_and_direction_by_hue() -> None:
    flow = torch.zeros(1, 2, 4, 4)
    flow[..., :2] = torch.tensor([3.0, 0.0]).view(1, 2, 1, 1)  # left half points right
    colour = flow_to_colour(flow)
    assert colour.shape == (1, 3, 4, 4) and colour.min() >= 0 and colour.max() <= 1
    assert torch.allclose(colour[..., 2:], torch.ones(1, 3, 4, 2), atol=1e-5)  # no motion: white
    red, green, blue = colour[0, :, 0, 0]
    assert red > 0.9 and green < 0.1 and blue < 0.1  # pointing right: red
    flow[..., :2] = torch.tensor([-3.0, 0.0]).view(1, 2, 1, 1)  # the opposite direction: the opposite hue
    red, green, blue = flow_to_colour(flow)[0, :, 0, 0]
    assert red < 0.1 and green > 0.9 and blue > 0.9


def test_landmark_flow_moves_pixels_with_their_landmarks() -> None:
    target = torch.tensor([[[10.0, 10.0], [30.0, 20.0]]])
    source = target + torch.tensor([[[2.0, -1.0], [-3.0, 0.5]]])
    flow = landmark_flow(target, source, 40, sigma=1.0)
    assert flow.shape == (1, 2, 40, 40)
    ratio = 1 / (1 + 0.05)  # the normalised weight at a point that stands alone
    assert torch.allclose(flow[0, :, 10, 10], torch.tensor([2.0, -1.0]) * ratio, atol=1e-4)
    assert torch.allclose(flow[0, :, 20, 30], torch.tensor([-3.0, 0.5]) * ratio, atol=1e-4)
    assert flow[0, :, 30:, :].abs().max() == 0 and flow[0, :, :, 35:].abs().max() == 0  # far away: still
    assert flow[0, 0, 10, 11] < flow[0, 0, 10, 10]  # fading out around a point
    # warping an image with its landmarks' flow moves its content onto the target landmarks
    image = torch.zeros(1, 1, 40, 40)
    image[0, 0, 9, 12] = 1.0  # a dot at the first source point (12, 9)
    moved = warp(image, landmark_flow(target, source, 40, sigma=2.0))
    assert moved[0, 0].argmax() == 10 * 40 + 10
    with pytest.raises(ValueError, match=r"\[B, P, 2\]"):
        landmark_flow(target, source[:, :1], 40)


# --- rasteriser -------------------------------------------------------------------------------------------


def test_rasteriser_draws_each_real_landmark_in_its_part(photo_landmarks: np.ndarray) -> None:
    sketch = rasterise_landmarks(torch.from_numpy(photo_landmarks)[None], 128)
    assert sketch.shape == (1, SKETCH_CHANNELS, 128, 128) and sketch.max() <= 1.0
    for index, (x, y) in enumerate(photo_landmarks):
        part = PART_OF_POINT[index]
        value = sketch[0, part, round(float(y)), round(float(x))]
        assert value > 0.75, (index, float(value))  # within half a pixel diagonal: exp(-0.5 / 2) = 0.78
    # the jaw channel is dark in the middle of the face, the lips channels are dark on the forehead
    centre = photo_landmarks[NOSE_BRIDGE].mean(0).round().astype(int)
    assert sketch[0, list(SKETCH_PARTS).index("jaw"), centre[1], centre[0]] < 1e-3
    assert sketch[0, list(SKETCH_PARTS).index("outer_lips"), 5, 64] == 0


def test_rasteriser_draws_lines_where_they_are() -> None:
    points = torch.full((1, 68, 2), 50.0)
    points[0, JAW, 0] = torch.linspace(10, 40, len(JAW))  # the jaw: a horizontal line at y = 20
    points[0, JAW, 1] = 20.0
    points[0, NOSE_BASE] = torch.tensor([30.5, 8.0])  # the nose base collapses to a dot between two pixels
    points[0, NOSE_BRIDGE] = torch.tensor([30.5, 8.0])
    sketch = rasterise_landmarks(points, 64, sigma=1.0)
    jaw, nose = sketch[0, 0], sketch[0, list(SKETCH_PARTS).index("nose")]
    assert torch.allclose(jaw[20, 10:41], torch.ones(31))
    assert torch.allclose(jaw[22, 10:41], torch.full((31,), float(np.exp(-2.0))), atol=1e-6)
    assert jaw[20, :5].max() < 1e-3 and jaw[30].max() < 1e-10
    assert nose[8, 30] == pytest.approx(nose[8, 31]) and nose[8, 30] == pytest.approx(
        np.exp(-0.125), abs=1e-6
    )
    assert nose.argmax() // 64 == 8
    assert sketch[0, list(SKETCH_PARTS).index("inner_lips")].argmax() == 50 * 64 + 50


def test_rasteriser_equals_the_whole_image_formula(photo_landmarks: np.ndarray) -> None:
    """Drawing each segment in a window around it gives the image-wide result (up to the 3-sigma cut)."""
    landmarks = torch.from_numpy(photo_landmarks)[None]
    size, sigma = 64, 1.5
    points = landmarks[0] * 0.5
    axis = torch.arange(size, dtype=torch.float32)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    expected = torch.zeros(SKETCH_CHANNELS, size, size)
    for channel, pairs in enumerate(SKETCH_PARTS.values()):
        for a, b in pairs:
            start, direction = points[a], points[b] - points[a]
            along = (
                (xs - start[0]) * direction[0] + (ys - start[1]) * direction[1]
            ) / direction.square().sum().clamp_min(1e-6)
            along = along.clamp(0, 1)
            d2 = (xs - start[0] - along * direction[0]) ** 2 + (ys - start[1] - along * direction[1]) ** 2
            expected[channel] = torch.maximum(expected[channel], torch.exp(-d2 / (2 * sigma**2)))
    got = rasterise_landmarks(points[None], size, sigma)[0]
    assert (got - expected).abs().max() < np.exp(-4.5)


def test_rasteriser_batches_and_checks_inputs(photo_landmarks: np.ndarray) -> None:
    one = torch.from_numpy(photo_landmarks)
    two = one + torch.tensor([5.0, -3.0])
    batch = rasterise_landmarks(torch.stack([one, two]), 128)
    assert torch.equal(batch[1:], rasterise_landmarks(two[None], 128))
    assert sketch_to_colour(batch).shape == (2, 3, 128, 128)
    bad = one.clone()[None]
    bad[0, 50] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rasterise_landmarks(bad, 128)
    with pytest.raises(ValueError, match=r"\[B, 68, 2\]"):
        rasterise_landmarks(one, 128)


# --- attention --------------------------------------------------------------------------------------------


def test_attention_is_the_identity_at_init() -> None:
    block = SpatialSelfAttention(16, heads=4)
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(block(x), x)


def test_attention_is_permutation_consistent() -> None:
    torch.manual_seed(0)
    block = SpatialSelfAttention(16, heads=4)
    with torch.no_grad():
        block.gate.fill_(1.0)
    x = torch.randn(2, 16, 4, 6)
    order = torch.randperm(24)
    permute = lambda t: t.flatten(2)[..., order].view_as(t)  # noqa: E731
    out = block(x)
    assert not torch.allclose(out, x, atol=1e-3)  # it does something
    assert torch.allclose(block(permute(x)), permute(out), atol=1e-5)


def test_attention_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"\[B, 16, H, W\]"):
        SpatialSelfAttention(16)(torch.randn(1, 8, 4, 4))


# --- generator --------------------------------------------------------------------------------------------


def _generator_inputs(batch: int = 2, size: int = 32, k: int = 2) -> dict[str, torch.Tensor]:
    return {
        "sketch": torch.rand(batch, SKETCH_CHANNELS, size, size),
        "reference": torch.rand(batch, 3, size, size),
        "reference_sketch": torch.rand(batch, SKETCH_CHANNELS, size, size),
        "previous": torch.rand(batch, k, 3, size, size),
        "previous_sketches": torch.rand(batch, k, SKETCH_CHANNELS, size, size),
    }


@pytest.mark.parametrize(
    ("use_flow", "use_attention", "use_reference_warp"), list(itertools.product([True, False], repeat=3))
)
def test_generator_shapes_and_composition(
    use_flow: bool, use_attention: bool, use_reference_warp: bool
) -> None:
    torch.manual_seed(0)
    generator = Face2VidGenerator(
        channels=8, use_flow=use_flow, use_attention=use_attention, use_reference_warp=use_reference_warp
    )
    nn_motion = generator.motion_head
    if nn_motion is not None:  # leave the identity init so the composition is not trivial
        torch.nn.init.normal_(nn_motion.weight, std=0.1)
    inputs = _generator_inputs()
    out = generator(**inputs)
    assert out.frame.shape == (2, 3, 32, 32) and out.hallucinated.shape == (2, 3, 32, 32)
    assert out.frame.min() >= 0 and out.frame.max() <= 1
    for name in ("flow", "mask", "warped_previous"):
        assert (getattr(out, name) is None) != use_flow
    for name in ("reference_flow", "reference_mask", "warped_reference"):
        assert (getattr(out, name) is None) != use_reference_warp
    appearance = out.hallucinated
    if use_reference_warp:
        assert out.reference_flow.shape == (2, 2, 32, 32) and out.reference_mask.shape == (2, 1, 32, 32)
        assert torch.allclose(out.warped_reference, warp(inputs["reference"], out.reference_flow))
        appearance = out.reference_mask * out.warped_reference + (1 - out.reference_mask) * out.hallucinated
    expected = appearance
    if use_flow:
        assert torch.allclose(out.warped_previous, warp(inputs["previous"][:, -1], out.flow))
        expected = out.mask * out.warped_previous + (1 - out.mask) * appearance
    assert torch.allclose(out.frame, expected, atol=1e-6)
    assert sum(p.numel() for p in generator.parameters()) > 0


def test_generator_starts_by_copying_the_warped_frames() -> None:
    inputs = _generator_inputs()
    out = Face2VidGenerator(channels=8)(**inputs)
    assert torch.equal(out.flow, torch.zeros_like(out.flow))
    assert torch.allclose(out.warped_previous, inputs["previous"][:, -1], atol=2e-5)
    # and mostly copies them: masks at sigmoid(2) = 0.88 on the warped previous frame and the warped reference
    assert torch.allclose(out.mask, torch.full_like(out.mask, 0.8808), atol=1e-4)
    assert torch.allclose(out.reference_mask, torch.full_like(out.mask, 0.8808), atol=1e-4)


def test_generator_flows_start_from_the_landmark_priors() -> None:
    inputs = _generator_inputs()
    priors = {"reference_prior": torch.randn(2, 2, 32, 32), "previous_prior": torch.randn(2, 2, 32, 32)}
    out = Face2VidGenerator(channels=8)(**inputs, **priors)  # zero corrections at init
    assert torch.equal(out.flow, priors["previous_prior"])
    assert torch.equal(out.reference_flow, priors["reference_prior"])
    assert torch.allclose(out.warped_previous, warp(inputs["previous"][:, -1], priors["previous_prior"]))
    with pytest.raises(ValueError, match="reference_prior must be"):
        Face2VidGenerator(channels=8)(**inputs, reference_prior=torch.zeros(2, 2, 16, 16))


def test_generator_without_flow_ignores_previous_frames() -> None:
    generator = Face2VidGenerator(channels=8, use_flow=False).eval()
    inputs = _generator_inputs()
    a = generator(**inputs).frame
    b = generator(**(inputs | {"previous": None, "previous_sketches": None})).frame
    assert torch.equal(a, b)


def test_generator_output_stack_and_map() -> None:
    outs = [Face2VidGenerator(channels=8)(**_generator_inputs()) for _ in range(3)]
    stacked = GeneratorOutput.stack(outs)
    assert stacked.frame.shape == (2, 3, 3, 32, 32) and stacked.flow.shape == (2, 3, 2, 32, 32)
    assert stacked.map(lambda x: x[:, 1]).mask.shape == (2, 1, 32, 32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sketch": torch.rand(2, SKETCH_CHANNELS, 36, 36)}, "multiple of 8"),
        ({"reference": torch.rand(2, 3, 16, 16)}, "reference must be"),
        ({"previous": torch.rand(2, 1, 3, 32, 32)}, "needs K=2 previous frames"),
        ({"previous": None}, "needs previous frames"),
        ({"sketch": torch.full((2, SKETCH_CHANNELS, 32, 32), float("nan"))}, "NaN"),
        ({"reference_sketch": torch.rand(2, 3, 32, 32)}, "reference_sketch must be"),
    ],
)
def test_generator_rejects_bad_inputs(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Face2VidGenerator(channels=8)(**(_generator_inputs() | change))


# --- discriminators ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_attention", [True, False])
def test_discriminator_returns_features_per_scale(use_attention: bool) -> None:
    critic = MultiScaleDiscriminator(9, num_scales=2, channels=8, layers=3, use_attention=use_attention)
    scores = critic(torch.rand(2, 9, 64, 64))
    assert len(scores) == 2
    assert scores[0][-1].shape == (2, 1, 8, 8) and scores[1][-1].shape == (2, 1, 4, 4)
    assert len(scores[0]) == 3 + 2 + use_attention  # stride-2 layers, [attention], conv, logits
    assert all(f.shape[0] == 2 for scale in scores for f in scale)
    convs = [m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)  # spectral norm everywhere
    assert any(isinstance(m, SpatialSelfAttention) for m in critic.modules()) == use_attention
    with pytest.raises(ValueError, match=r"\[B, 9, H, W\]"):
        critic(torch.rand(2, 3, 64, 64))
