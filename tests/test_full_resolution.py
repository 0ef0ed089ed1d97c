"""Full-resolution rendering: the source's pixels warped at its resolution, the network's inside the lips.

Known answers for the warp (a shift is a shift, landmarks land where they are sent, nothing outside the
falloff changes), the benchmark's measure of flicker inside the mouth (zero for a still mouth, and for one
that moves as its landmarks say), then the product with a tiny random Face2Vid: output size = input size
(no 1024 cap), ``max_side`` shrinks, a photo does not drift, a dubbed clip keeps its size, and the rollout
without Lightning makes the module's frames.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from generation_media import photo_file, spoken, write_clip, write_speech

from talking_face.datamodules.faces.alignment import TEMPLATE_68, template_points
from talking_face.generation.checkpoints import load_mouth_predictor, shipped_checkpoint
from talking_face.generation.full_resolution import (
    mouth_interior,
    newly_visible,
    render_frame,
    warp_field,
)
from talking_face.generation.mouth_calibration import closed_gap
from talking_face.generation.pipeline import TalkingFacePipeline
from talking_face.lightning_modules.rollout import FrameRollout, generate_video

SIZE = 64


def _face(size: int = SIZE) -> np.ndarray:
    return template_points(size, TEMPLATE_68).astype(np.float64)


def _open_mouth(points: np.ndarray, drop: float) -> np.ndarray:
    """``points`` with the lower lip (outer 55-59, inner 65-67) moved down by ``drop`` pixels."""
    moved = points.copy()
    moved[[55, 56, 57, 58, 59, 65, 66, 67], 1] += drop
    return moved


def _textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _frame_box(field, transform: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool [H, W]: the frame pixels of the field's box (everything the renderer may touch)."""
    import cv2

    inverse = cv2.invertAffineTransform(transform)
    x0, y0, x1, y1 = field.box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) @ inverse[:, :2].T + inverse[:, 2]
    (fx0, fy0), (fx1, fy1) = np.floor(corners.min(0)) - 1, np.ceil(corners.max(0)) + 2
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    return (columns >= fx0) & (columns < fx1) & (rows >= fy0) & (rows < fy1)


# --- the warp -----------------------------------------------------------------------------------------------


def test_field_sends_each_landmark_to_its_source_and_is_zero_beyond_the_falloff():
    source = _face()
    target = _open_mouth(source, 4.0)
    field = warp_field(target, source, SIZE)
    grid = (target - field.origin) / field.step  # landmarks on the field's grid
    import cv2

    flow = cv2.remap(field.flow, *grid[None].astype(np.float32).transpose(2, 0, 1), cv2.INTER_LINEAR)[0]
    moved = [57, 66]
    np.testing.assert_allclose(flow[moved], (source - target)[moved], atol=0.2)  # the lower lip reads 4 px up
    assert np.abs(flow[[27, 30, 36, 45]]).max() < 0.5  # nose and eyes nearly still
    border = np.concatenate([field.flow[0], field.flow[-1], field.flow[:, 0], field.flow[:, -1]])
    assert np.abs(border).max() == 0.0  # the falloff reaches exactly 0 at the field's edge
    assert warp_field(source, source, SIZE).box is None  # nothing moves: nothing to do


def test_a_shifted_face_is_the_source_shifted_exactly():
    source = _face()
    image = _textured(120, 140)
    transform = np.array(
        [[1.0, 0.0, -30.0], [0.0, 1.0, -20.0]]
    )  # frame -> crop: crop (0, 0) = frame (30, 20)
    field = warp_field(source + np.array([2.0, 0.0]), source, SIZE)  # the whole head 2 px to the right
    out = render_frame(image, transform, field)
    # the face's centre (crop 32, 36 -> frame 62, 56): within the inner falloff the content moved by 2 px
    np.testing.assert_array_equal(out[46:66, 52:72], image[46:66, 50:70])


