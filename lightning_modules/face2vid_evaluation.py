"""Face2Vid judged as it is used: whole held-out utterances, generated autoregressively, against the truth.

Validation in ``Face2VidModule`` scores short clips; a product makes whole videos frame after frame, where
drift and flicker build up. This module scores whole utterances with the module's own metric functions
(``lightning_modules.face2vid_module``) so a benchmark can put models and baselines in one table:

- ``evaluation_videos``: the real frames, driving landmarks, a reference photo of the speaker and the REAL
  video's classical flow (computed once, shared by every model scored on the same videos);
- ``score_videos``: PSNR / SSIM (torchmetrics, pooled over all frames), PSNR inside the face and the mouth
  box, temporal warping error (generated t-1 warped to t with the real flow, non-occluded pixels), flicker
  (frame-difference energy of generated minus real) and LMD on generated frames (the project's landmark
  detector on the frames vs the driving mouth), for any ``make(video) -> frames``: a model
  (``generate_with``), the copy-the-reference baseline (``copy_reference``) or the real frames (the floor of
  the detector's and the flow's own noise).

All frames are [T, 3, S, S] float in [0, 1]; landmarks [T, 68, 2] in crop pixels at S.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from talking_face.datamodules.cache import CachedUtterance
from talking_face.lightning_modules.face2vid_metrics import (
    PSNRFromMSE,
    estimate_flow,
    face_region,
    frame_difference_energy,
    mouth_box,
    mouth_lmd_on_frames,
    resize_clip,
    temporal_warping_error,
)
from talking_face.lightning_modules.rollout import generate_video

__all__ = [
    "EvaluationVideo",
    "copy_reference",
    "evaluation_videos",
    "generate_with",
    "real_frames",
    "score_videos",
    "speaker_reference",
]


@dataclass(frozen=True)
class EvaluationVideo:
    """One held-out utterance at the evaluated size S.

    frames [T, 3, S, S] real; landmarks [T, 68, 2] driving; reference [3, S, S] and reference_landmarks
    [68, 2] a frame of the same speaker from another utterance; flow [T-1, 2, S, S] and valid
    [T-1, 1, S, S] the real video's DIS flow (pair t-1 -> t, ``estimate_flow(real_t, real_t-1)``) and its
    forward-backward-consistent pixels.
    """

    name: str
    frames: Tensor
    landmarks: Tensor
    reference: Tensor
    reference_landmarks: Tensor
    flow: Tensor
    valid: Tensor


def speaker_reference(record: CachedUtterance, pool: Sequence[CachedUtterance]) -> CachedUtterance:
    """The utterance whose middle frame is ``record``'s reference photo: the first other utterance of the same
    speaker in ``pool`` by name (the rule of ``FaceClipDataset`` in evaluation, over a pool that may span
    splits, so a speaker with one evaluated utterance still gets a photo that is not its own video)."""
    others = sorted(
        (r for r in pool if r.speaker == record.speaker and r.utterance != record.utterance),
        key=lambda r: r.utterance,
    )
    if not others:
        raise ValueError(
            f"no other utterance of speaker {record.speaker!r} to take a reference frame from "
            f"(evaluating {record.utterance!r}); the reference must not come from the video it is compared to"
        )
    return others[0]


def _frames(pixels: np.ndarray) -> Tensor:
    """uint8 [..., S, S, 3] -> float [..., 3, S, S] in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).movedim(-1, -3).float() / 255.0


def evaluation_videos(
    records: Sequence[CachedUtterance],
    pool: Sequence[CachedUtterance],
    size: int,
    max_frames: int | None = None,
) -> list[EvaluationVideo]:
    """Whole utterances (their first ``max_frames`` frames, None: all) resized to ``size``, with a reference
    frame chosen by ``speaker_reference`` from ``pool`` and the real video's flow (DIS ``medium``, the
    preset the module's metrics use)."""
    videos = []
    for record in records:
        window = slice(0, max_frames)
        frames, landmarks = resize_clip(
            _frames(record.array("frames")[window]),
            torch.from_numpy(np.array(record.array("landmarks")[window], np.float32)),
            size,
        )
        source = speaker_reference(record, pool)
        middle = source.num_frames // 2
        reference, reference_landmarks = resize_clip(
            _frames(source.array("frames")[middle]),
            torch.from_numpy(np.array(source.array("landmarks")[middle], np.float32)),
            size,
        )
        if len(frames) < 2:
            raise ValueError(f"{record.speaker}/{record.utterance} has < 2 frames: no motion to score")
        flow, valid = estimate_flow(frames[1:], frames[:-1], "medium")
        videos.append(
            EvaluationVideo(
                f"{record.speaker}/{record.utterance}",
                frames,
                landmarks,
                reference,
                reference_landmarks,
                flow,
                valid,
            )
        )
    return videos


