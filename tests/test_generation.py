"""`talking-face generate` end to end: playable mp4s in every mode, a resting mouth in pauses, untouched
background, faceless frames passed through, chunked = one go, length = speech, the CLI.

Stage 1 is the shipped checkpoint (its mouth moves with the speech); stage 2 a tiny random Face2Vid (the
tests look at geometry, timing and pixels outside the face, never at how good the face looks).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from generation_media import (
    SENTENCE,
    framed,
    photo_file,
    save_checkpoint,
    spoken,
    write_clip,
    write_speech,
)

from talking_face.datamodules import timebase
from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points, neutral_mouth
from talking_face.datamodules.media import load_audio, probe_video, read_video
from talking_face.errors import UsageError
from talking_face.generation.checkpoints import load_mouth_predictor, shipped_checkpoint
from talking_face.generation.paste_back import face_mask, paste_face
from talking_face.generation.pipeline import TalkingFacePipeline, pingpong_indices

PAUSE_SECONDS = 1.0
MARGIN = 1
"""Frame pixels farther than this from where the warped face mask reaches are bit for bit the input's (1 px
spares the rounding of OpenCV's fixed-point warp, which samples the mask on a shifted grid here)."""


@pytest.fixture(scope="module")
def pipeline(tiny_face2vid) -> TalkingFacePipeline:
    rollout = tiny_face2vid(seed=0).frame_rollout()
    return TalkingFacePipeline(load_mouth_predictor(shipped_checkpoint("landmarks")), rollout)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Speech at 16 and 44.1 kHz (mono and stereo), a photo, clips at 25 fps (longer than the speech) and 30
    fps (shorter), and speech with a silent second in the middle."""
    folder = tmp_path_factory.mktemp("generation_media")
    speech = spoken()
    pause = np.concatenate(
        [speech, np.zeros(round(PAUSE_SECONDS * timebase.SAMPLE_RATE), np.float32), speech]
    )
    return {
        "photo": photo_file(),
        "wav16": write_speech(folder / "speech16k.wav", speech),
        "wav44": write_speech(folder / "speech44k.wav", speech, 44_100),
        "wav44_stereo": write_speech(folder / "speech44k_stereo.wav", speech, 44_100, stereo=True),
        "pause": write_speech(folder / "pause.wav", pause),
        "clip25": write_clip(folder / "clip25.mp4", 60, fps=25),
        "clip30": write_clip(folder / "clip30.mp4", 45, fps=30),
    }


@pytest.fixture(scope="module")
def photo_plan(pipeline, media):
    """The photo saying the 16 kHz speech, head motion and blinks on (the face moves in its frame)."""
    return pipeline.prepare(media["photo"], media["wav16"])


def _speech_samples(media: dict[str, Path], audio: str | None) -> int:
    """Samples of the speech the video must cover, at the pipeline's rate."""
    return spoken().size if audio is None else load_audio(media[audio]).size


def _input_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    if path.suffix == ".mp4":
        info = probe_video(path)
        return info.width, info.height
    with Image.open(path) as image:
        return image.size


# --- every mode writes a playable mp4 with the speech -------------------------------------------------------