def test_pixels_outside_the_moving_region_are_the_source_bit_for_bit():
    source = _face()
    image = _textured(150, 170, seed=1)
    transform = np.array([[0.8, 0.1, -30.0], [-0.1, 0.8, -10.0]])  # scaled and rotated
    target = _open_mouth(source, 5.0)
    field = warp_field(target, source, SIZE)
    made = np.full((SIZE, SIZE, 3), 30, np.uint8)
    inside, lips = mouth_interior(target, SIZE)
    out = render_frame(image, transform, field, made, inside, lips)
    assert out.shape == image.shape and out.dtype == np.uint8
    region = _frame_box(field, transform, image.shape[:2])
    assert 0.1 < region.mean() < 0.9
    np.testing.assert_array_equal(out[~region], image[~region])
    changed = (out != image).any(-1)
    assert changed.sum() > 50  # the lips moved
    assert changed[region].mean() < 0.6  # and not the whole region: where the flow is 0 the source stays


def test_a_frame_written_into_a_buffer_is_the_frame_returned():
    source = _face()
    image = _textured(150, 170, seed=2)
    transform = np.array([[0.8, 0.1, -30.0], [-0.1, 0.8, -10.0]])
    target = _open_mouth(source, 5.0)
    field = warp_field(target, source, SIZE)
    made = np.full((SIZE, SIZE, 3), 30, np.uint8)
    inside, lips = mouth_interior(target, SIZE)
    buffer = np.full_like(image, 7)  # stale content: every pixel must be overwritten
    out = render_frame(image, transform, field, made, inside, lips, out=buffer)
    assert out is buffer
    np.testing.assert_array_equal(buffer, render_frame(image, transform, field, made, inside, lips))


def test_network_pixels_only_where_the_source_shows_no_mouth_inside():
    """A smile's teeth in the source stay the source's (stretched with the lips as the mouth opens wider);
    a closed source mouth has nothing inside to show, so the network fills the opening."""
    smiling = _open_mouth(_face(), 3.0)  # the source's own mouth is open 3 px
    inside, _ = mouth_interior(smiling, SIZE)
    assert inside.sum() > 20
    same = newly_visible(inside, smiling, warp_field(smiling, smiling, SIZE))
    assert same.sum() < 0.1 * inside.sum()  # a soft rim at most; the teeth are the source's
    wider = _open_mouth(smiling, 3.0)
    inside, _ = mouth_interior(wider, SIZE)
    stretched = newly_visible(inside, smiling, warp_field(wider, smiling, SIZE))
    assert stretched.sum() < 0.2 * inside.sum()
    closed = _face()
    closed[[67, 66, 65]] = closed[[61, 62, 63]]  # lips together (the template's mouth is a little open)
    new = newly_visible(inside, closed, warp_field(wider, closed, SIZE))
    assert new.sum() > 0.9 * inside.sum()


@pytest.mark.parametrize("gap", [0.0, closed_gap(128)], ids=["touching", "closed gap"])
def test_lips_that_close_over_a_smile_hide_its_teeth(gap):
    """Between the 68 points a spline lets the source's inside through a closing mouth in a wave; the lips'
    triangles map each driving lip onto the source's lip, so lips that meet show no tooth. Stage 1's closed
    mouth keeps a sliver of a gap (``CLOSED_GAP``, a few pixels of a large photo): it reads the upper lip,
    not the teeth behind it. The photo here is 4x the crop, as a portrait is."""
    import cv2

    size, scale = 128, 4
    to_crop = np.eye(2, 3) / scale  # frame pixels -> crop pixels
    smiling = _open_mouth(_face(size), 8.0)  # the source shows its inside: 8 crop px of teeth
    image = np.random.default_rng(2).integers(40, 160, (size * scale, size * scale, 3), dtype=np.uint8)
    teeth = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(teeth, [np.round(smiling[60:68] * scale * 16).astype(np.int32)], 1, shift=4)
    image[cv2.erode(teeth, np.ones((3, 3), np.uint8)) > 0] = 255  # white teeth inside the inner lip line
    closed = smiling.copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]] + [0, gap]  # the lower inner lip up to the upper one
    closed[[55, 56, 57, 58, 59], 1] -= smiling[66, 1] - closed[66, 1]  # the lower lip follows
    out = render_frame(image, to_crop, warp_field(closed, smiling, size))
    mouth = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(closed[48:60] * scale * 16).astype(np.int32)], 1, shift=4)
    assert mouth.sum() > 100 * scale**2
    white = (out.min(-1) > 200) & (mouth > 0)  # the teeth's colour inside the closed lips
    assert white.sum() <= 2 * scale, f"{white.sum()} tooth pixels between closed lips"
    opened = render_frame(image, to_crop, warp_field(smiling, smiling, size))
    assert ((opened.min(-1) > 200) & (mouth > 0)).sum() > 50 * scale**2  # the test can see the teeth