def generate_with(module) -> Callable[[EvaluationVideo], Tensor]:
    """A model's frames for a video: ``rollout.generate_video`` (autoregressive, eval mode), from the
    driving landmarks and the reference photo only, as at inference."""

    def make(video: EvaluationVideo) -> Tensor:
        rollout = module.frame_rollout()
        return generate_video(rollout, video.landmarks, video.reference, video.reference_landmarks).cpu()

    return make


def copy_reference(video: EvaluationVideo) -> Tensor:
    """The baseline: the reference photo, still, for every frame [T, 3, S, S]."""
    return video.reference[None].expand_as(video.frames)


def real_frames(video: EvaluationVideo) -> Tensor:
    """The real video itself: the floor of every metric's own noise (detector, classical flow)."""
    return video.frames


def score_videos(
    videos: Sequence[EvaluationVideo],
    make: Callable[[EvaluationVideo], Tensor],
    lmd: bool = True,
) -> dict[str, float]:
    """Score ``make(video)`` -> frames [T, 3, S, S] on every video; returns the pooled metrics.

    Keys: ``psnr``, ``ssim`` (whole crop), ``psnr_face``, ``psnr_mouth`` (pooled MSE inside the jaw/brow
    polygon and the mouth box), ``warp_error`` (mean |gen_t - warp(gen_t-1, real flow)| over valid pixels,
    weighted by their count), ``flicker`` (mean over videos of energy(gen) - energy(real)), ``lmd`` (pixels
    of a 128-px crop, ``metrics.mouth_distance``; frames where a face was found) and ``face_found`` (that
    fraction; both NaN without ``lmd``), ``frames`` (how many) and ``seconds_per_frame`` (time in ``make``).
    """
    if not videos:
        raise ValueError("no videos to score")
    metrics = {
        "psnr": PeakSignalNoiseRatio(data_range=1.0),
        "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        "psnr_face": PSNRFromMSE(),
        "psnr_mouth": PSNRFromMSE(),
        "warp_error": MeanMetric(),
        "flicker": MeanMetric(),
        "lmd": MeanMetric(nan_strategy="ignore"),
        "face_found": MeanMetric(),
    }
    frames_made, seconds = 0, 0.0
    for video in videos:
        started = time.perf_counter()
        generated = make(video).float()
        seconds += time.perf_counter() - started
        if generated.shape != video.frames.shape:
            raise ValueError(
                f"made {tuple(generated.shape)} for {video.name}, expected {tuple(video.frames.shape)}"
            )
        real, size = video.frames, video.frames.shape[-1]
        frames_made += len(real)
        metrics["psnr"].update(generated, real)
        metrics["ssim"].update(generated, real)
        for name, inside in (
            ("psnr_face", face_region(video.landmarks, size)),
            ("psnr_mouth", mouth_box(video.landmarks, size)),
        ):
            inside = inside.expand_as(real)
            count = inside.sum(dim=(1, 2, 3))
            error = ((generated - real).square() * inside).sum(dim=(1, 2, 3))
            metrics[name].update(error / count.clamp_min(1), count)
        error, count = temporal_warping_error(generated[None], video.flow[None], video.valid[None])
        metrics["warp_error"].update(error, count)
        metrics["flicker"].update(
            frame_difference_energy(generated[None]) - frame_difference_energy(real[None])
        )
        if lmd:
            distances = mouth_lmd_on_frames(generated, video.landmarks)
            metrics["lmd"].update(distances)
            metrics["face_found"].update(torch.isfinite(distances).float())
    scores = {
        name: float(metric.compute()) if metric.update_called else float("nan")
        for name, metric in metrics.items()
    }
    return scores | {"frames": float(frames_made), "seconds_per_frame": seconds / frames_made}
