"""``talking-face generate``: the command-line face of ``TalkingFacePipeline`` (flags from this signature)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

__all__ = ["generate"]


def generate(
    face: str,
    out: str = "outputs/generated.mp4",
    audio: str | None = None,
    text: str | None = None,
    voice: str | None = None,
    landmarks_checkpoint: str | None = None,
    face2vid_checkpoint: str | None = None,
    size: Literal[128, 256] | None = None,
    device: str = "cpu",
    face_index: int | None = None,
    head_motion: float = 1.0,
    blinks: float = 0.3,
    mouth_scale: float = 1.0,
    smoothing: int = 5,
    chunk_frames: int = 50,
    max_temporal_mask: float = 0.6,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Make ``face`` say ``audio`` and/or ``text``; write an mp4 (H.264 + AAC) with the speech to ``out``.

    Args:
        face: a face photo (any size) or a video of a face (any frame rate and resolution).
        out: the mp4 to write (atomically: a failed run leaves nothing behind).
        audio: speech (wav, mp3, flac, m4a, ...; any rate, mono or stereo).
        text: the words; alone they are spoken by the built-in TTS; with audio they are aligned to it.
        voice: TTS voice for text only (e.g. kal_diphone, cmu_us_slt_arctic_hts, en-us+f2).
        landmarks_checkpoint: stage 1 checkpoint (default: the one shipped with the package).
        face2vid_checkpoint: stage 2 checkpoint (default: the one shipped with the package).
        size: face crop size; must match the Face2Vid checkpoint (default: the checkpoint's own).
        device: cpu, cuda, cuda:1, ...
        face_index: which face when there are several (0 = the largest, the default).
        head_motion: head-motion amplitude for a photo (0 = still).
        blinks: blinks per second for a photo (0 = none).
        mouth_scale: scales the mouth's motion (1 = as predicted).
        smoothing: landmark smoothing window in frames for a video (1 = none).
        chunk_frames: frames generated at a time (memory is bounded by it, not by the length).
        max_temporal_mask: cap on the share of each frame warped from the previous one: lower is sharper,
            higher smoother, 1 = as trained (see ``TalkingFacePipeline``).
        seed: the random head motion and blinks follow from it.
        progress: show progress bars.
    """
    from talking_face.generation.pipeline import TalkingFacePipeline

    pipeline = TalkingFacePipeline.from_checkpoints(
        landmarks_checkpoint, face2vid_checkpoint, device, max_temporal_mask
    )
    if size is not None and size != pipeline.size:
        raise ValueError(
            f"size {size} asked for, but the Face2Vid checkpoint makes {pipeline.size}-px crops: pass a "
            f"{size}-px face2vid_checkpoint (train one with --model.image_size {size})"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        path = pipeline.write(
            out, face, audio, text, voice=voice, face_index=face_index, head_motion=head_motion,
            blinks=blinks, mouth_scale=mouth_scale, smoothing=smoothing, seed=seed,
            chunk_frames=chunk_frames, progress=progress,
        )  # fmt: skip
    print(f"wrote {path}")
    return path
