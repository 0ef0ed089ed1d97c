"""Whole-video evaluation of Face2Vid: references, known answers of every metric, real cache, a real model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from talking_face.datamodules.cache import load_manifest
from talking_face.lightning_modules.face2vid_evaluation import (
    EvaluationVideo,
    copy_reference,
    evaluation_videos,
    generate_with,
    real_frames,
    score_videos,
    speaker_reference,
)
from talking_face.lightning_modules.face2vid_module import Face2VidModule


@dataclass
class _Record:
    speaker: str
    utterance: str


def test_reference_is_the_first_other_utterance_of_the_same_speaker() -> None:
    pool = [_Record("s2", "a"), _Record("s1", "c"), _Record("s1", "b"), _Record("s1", "a")]
    assert speaker_reference(pool[3], pool) is pool[2]  # s1/b: first by name that is not s1/a
    assert speaker_reference(pool[2], pool) is pool[3]
    with pytest.raises(ValueError, match="no other utterance of speaker 's2'"):
        speaker_reference(pool[0], pool)


def _moving_video(frames: int = 6, size: int = 16) -> EvaluationVideo:
    """A texture moving 1 px right per frame with its exact flow (dx = -1: each pixel is read 1 px left),
    valid everywhere but the first column (which the motion uncovers)."""
    generator = torch.Generator().manual_seed(0)
    base = 0.2 + 0.6 * torch.rand(3, size, size + frames, generator=generator)
    video = torch.stack([base[:, :, frames - t : frames - t + size] for t in range(frames)])
    flow = torch.zeros(frames - 1, 2, size, size)
    flow[:, 0] = -1.0
    valid = torch.ones(frames - 1, 1, size, size)
    valid[..., 0] = 0.0
    landmarks = torch.rand(frames, 68, 2, generator=generator) * (size - 1)
    return EvaluationVideo("s1/moving", video, landmarks, video[0], landmarks[0], flow, valid)


def test_the_real_video_is_the_floor() -> None:
    video = _moving_video()
    scores = score_videos([video], real_frames, lmd=False)
    assert math.isinf(scores["psnr"]) and scores["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert scores["warp_error"] == pytest.approx(0.0, abs=1e-5)  # the exact flow explains every frame
    assert scores["flicker"] == pytest.approx(0.0, abs=1e-7)
    assert math.isnan(scores["lmd"]) and scores["frames"] == len(video.frames)


def test_known_answers_of_offset_flicker_and_stillness() -> None:
    video = _moving_video()
    offset = score_videos([video], lambda v: v.frames + 0.1, lmd=False)
    assert offset["psnr"] == pytest.approx(20.0, abs=1e-3)  # MSE 0.01
    assert offset["psnr_face"] == pytest.approx(20.0, abs=1e-3)
    assert offset["psnr_mouth"] == pytest.approx(20.0, abs=1e-3)
    assert offset["warp_error"] == pytest.approx(0.0, abs=1e-5)  # a constant offset moves like the real video
    sign = torch.tensor([(-1.0) ** t for t in range(len(video.frames))]).view(-1, 1, 1, 1)
    flicker = score_videos([video], lambda v: v.frames + 0.1 * sign, lmd=False)
    assert flicker["warp_error"] == pytest.approx(0.2, abs=1e-5)  # |+0.1 - (-0.1)| on every valid pixel
    assert flicker["flicker"] > 0
    still = score_videos([video], copy_reference, lmd=False)
    real_energy = (video.frames[1:] - video.frames[:-1]).square().mean()
    assert still["flicker"] == pytest.approx(-float(real_energy), rel=1e-5)  # stiller than the real video
    assert still["warp_error"] > 0.01


def test_score_videos_rejects_wrong_shapes_and_no_videos() -> None:
    video = _moving_video()
    with pytest.raises(ValueError, match="made .* for s1/moving"):
        score_videos([video], lambda v: v.frames[1:], lmd=False)
    with pytest.raises(ValueError, match="no videos"):
        score_videos([], real_frames)


@pytest.fixture(scope="module")
def videos(tiny_cache: Path) -> list[EvaluationVideo]:
    records = load_manifest(tiny_cache)
    return evaluation_videos(records[:2], records, size=128, max_frames=6)


def test_evaluation_videos_from_the_cache(tiny_cache: Path, videos: list[EvaluationVideo]) -> None:
    records = load_manifest(tiny_cache)
    video, record = videos[0], records[0]
    assert video.name == f"{record.speaker}/{record.utterance}"
    assert video.frames.shape == (6, 3, 128, 128) and video.landmarks.shape == (6, 68, 2)
    assert video.flow.shape == (5, 2, 128, 128) and video.valid.shape == (5, 1, 128, 128)
    assert set(video.valid.unique().tolist()) <= {0.0, 1.0}
    source = speaker_reference(record, records)
    assert source.utterance != record.utterance and source.speaker == record.speaker
    middle = np.array(source.array("frames")[source.num_frames // 2])
    assert torch.equal(video.reference, torch.from_numpy(middle).permute(2, 0, 1).float() / 255)
    small = evaluation_videos(records[:1], records, size=64, max_frames=3)[0]
    assert small.frames.shape == (3, 3, 64, 64)
    assert torch.allclose(small.landmarks, (video.landmarks[:3] + 0.5) / 2 - 0.5)


def test_detector_lmd_of_real_frames_is_small_and_a_model_is_scored(videos: list[EvaluationVideo]) -> None:
    real = score_videos(videos, real_frames)
    assert real["face_found"] == 1.0
    assert real["lmd"] < 2.0  # dlib on the crops it was smoothed from: pixels of a 128-px crop
    copied = score_videos(videos, copy_reference)
    assert copied["psnr"] < 40 and copied["flicker"] < 0
    torch.manual_seed(0)
    module = Face2VidModule(image_size=128, channels=8, bottleneck_blocks=1, discriminator_channels=8)
    scores = score_videos(videos, generate_with(module), lmd=False)
    assert all(math.isfinite(scores[k]) for k in ("psnr", "ssim", "warp_error", "flicker"))
    assert scores["frames"] == sum(len(v.frames) for v in videos) and scores["seconds_per_frame"] > 0
