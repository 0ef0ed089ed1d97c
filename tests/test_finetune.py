"""``talking-face finetune``: a photo or a clip becomes training videos, the model learns from them, the
checkpoint loads, an interrupted run resumes, and a bad face fails before anything is written."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from generation_media import photo_file

from talking_face.generation.checkpoints import export_checkpoint, load_stage
from talking_face.generation.finetune import FaceVideo, face_videos, own_previous_reached, train_on
from talking_face.lightning_modules.rollout import generate_video

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def photo() -> Path:
    return photo_file("grace_hopper")


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_face2vid, tmp_path_factory) -> Path:
    """A fresh tiny Face2Vid exported like a shipped checkpoint (weights, hyperparameters, stage header)."""
    L.seed_everything(0)
    module = tiny_face2vid(image_size=SIZE)
    folder = tmp_path_factory.mktemp("tiny")
    raw = folder / "raw.ckpt"
    torch.save(
        {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
         "pytorch-lightning_version": L.__version__},
        raw,
    )  # fmt: skip
    return export_checkpoint(raw, folder / "face2vid.ckpt")


@pytest.fixture(scope="module")
def videos(photo: Path) -> list[FaceVideo]:
    return face_videos(photo, SIZE, sentences=2, seed=0)


def test_a_photo_becomes_videos_of_its_face_cropped_like_the_cache(videos: list[FaceVideo]) -> None:
    assert len(videos) == 2 and len({v.utterance for v in videos}) == 2
    for video in videos:
        assert video.frames.dtype == np.uint8 and video.frames.shape[1:] == (SIZE, SIZE, 3)
        assert video.landmarks.shape == (video.num_frames, 68, 2) and video.num_frames > 25
        assert np.isfinite(video.landmarks).all()
        inside = (video.landmarks > 0) & (video.landmarks < SIZE - 1)
        assert inside.all(), "the crop holds the whole face"
        mouth = video.landmarks[:, 66, 1] - video.landmarks[:, 62, 1]  # inner-lip gap: the mouth speaks
        assert mouth.max() - mouth.min() > 0.02 * SIZE
        assert np.abs(np.diff(video.frames.astype(np.float32), axis=0)).mean() > 0.1  # frames change


@pytest.mark.slow
def test_a_clip_gives_its_own_frames_in_segments_cut_where_no_face_is(photo: Path, tmp_path: Path) -> None:
    from talking_face.datamodules.media import write_video

    speaking = face_videos(photo, 128, sentences=1, seed=1)[0].frames  # a talking head, 25 fps
    dark = np.zeros((8, *speaking.shape[1:]), np.uint8)
    half = len(speaking) // 2
    clip = write_video(tmp_path / "me.mp4", [*speaking[:half], *dark, *speaking[half:]], fps=30)
    segments = face_videos(clip, SIZE, segment_seconds=1.0)
    assert [v.utterance for v in segments] == ["me_000", "me_001"]  # one on each side of the dark frames
    expected = len(speaking) * 25 / 30  # the frames with a face, written at 30 fps, decoded at 25
    assert abs(sum(v.num_frames for v in segments) - expected) <= 3
    for video in segments:
        assert video.frames.shape[1:] == (SIZE, SIZE, 3) and video.frames.mean(axis=(1, 2, 3)).min() > 40
        assert ((video.landmarks > 0) & (video.landmarks < SIZE - 1)).all()


def _reconstruction_error(module, videos: list[FaceVideo]) -> float:
    """Mean |generated - real| of each video made autoregressively from the other video's middle frame."""
    errors = []
    for video, other in zip(videos, videos[::-1], strict=True):
        frames = torch.from_numpy(video.frames).permute(0, 3, 1, 2).float() / 255
        reference = torch.from_numpy(other.frames[other.num_frames // 2]).permute(2, 0, 1).float() / 255
        made = generate_video(
            module.frame_rollout(),
            torch.from_numpy(video.landmarks),
            reference,
            torch.from_numpy(other.landmarks[other.num_frames // 2]),
        )
        errors.append(float((made - frames).abs().mean()))
    return float(np.mean(errors))


@pytest.mark.slow
def test_finetune_from_a_photo_writes_a_checkpoint_that_learned_the_face(
    photo: Path, tiny_checkpoint: Path, videos: list[FaceVideo], tmp_path: Path
) -> None:
    from talking_face.cli import main

    out = tmp_path / "me.ckpt"
    main(["finetune", "--face", str(photo), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
          "--steps", "24", "--batch-size", "2", "--sentences", "2", "--lr", "1e-3", "--own-previous", "1",
          "--progress", "false"])  # fmt: skip
    assert out.is_file() and not (tmp_path / "me.ckpt.finetune").exists()
    tuned = load_stage(out, "face2vid")
    card = torch.load(out, map_location="cpu", weights_only=False)["talking_face"]["card"]
    assert card["steps"] == 24 and card["videos"] == 2 and card["finetuned_from"] == str(tiny_checkpoint)
    assert any(key.startswith("image_discriminator.") for key in tuned.state_dict())  # critics kept
    # a fresh model never reached its own frames; the finetuned one trained on them: its next finetune will
    assert own_previous_reached(load_stage(tiny_checkpoint, "face2vid"), tiny_checkpoint) == 0.0
    assert own_previous_reached(tuned, out) == 1.0
    before = _reconstruction_error(load_stage(tiny_checkpoint, "face2vid"), videos)
    after = _reconstruction_error(tuned, videos)
    assert after < 0.9 * before, (before, after)


@pytest.mark.slow
def test_an_interrupted_finetune_goes_on_from_its_last_checkpoint(
    tiny_checkpoint: Path, videos: list[FaceVideo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = train_on(load_stage(tiny_checkpoint, "face2vid"), videos, 4, 2, work_dir=tmp_path, save_every=2,
                     progress=False)  # fmt: skip
    assert (tmp_path / "last.ckpt").is_file() and first.lightning_module.lr_schedulers()[0].last_epoch == 4
    module = load_stage(tiny_checkpoint, "face2vid")
    calls = []
    step = type(module).training_step
    monkeypatch.setattr(
        type(module), "training_step", lambda self, *args: calls.append(1) or step(self, *args)
    )
    second = train_on(module, videos, 6, 2, work_dir=tmp_path, progress=False)
    assert len(calls) == 2 and second.lightning_module.lr_schedulers()[0].last_epoch == 6


def test_a_file_without_a_face_fails_before_anything_is_written(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from talking_face.generation.face_input import FaceError
    from talking_face.generation.finetune import finetune

    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(noise)
    with pytest.raises(FaceError, match="noise.png"):
        finetune(str(noise), str(tmp_path / "out.ckpt"), str(tiny_checkpoint), steps=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.png"]
