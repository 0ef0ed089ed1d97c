"""``talking-face generate``: the command-line face of ``TalkingFacePipeline`` (flags from this signature)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

__all__ = ["generate", "leave_a_core_for_composition"]


def generate(
    face: str,
    out: str = "outputs/generated.mp4",
    audio: str | None = None,
    text: str | None = None,
    landmarks_checkpoint: str | None = None,
    face2vid_checkpoint: str | None = None,
    size: Literal[128, 256] | None = None,
    device: str = "cpu",
    progress: bool = True,
    **options,
) -> Path:
    """Make ``face`` say ``audio`` and/or ``text``; write an mp4 (H.264 + AAC) with the speech to ``out``.

    Args:
        face: a face photo (any size) or a video of a face (any frame rate and resolution).
        out: the video to write (.mp4, .mov, .mkv, .m4v); missing folders are made, an existing file is
            replaced atomically, and a failed or interrupted run leaves nothing behind.
        audio: speech (wav, mp3, flac, m4a, ...; any rate, mono or stereo); it goes into the video as it came.
        text: the words; alone they are spoken by the built-in TTS; with audio they are aligned to it.
        landmarks_checkpoint: stage 1 checkpoint (default: the one shipped with the package).
        face2vid_checkpoint: stage 2 checkpoint (default: the one shipped with the package).
        size: face crop size; must match the Face2Vid checkpoint (default: the checkpoint's own).
        device: cpu, cuda, cuda:1, ...
        progress: show progress.
        options: the knobs of ``GenerationOptions`` (its docstring is their help).
    """
    from talking_face.generation.checks import check_device, check_input_file, check_output
    from talking_face.generation.options import GenerationOptions
    from talking_face.generation.speech_input import check_speech_flags

    knobs = GenerationOptions(**options)
    check_input_file("face", face)
    check_input_file("audio", audio)
    check_speech_flags(audio, text, knobs.voice)
    out_path = check_output(out, {"face": face, "audio": audio})
    check_device(device)

    if progress:
        print("loading the models...", file=sys.stderr, flush=True)
    from talking_face.generation.pipeline import TalkingFacePipeline

    pipeline = TalkingFacePipeline.from_checkpoints(landmarks_checkpoint, face2vid_checkpoint, device)
    if size is not None and size != pipeline.size:
        from talking_face.errors import UsageError

        raise UsageError(
            "size", f"{size} asked for, but the Face2Vid checkpoint makes {pipeline.size}-px crops: pass a "
            f"{size}-px --face2vid_checkpoint (train one with --model.image_size {size})"
        )  # fmt: skip
    if out_path.exists():
        print(f"replacing {out_path}", file=sys.stderr)
    if device == "cpu":
        leave_a_core_for_composition()
    path = pipeline.write(out_path, face, audio, text, progress=progress, **options)
    print(f"wrote {path}")
    return path


def leave_a_core_for_composition() -> None:
    """On the CPU, Face2Vid runs in its own thread beside composition and the encoder, so torch gets every
    core but one: with all of them the threads oversubscribe the cores and the whole run is slower
    (``benchmarks/README.md``). An ``OMP_NUM_THREADS`` the user set wins."""
    import os

    import torch

    if "OMP_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - 1))