# --- measuring flicker inside the mouth ---------------------------------------------------------------------


@pytest.fixture
def mouth_flicker(monkeypatch):
    """``benchmarks/full_resolution.py``'s measure (the benchmark reports it per renderer)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    return importlib.import_module("full_resolution").mouth_flicker


def test_a_still_mouth_does_not_flicker_and_a_redrawn_one_does(mouth_flicker):
    mouth = _open_mouth(_face(), 6.0)[48:68] + 30  # frame pixels, open about 8 px
    image = _textured(130, 130, seed=3)
    assert mouth_flicker(image, image.copy(), mouth, mouth) == 0.0  # constant landmarks, constant pixels
    redrawn = image.copy()
    rows, columns = np.mgrid[60:110, 40:100]
    redrawn[rows, columns] = _textured(50, 60, seed=4)  # new pixels, in and around the mouth
    assert mouth_flicker(image, redrawn, mouth, mouth) > 40
    closed = mouth.copy()
    closed[12:] = closed[12:].mean(0)  # the inner lips shut
    assert mouth_flicker(image, redrawn, closed, closed) is None


def test_a_mouth_that_moves_as_its_landmarks_say_does_not_flicker(mouth_flicker):
    """The whole mouth 3 px right and its texture with it: almost no change once the motion is taken out,
    against a large change without it."""
    import cv2

    mouth = _open_mouth(_face(), 6.0)[48:68] + 30
    image = cv2.GaussianBlur(_textured(130, 130, seed=5), (0, 0), 1.5)  # texture a linear warp can follow
    shifted = np.roll(image, 3, axis=1)
    moved = mouth_flicker(image, shifted, mouth, mouth + np.array([3.0, 0.0]))
    unexplained = mouth_flicker(image, shifted, mouth, mouth)
    assert moved < 0.05 * unexplained


# --- the product --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tiny_face2vid) -> TalkingFacePipeline:
    return TalkingFacePipeline(
        load_mouth_predictor(shipped_checkpoint("landmarks")),
        tiny_face2vid().frame_rollout(),
    )


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full_resolution")
    return write_speech(folder / "speech.wav", spoken()[: 640 * 20])  # 20 frames


@pytest.fixture(scope="module")
def large_photo(tmp_path_factory):
    """Grace Hopper scaled up to 1300 px on her longer side: larger than the old 1024-px cap."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("large_photo")
    with Image.open(photo_file()) as image:
        image.convert("RGB").resize((1110, 1300), Image.Resampling.BICUBIC).save(folder / "large.png")
    return folder / "large.png"


def _sharpness(frame: np.ndarray, box: tuple[int, int, int, int]) -> float:
    import cv2

    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _face_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    low, high = landmarks.min(0), landmarks.max(0)
    return int(low[0]), int(low[1]), int(high[0]) + 1, int(high[1]) + 1


def test_a_photo_keeps_its_resolution_and_never_drifts(pipeline, large_photo, speech):
    from PIL import Image

    result = pipeline(large_photo, speech)
    photo = np.asarray(Image.open(large_photo).convert("RGB"))
    assert result.frames.shape == (20, *photo.shape)  # no 1024 cap
    box = _face_box(result.plan.face.landmarks[0])
    source = _sharpness(photo, box)
    sharpness = np.array([_sharpness(frame, box) for frame in result.frames])
    assert sharpness.min() > 0.8 * source, sharpness / source  # the photo's detail, every frame
    assert abs(sharpness[-1] / sharpness[0] - 1) < 0.1  # frame N as sharp as frame 0: no drift
    # the source is always the photo: away from the face every frame is the photo exactly
    np.testing.assert_array_equal(
        result.frames[:, :60], np.broadcast_to(photo[:60], (20, 60, *photo.shape[1:]))
    )
    assert all((frame != photo).any() for frame in result.frames[5:])  # and the face does move