@pytest.mark.parametrize(
    ("face", "audio", "text"),
    [
        ("clip25", "wav16", None),
        pytest.param("clip30", "wav44_stereo", None, marks=pytest.mark.slow),
        pytest.param("clip30", None, SENTENCE, marks=pytest.mark.slow),
        pytest.param("clip25", "wav44", SENTENCE, marks=pytest.mark.slow),
        ("photo", None, SENTENCE),
        pytest.param("photo", "wav44", None, marks=pytest.mark.slow),
    ],
    ids=[
        "audio-25fps-16k",
        "audio-30fps-44k-stereo",
        "text-30fps",
        "both-25fps-44k",
        "text-photo",
        "audio-photo",
    ],
)
def test_each_mode_writes_a_playable_mp4_as_long_as_the_speech(pipeline, media, tmp_path, face, audio, text):
    out = pipeline.write(
        tmp_path / "out.mp4", media[face], media.get(audio), text, head_motion=0.5, chunk_frames=20
    )
    samples = _speech_samples(media, audio)
    info = probe_video(out)
    fps = probe_video(media[face]).fps if face.startswith("clip") else timebase.FPS  # a clip keeps its rate
    assert info.has_audio and info.fps == fps
    assert (info.width, info.height) == _input_size(media[face])
    frames = read_video(out, fps=None)  # every frame the file holds, decoded
    assert len(frames) == timebase.num_frames_at(samples / timebase.SAMPLE_RATE, fps)
    assert fps != timebase.FPS or len(frames) == -(-samples // 640)
    assert frames.std() > 5  # a picture, not a blank
    sound = load_audio(out)
    assert abs(sound.size - samples) <= timebase.SAMPLE_RATE / fps  # within one frame
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left beside it


# --- the mouth rests in pauses ------------------------------------------------------------------------------


def test_mouth_rests_in_a_silent_stretch_and_moves_in_speech(pipeline, media):
    plan = pipeline.prepare(media["photo"], media["pause"], head_motion=0, blinks=0)
    speech = spoken().size
    first = -(-speech // timebase.SAMPLES_PER_FRAME) + 4  # the silent second, less the easing at its edges
    last = (speech + round(PAUSE_SECONDS * timebase.SAMPLE_RATE)) // timebase.SAMPLES_PER_FRAME - 4
    silent = np.arange(first, last)
    assert len(silent) >= 15 and not plan.voiced[silent].any()
    neutral = neutral_mouth(mouth_points(plan.own))
    mouth = mouth_points(plan.driving)
    np.testing.assert_allclose(mouth[silent], np.broadcast_to(neutral, mouth[silent].shape), atol=1e-3)
    opening = mouth_opening(mouth)
    speaking = plan.voiced
    assert speaking[: first - 4].sum() > 20 and speaking[last + 4 :].sum() > 20
    moving = np.ptp(opening[speaking])
    assert moving > 1.0, f"the mouth hardly moves in speech ({moving:.2f} px): the test would prove nothing"
    assert np.ptp(opening[silent]) < 0.01 * moving
    # without resting, stage 1's own mouth in the pause is not the neutral one: resting did the work
    assert np.abs(plan.mouth[silent] - neutral).max() > 1e-2
    # stage 1's own mouth (face-normalised, at the speech's frames) is what was retargeted onto her face
    assert plan.predicted.shape == (plan.speech.num_frames, 20, 2)
    own_opening = mouth_opening(plan.predicted)[plan.speech_frames]
    assert np.corrcoef(own_opening, mouth_opening(plan.mouth))[0, 1] > 0.9


# --- the background is untouched ----------------------------------------------------------------------------


def _outside(mask: np.ndarray, transform: np.ndarray, shape: tuple[int, int], margin: int) -> np.ndarray:
    """Bool [H, W]: frame pixels farther than ``margin`` pixels from any pixel the crop mask reaches."""
    import cv2

    height, width = shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    reach = cv2.warpAffine(mask, transform, (width, height), flags=flags, borderValue=0.0) > 0
    reach = cv2.dilate(reach.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return reach == 0


def test_pixels_outside_the_face_mask_are_unchanged(pipeline, media):
    """The paste-back renderer (full resolution's region is tested in test_full_resolution.py)."""
    from PIL import Image

    photo = np.asarray(Image.open(photo_file()).convert("RGB"))
    photo_plan = pipeline.prepare(media["photo"], media["wav16"], renderer="paste", chunk_frames=16)
    frames = np.concatenate([chunk.frames for chunk in pipeline.render(photo_plan)])
    assert frames.shape == (photo_plan.num_frames, *photo.shape)  # the input's resolution
    for t in range(0, photo_plan.num_frames, 5):
        mask = face_mask([photo_plan.driving[t], photo_plan.own[t]], photo_plan.size)
        outside = _outside(mask, photo_plan.transforms[t], photo.shape[:2], margin=MARGIN)
        assert 0.5 < outside.mean() < 0.99
        np.testing.assert_array_equal(frames[t][outside], photo[outside])
        assert (frames[t][~outside] != photo[~outside]).any()  # the face itself was replaced


def test_paste_face_changes_only_what_the_mask_covers():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)
    crop = np.full((32, 32, 3), 200, np.uint8)
    transform = np.array(
        [[0.5, 0.0, -10.0], [0.0, 0.5, -8.0]]
    )  # frame -> crop: crop (16, 16) = frame (52, 48)
    yy, xx = np.mgrid[:32, :32]
    mask = ((xx - 16) ** 2 + (yy - 16) ** 2 <= 10**2).astype(np.float32)
    distance = np.hypot(*np.mgrid[:80, :100] - np.array([48, 52])[:, None, None])  # frame px from the centre
    pasted = paste_face(frame, crop, transform, mask, colour_match=False)
    assert pasted.shape == frame.shape and pasted.dtype == np.uint8
    np.testing.assert_array_equal(pasted[distance > 23], frame[distance > 23])
    assert (pasted[distance < 17] == 200).all()
    soft = face_mask([_ring(16, 16, 10)], 32)
    matched = paste_face(frame, crop, transform, soft)
    outside = _outside(soft, transform, frame.shape[:2], margin=MARGIN)
    np.testing.assert_array_equal(matched[outside], frame[outside])
    corner = transform.copy()
    corner[:, 2] = [14.0, 14.0]  # the face's centre near the frame's top-left corner, the crop half outside
    np.testing.assert_array_equal(paste_face(frame, crop, corner, mask)[40:, 40:], frame[40:, 40:])


def _ring(x: float, y: float, radius: float) -> np.ndarray:
    """68 points on a circle: a face outline for ``face_mask``."""
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.stack([x + radius * np.cos(angles), y + radius * np.sin(angles)], axis=1)


# --- faceless frames pass through ---------------------------------------------------------------------------


@pytest.mark.slow
def test_frames_without_a_face_pass_through_unchanged(pipeline, media, tmp_path):
    grey = np.full_like(framed(), 128)
    noise = np.random.default_rng(1).integers(0, 256, framed().shape, dtype=np.uint8)
    faceless = {**dict.fromkeys(range(10, 20), grey), **dict.fromkeys(range(30, 34), noise)}
    clip = write_clip(tmp_path / "gaps.mp4", 60, fps=25, faceless=faceless)
    result = pipeline(clip, media["wav16"])
    plan = result.plan
    decoded = read_video(clip)  # at 25 fps, as the pipeline reads it
    found = plan.face.found[plan.frame_index]
    assert not found[10:20].any() and not found[30:34].any()
    assert found[:10].all() and found[20:30].all() and found[34:].all()
    for t in np.flatnonzero(~found):
        np.testing.assert_array_equal(result.frames[t], decoded[plan.frame_index[t]])
    assert all((result.frames[t] != decoded[t]).any() for t in (0, 25, 40))  # faces are generated


# --- chunked = one go ---------------------------------------------------------------------------------------


def test_chunked_render_equals_one_shot(pipeline, photo_plan):
    def in_chunks_of(frames: int) -> list:
        options = dataclasses.replace(photo_plan.options, chunk_frames=frames)
        return list(pipeline.render(dataclasses.replace(photo_plan, options=options)))

    chunked, whole = in_chunks_of(7), in_chunks_of(1000)
    assert [c.start for c in chunked] == list(range(0, photo_plan.num_frames, 7))
    assert (
        len(whole) == 1 and sum(len(c.frames) for c in chunked) == photo_plan.num_frames
    )  # last partial kept
    for name in ("crops", "frames"):
        a = np.concatenate([getattr(c, name) for c in chunked]).astype(np.int16)
        b = getattr(whole[0], name).astype(np.int16)
        assert np.abs(a - b).max() <= 1, name


# --- video length = speech length ---------------------------------------------------------------------------


def test_pingpong_loops_back_and_forth_and_cuts():
    np.testing.assert_array_equal(pingpong_indices(10, 4), [0, 1, 2, 3, 2, 1, 0, 1, 2, 3])
    np.testing.assert_array_equal(pingpong_indices(5, 9), np.arange(5))
    np.testing.assert_array_equal(pingpong_indices(4, 1), np.zeros(4))


@pytest.mark.parametrize("samples", [640 * 30 - 1, 640 * 30, 640 * 30 + 1])
def test_video_covers_the_speech_to_the_frame(pipeline, media, tmp_path, samples):
    audio = write_speech(tmp_path / "cut.wav", spoken()[:samples])
    plan = pipeline.prepare(media["photo"], audio)
    assert plan.num_frames == -(-samples // 640) == len(plan.voiced) == len(plan.mouth)


def test_short_clip_loops_back_and_forth_and_long_clip_is_cut(pipeline, media):
    seconds = spoken().size / timebase.SAMPLE_RATE
    needed = timebase.num_frames_at(seconds, 30)  # at the clip's own rate
    short = pipeline.prepare(media["clip30"], media["wav16"])  # 1.5 s of clip for 1.9 s of speech
    assert len(short.face) < needed == short.num_frames
    np.testing.assert_array_equal(short.frame_index, pingpong_indices(needed, len(short.face)))
    needed = timebase.num_frames_at(seconds, 25)
    long = pipeline.prepare(media["clip25"], media["wav16"])  # 2.4 s of clip: only what is needed is read
    assert len(long.face) == needed == long.num_frames
    np.testing.assert_array_equal(long.frame_index, np.arange(needed))


# --- nothing half-written, unwritable outputs ---------------------------------------------------------------


def test_a_failure_mid_write_leaves_nothing_behind(pipeline, media, tmp_path, monkeypatch):
    real_render = pipeline.render

    def render_then_fail(plan, progress=False):
        yield next(real_render(plan, progress))
        raise RuntimeError("killed after the first chunk")

    monkeypatch.setattr(pipeline, "render", render_then_fail)
    with pytest.raises(RuntimeError, match="killed after the first chunk"):
        pipeline.write(tmp_path / "out.mp4", media["photo"], media["wav16"], chunk_frames=10)
    assert list(tmp_path.iterdir()) == []


def test_bad_outputs_fail_before_any_work_and_missing_folders_are_made(
    pipeline, media, tmp_path, monkeypatch
):
    monkeypatch.setattr(pipeline, "prepare", _must_not_run)
    with pytest.raises(UsageError, match="--out: .*is a folder"):
        pipeline.write(tmp_path, media["photo"], media["wav16"])
    with pytest.raises(UsageError, match="--out: .*ending in .mp4"):
        pipeline.write(tmp_path / "result", media["photo"], media["wav16"])
    with pytest.raises(UsageError, match="--out: .*is the --face input"):  # dubbing over the user's own clip
        pipeline.write(media["clip25"], media["clip25"], media["wav16"])
    with pytest.raises(AssertionError, match="work started"):  # the folders are made, then the work starts
        pipeline.write(tmp_path / "missing" / "deeper" / "out.mp4", media["photo"], media["wav16"])
    assert (tmp_path / "missing" / "deeper").is_dir()


def _must_not_run(*args, **kwargs):
    raise AssertionError("work started before the output path was checked")


# --- the command line ---------------------------------------------------------------------------------------


def test_generate_command_with_dashes_and_underscores(tiny_face2vid, media, tmp_path, capsys):
    from talking_face.cli import main

    face2vid = save_checkpoint(tiny_face2vid(seed=1), tmp_path / "face2vid.ckpt")
    out = tmp_path / "said.mp4"
    main(
        [
            "generate",
            "--face", str(media["photo"]),
            "--text", SENTENCE,
            "--out", str(out),
            "--landmarks_checkpoint", str(shipped_checkpoint("landmarks")),
            "--face2vid-checkpoint", str(face2vid),
            "--head-motion", "0",
            "--blinks=0",
            "--progress", "false",
        ]
    )  # fmt: skip
    assert f"wrote {out}" in capsys.readouterr().out
    assert len(read_video(out, fps=None)) == timebase.num_frames_for(spoken().size)
    assert probe_video(out).has_audio
