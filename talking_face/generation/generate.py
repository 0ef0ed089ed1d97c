"""``talking-face generate``: the command-line face of ``TalkingFacePipeline`` (flags from this signature)."""

from __future__ import annotations

import sys
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
    max_side: int | None = None,
    crf: int = 18,
    renderer: Literal["full", "paste"] = "full",
    device: str = "cpu",
    face_index: int | None = None,
    head_motion: float = 1.0,
    blinks: float = 0.3,
    mouth_scale: float = 1.0,
    smoothing: int = 5,
    chunk_frames: int = 50,
    max_temporal_mask: float = 0.6,
    seed: int = 0,
    recognise: bool = True,
    progress: bool = True,
) -> Path:
    """Make ``face`` say ``audio`` and/or ``text``; write an mp4 (H.264 + AAC) with the speech to ``out``.

    Args:
        face: a face photo (any size) or a video of a face (any frame rate and resolution).
        out: the video to write (.mp4, .mov, .mkv, .m4v); missing folders are made, an existing file is
            replaced atomically, and a failed or interrupted run leaves nothing behind.
        audio: speech (wav, mp3, flac, m4a, ...; any rate, mono or stereo); it goes into the video as it came.
        text: the words; alone they are spoken by the built-in TTS; with audio they are aligned to it.
        voice: TTS voice for text only (e.g. kal_diphone, cmu_us_slt_arctic_hts, en-us+f2).
        landmarks_checkpoint: stage 1 checkpoint (default: the one shipped with the package).
        face2vid_checkpoint: stage 2 checkpoint (default: the one shipped with the package).
        size: face crop size; must match the Face2Vid checkpoint (default: the checkpoint's own).
        max_side: scale the face input down so that its longer side is at most this many pixels (default:
            the video keeps the input's resolution, 4K included).
        crf: the video encoder's quality, 0 to 51 (x264's constant rate factor): lower is sharper and larger;
            each 6 down about doubles the file.
        renderer: full: the source's own pixels warped at its resolution, the network's only inside the
            lips; paste: the network's whole face crop pasted back (the former renderer, for comparison).
        device: cpu, cuda, cuda:1, ...
        face_index: which face when there are several (0 = the largest, the default).
        head_motion: head-motion amplitude for a photo, 0 (still) to 3.
        blinks: blinks per second for a photo, 0 (none) to 2.
        mouth_scale: scales the mouth's motion, 0 to 3 (1 = as predicted).
        smoothing: landmark smoothing window in frames for a video, 1 (none) to 51.
        chunk_frames: frames generated at a time, >= 1 (memory is bounded by it, not by the length).
        max_temporal_mask: cap on the share of each frame warped from the previous one, 0 to 1: lower is
            sharper, higher smoother, 1 = as trained (see ``TalkingFacePipeline``).
        seed: the random head motion and blinks follow from it.
        recognise: audio without text: recognise its words offline and let their phones drive the mouth
            beside the sound (false: the sound alone).
        progress: show progress.
    """
    from talking_face.generation.checks import (
        check_device,
        check_input_file,
        check_knobs,
        check_output,
    )
    from talking_face.generation.speech_input import check_speech_flags

    check_knobs(
        face_index=face_index, head_motion=head_motion, blinks=blinks, mouth_scale=mouth_scale,
        smoothing=smoothing, chunk_frames=chunk_frames, max_temporal_mask=max_temporal_mask,
        max_side=max_side, crf=crf,
    )  # fmt: skip
    check_input_file("face", face)
    check_input_file("audio", audio)
    check_speech_flags(audio, text, voice)
    out_path = check_output(out, {"face": face, "audio": audio})
    check_device(device)

    if progress:
        print("loading the models...", file=sys.stderr, flush=True)
    from talking_face.generation.pipeline import TalkingFacePipeline

    pipeline = TalkingFacePipeline.from_checkpoints(
        landmarks_checkpoint, face2vid_checkpoint, device, max_temporal_mask
    )
    if size is not None and size != pipeline.size:
        from talking_face.errors import UsageError

        raise UsageError(
            "size", f"{size} asked for, but the Face2Vid checkpoint makes {pipeline.size}-px crops: pass a "
            f"{size}-px --face2vid_checkpoint (train one with --model.image_size {size})"
        )  # fmt: skip
    if out_path.exists():
        print(f"replacing {out_path}", file=sys.stderr)
    path = pipeline.write(
        out_path, face, audio, text, voice=voice, face_index=face_index, head_motion=head_motion,
        blinks=blinks, mouth_scale=mouth_scale, smoothing=smoothing, seed=seed, recognise=recognise,
        max_side=max_side, renderer=renderer, crf=crf,
        chunk_frames=chunk_frames, progress=progress,
    )  # fmt: skip
    print(f"wrote {path}")
    return path