def test_max_side_shrinks_the_output(pipeline, large_photo, speech):
    plan = pipeline.prepare(large_photo, speech, max_side=400)
    frame = next(pipeline.render(plan)).frames[0]
    assert max(frame.shape[:2]) == 400 and frame.shape[:2] == plan.face.frames.shape[1:3]
    with pytest.raises(ValueError, match="max_side"):
        pipeline.prepare(large_photo, speech, max_side=10)


def test_a_dubbed_clip_keeps_its_size_and_its_own_frames_outside_the_mouth(pipeline, speech, tmp_path):
    from talking_face.datamodules.media import read_video

    clip = write_clip(tmp_path / "clip.mp4", 30, fps=25)
    result = pipeline(clip, speech)
    decoded = read_video(clip)
    assert result.frames.shape[1:] == decoded.shape[1:]
    plan = result.plan
    for t in (0, 10, 19):
        field = warp_field(plan.driving[t], plan.own[t], plan.size)
        source = decoded[plan.frame_index[t]]
        if field.box is None:
            np.testing.assert_array_equal(result.frames[t], source)
            continue
        region = _frame_box(field, plan.transforms[t], source.shape[:2])
        np.testing.assert_array_equal(result.frames[t][~region], source[~region])


def test_a_clip_at_30_fps_is_dubbed_at_30_fps_frame_for_frame(pipeline, speech, tmp_path, capsys):
    """A camera clip keeps its own frame rate: each output frame is the clip's own frame at that time (none
    dropped or repeated, as resampling 30 to 25 fps would), with the mouth that stage 1 says there."""
    from talking_face.datamodules.media import probe_video, read_video

    clip = write_clip(tmp_path / "clip30.mp4", 30, fps=30)
    plan = pipeline.prepare(clip, speech, progress=True)
    assert "the video: 24 frames at 30 fps" in capsys.readouterr().err  # said while preparing
    seconds = 20 / 25  # the speech
    assert plan.fps == 30 and plan.num_frames == 24 == round(seconds * 30)
    np.testing.assert_array_equal(plan.frame_index, np.arange(24))  # the clip's frames in order, each once
    at_25 = pipeline.prepare(clip, speech, fps=25)
    assert at_25.num_frames == 20 and len(at_25.face) == 20
    # the same speech in time: 30-fps frame 6k + 3 and 25-fps frame 5k + 2 share their centre time
    np.testing.assert_array_equal(plan.voiced[3::6], at_25.voiced[2::5])
    frames = np.concatenate([chunk.frames for chunk in pipeline.render(plan)])
    decoded = read_video(clip, fps=None)
    for t in (0, 11, 23):
        field = warp_field(plan.driving[t], plan.own[t], plan.size)
        region = _frame_box(field, plan.transforms[t], decoded.shape[1:3])
        np.testing.assert_array_equal(frames[t][~region], decoded[t][~region])
    out = pipeline.write(tmp_path / "dubbed.mp4", clip, speech)
    assert probe_video(out).fps == 30 and len(read_video(out, fps=None)) == 24


def test_a_photo_plays_at_the_rate_asked_for(pipeline, speech):
    """A photo at 75 fps: three times the frames, and every third one (frame 3k + 1, whose centre is 25-fps
    frame k's) has the 25-fps frame's mouth, head and eyelids: the motion keeps its timing."""
    at_25 = pipeline.prepare(photo_file(), speech)
    at_75 = pipeline.prepare(photo_file(), speech, fps=75)
    assert (at_25.fps, at_25.num_frames, at_75.fps, at_75.num_frames) == (25, 20, 75, 60)
    np.testing.assert_allclose(at_75.driving[1::3], at_25.driving, atol=1e-3)
    between = np.abs(at_75.driving[2::3][:-1] - at_25.driving[:-1]).max()
    assert between > 0.01  # frames between them move on: they are not copies
    with pytest.raises(ValueError, match="fps"):
        pipeline.prepare(photo_file(), speech, fps=0)


def test_paste_renderer_is_still_there_for_comparison(pipeline, speech):
    plan = pipeline.prepare(photo_file(), speech, renderer="paste")
    assert plan.options.renderer == "paste"
    assert next(pipeline.render(plan)).frames.shape[1:] == plan.face.frames.shape[1:]
    with pytest.raises(ValueError, match="renderer"):
        pipeline.prepare(photo_file(), speech, renderer="upsample")


def test_chunks_are_the_same_whatever_their_size_and_leaving_early_stops_face2vids_thread(pipeline, speech):
    """Face2Vid runs ahead in a thread and carries its previous frames across chunk borders: chunks of 7
    frames give the frames of one chunk; a render left after its first chunk leaves no thread behind."""
    import threading

    whole = np.concatenate([c.frames for c in pipeline.render(pipeline.prepare(photo_file(), speech))])
    chunks = pipeline.render(pipeline.prepare(photo_file(), speech, chunk_frames=7))
    first = next(chunks)
    np.testing.assert_array_equal(first.frames, whole[:7])
    chunks.close()
    assert not any(thread.name == "talking-face-ahead" for thread in threading.enumerate())
    rest = pipeline.render(pipeline.prepare(photo_file(), speech, chunk_frames=7))
    np.testing.assert_array_equal(np.concatenate([c.frames for c in rest]), whole)


# --- the rollout without Lightning --------------------------------------------------------------------------


def test_frame_rollout_makes_the_modules_frames_in_chunks(tiny_face2vid):
    module = tiny_face2vid(seed=2).eval()
    size = module.hparams.image_size
    rng = np.random.default_rng(0)
    reference_landmarks = torch.from_numpy(_face(size)).float()
    landmarks = reference_landmarks + torch.from_numpy(rng.normal(0, 0.7, (7, 68, 2))).float()
    reference = torch.rand(3, size, size)
    expected = generate_video(module.frame_rollout(), landmarks, reference, reference_landmarks)
    rollout = FrameRollout.from_module(module).start(reference[None], reference_landmarks[None])
    with torch.no_grad():
        outputs = [*rollout.run(landmarks[None, :3]), *rollout.run(landmarks[None, 3:])]
    frames = torch.cat([out.frame for out in outputs])
    torch.testing.assert_close(frames, expected, atol=1e-5, rtol=0)
    assert outputs[0].reference_flow.shape == (1, 2, size, size) and outputs[0].mask.shape == (
        1,
        1,
        size,
        size,
    )


def test_the_rollout_caps_the_temporal_mask_it_is_given(tiny_face2vid):
    module = tiny_face2vid(seed=3).eval()
    size = module.hparams.image_size
    reference_landmarks = torch.from_numpy(_face(size)).float()
    landmarks = reference_landmarks[None].repeat(3, 1, 1)
    reference = torch.rand(3, size, size)

    def masks(cap: float) -> torch.Tensor:
        rollout = FrameRollout.from_module(module, max_temporal_mask=cap).start(
            reference[None], reference_landmarks[None]
        )
        with torch.no_grad():
            return torch.stack([out.mask for out in rollout.run(landmarks[None])])

    assert masks(1.0).max() > 0.5  # at init the generator copies its previous frame
    assert masks(0.3).max() <= 0.3
    assert not hasattr(module.generator, "max_temporal_mask")  # a run's knob, not the network's state


def test_a_face_at_the_image_border_renders_at_full_size(pipeline, speech, tmp_path):
    """The face's box and its falloff run off the left and bottom edges: clipped, not a crash."""
    from PIL import Image

    with Image.open(photo_file()) as image:
        photo = np.asarray(image.convert("RGB"))[:330, 165:]  # cut through the cheek and the chin
    Image.fromarray(photo).save(tmp_path / "border.png")
    plan = pipeline.prepare(tmp_path / "border.png", speech)
    field = warp_field(plan.driving[0], plan.own[0], plan.size)
    region = _frame_box(field, plan.transforms[0], photo.shape[:2])
    assert region[:, 0].any() and region[-1].any()  # the moving region does reach the borders
    frames = np.concatenate([chunk.frames for chunk in pipeline.render(plan)])
    assert frames.shape == (plan.num_frames, *photo.shape)
    assert all((frame != photo).any() for frame in frames[5:])
