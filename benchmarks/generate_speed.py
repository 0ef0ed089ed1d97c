"""How fast is ``talking-face generate`` end to end, and where does the time go?

    python benchmarks/generate_speed.py [--seconds 10] [--sizes 128 256] [--inputs photo clip text]
        [--threads 1] [--device cpu|cuda] [--landmarks_checkpoint P] [--face2vid_checkpoint P] [--out DIR]

One utterance of ``--seconds`` of speech (GRID sentences spoken by the project's TTS, trimmed to the
length) is turned into an mp4 with ``TalkingFacePipeline.write``, exactly as the CLI does, from:

- ``photo``: the Grace Hopper photo that ships with matplotlib (never in the shipped training) + the speech
  as a 16 kHz wav;
- ``clip``: a 640x360, 30 fps mp4 of that photo drifting a few pixels (dubbing: every frame decoded,
  resampled to 25 fps, tracked, composed at full resolution) + the wav;
- ``text``: the photo + the sentences as text (the TTS speaks them inside the timing: speech prep grows).

Reported per input and crop size: frames, speech seconds, wall-clock seconds **including decoding,
detection and encoding**, frames/s and the real-time factor (wall clock / speech duration: below 1 is
faster than real time), peak memory (the process's max RSS, ``resource.getrusage``; peak CUDA memory on a
GPU), and the time of each part, measured by wrapping the functions the pipeline calls (nothing is re-run
by hand): speech decode / TTS + alignment, face decode / detection + tracking, stage 1, the rest of the plan
(voice activity, retargeting, motion, crop transforms), Face2Vid (what rendering waits for it: it runs
ahead in its own thread while frames are composed, ``generation/ahead.py``), compose (the full-resolution
warp, or paste-back), the rest of rendering, H.264 + AAC encoding (the writer's time minus the frames it
waited for).
Each measurement runs in a fresh process after a warm-up on the same face and 1 s of the speech or its first
sentence (lazy imports, the dlib model, the TTS engine), so peaks and caches do not leak
between rows; loading the checkpoints is reported apart.

Weights: the 128-px rows use the shipped Face2Vid checkpoint when present (else a fresh model of the
shipped architecture); 256-px rows a fresh ``Face2VidModule(image_size=256)`` of the shipped architecture
(speed does not depend on the weights). Writes the markdown to stdout and to ``<out>/generate_speed.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

REAL_TIME_FPS = 25.0
PARTS = (
    "speech decode",
    "TTS + alignment",
    "face decode",
    "face detect + track",
    "stage 1",
    "plan (VAD, motion, crops)",
    "Face2Vid",
    "compose",
    "render other",
    "encode (H.264 + AAC)",
    "other",
)


class Stopwatch:
    """Seconds spent inside wrapped functions (and inside the ``next`` of wrapped generators), by name."""

    def __init__(self, synchronize: Callable[[], None] = lambda: None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.synchronize = synchronize
        self._stack = contextlib.ExitStack()

    def wrap(self, owner: object, name: str, part: str, generator: bool = False) -> None:
        """Time ``owner.name`` as ``part`` until ``close``."""
        from unittest import mock

        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = original(*args, **kwargs)
                self.synchronize()
                return self._timed_iterator(result, part) if generator else result
            finally:
                self.seconds[part] += time.perf_counter() - started

        self._stack.enter_context(mock.patch.object(owner, name, timed))

    def _timed_iterator(self, iterator: Iterator, part: str) -> Iterator:
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds[part] += time.perf_counter() - started
            yield item

    def close(self) -> None:
        self._stack.close()


def instrument(pipeline, watch: Stopwatch) -> None:
    """Wrap every function of the pipeline's run whose time is reported (see the module docstring)."""
    import talking_face.datamodules.media as media
    import talking_face.generation.ahead as ahead
    import talking_face.generation.face_input as face_input
    import talking_face.generation.full_resolution as full_resolution
    import talking_face.generation.paste_back as paste_back
    import talking_face.generation.pipeline as pipeline_module

    cls = pipeline_module.TalkingFacePipeline
    for owner, name, part, generator in (
        (media, "load_audio", "speech decode", False),
        (pipeline_module, "prepare_speech", "speech", False),
        (face_input, "_read_image", "face decode", False),
        (media, "iter_video_frames", "face decode", True),
        (pipeline_module, "load_face", "face", False),
        (cls, "_predict_mouth", "stage 1", False),
        (cls, "prepare", "prepare", False),
        (ahead, "ahead", "Face2Vid", True),
        (full_resolution, "warp_field", "compose", False),
        (full_resolution, "mouth_interior", "compose", False),
        (full_resolution, "render_frame", "compose", False),
        (paste_back, "face_mask", "compose", False),
        (paste_back, "paste_face", "compose", False),
        (cls, "render", "render", True),
        (media, "write_video", "write", False),
    ):
        watch.wrap(owner, name, part, generator)


def parts(seconds: dict[str, float], total: float) -> dict[str, float]:
    """The reported parts (they add up to ``total``) from the nested timings of ``instrument``."""
    s = defaultdict(float, seconds)
    return {
        "speech decode": s["speech decode"],
        "TTS + alignment": s["speech"] - s["speech decode"],
        "face decode": s["face decode"],
        "face detect + track": s["face"] - s["face decode"],
        "stage 1": s["stage 1"],
        "plan (VAD, motion, crops)": s["prepare"] - s["speech"] - s["face"] - s["stage 1"],
        "Face2Vid": s["Face2Vid"],
        "compose": s["compose"],
        "render other": s["render"] - s["Face2Vid"] - s["compose"],
        "encode (H.264 + AAC)": s["write"] - s["render"],
        "other": total - s["prepare"] - s["write"],
    }


def build_pipeline(size: int, device: str, landmarks: str | None, face2vid: str | None):
    """(pipeline, what the Face2Vid weights are): the given or shipped checkpoints; a fresh Face2Vid of the
    shipped architecture at ``size`` where none fits."""

    from talking_face.configs import model_arguments
    from talking_face.generation.checkpoints import (
        SHIPPED_DIR,
        load_frame_rollout,
        load_mouth_predictor,
        shipped_checkpoint,
    )
    from talking_face.generation.pipeline import TalkingFacePipeline
    from talking_face.lightning_modules import Face2VidModule

    mouth = load_mouth_predictor(landmarks or shipped_checkpoint("landmarks"), device)
    path = Path(face2vid) if face2vid else SHIPPED_DIR / "face2vid.ckpt"
    if path.is_file():
        rollout = load_frame_rollout(path, device)
        if rollout.size == size:
            return TalkingFacePipeline(mouth, rollout, device), str(path)
    arguments = model_arguments("face2vid.yaml", "shipped_face2vid.yaml") | {"image_size": size}
    torch.manual_seed(0)
    fresh = Face2VidModule(**arguments).frame_rollout()
    return TalkingFacePipeline(mouth, fresh, device), "fresh"


def measure(
    size: int, face: str, speech: dict, warm: dict, device: str, threads: int, checkpoints: tuple
) -> dict:
    """One run in this (fresh) process: load, warm up, then the timed ``write``."""
    from talking_face.datamodules import timebase
    from talking_face.datamodules.media import iter_video_frames, load_audio, probe_video

    torch.set_num_threads(threads)
    started = time.perf_counter()
    pipeline, weights = build_pipeline(size, device, *checkpoints)
    load = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        pipeline.write(Path(scratch) / "warm.mp4", warm["face"], **warm["speech"])
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        watch = Stopwatch(torch.cuda.synchronize if cuda else lambda: None)
        instrument(pipeline, watch)
        started = time.perf_counter()
        try:
            out = pipeline.write(Path(scratch) / "out.mp4", face, **speech)
        finally:
            watch.close()
        total = time.perf_counter() - started
        frames = sum(1 for _ in iter_video_frames(out))
        duration = load_audio(out).size / timebase.SAMPLE_RATE
        info = probe_video(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "weights": weights,
        "load": load,
        "total": total,
        "frames": frames,
        "speech": duration,
        "output": f"{info.width}x{info.height}",
        "peak": torch.cuda.max_memory_allocated() if cuda else peak,
        "growth": 0 if cuda else peak - before,
        "parts": parts(watch.seconds, total),
    }


def _in_fresh_process(*args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def make_inputs(folder: Path, seconds: float) -> dict:
    """The speech (wav + its text), warm-up speech (1 s of the wav, the first sentence), the photo and a
    clip, under ``folder``."""
    import soundfile

    from talking_face.datamodules import timebase
    from talking_face.datamodules.faces.photos import load_photo, packaged_photos
    from talking_face.datamodules.media import write_video
    from talking_face.datamodules.synthetic.corpus import grid_sentence
    from talking_face.generation.speech_input import prepare_speech

    rng = np.random.default_rng(0)
    sentences, audio = [], np.zeros(0, np.float32)
    while audio.size < seconds * timebase.SAMPLE_RATE:
        sentences.append(grid_sentence(rng)[0])
        audio = prepare_speech(text=". ".join(sentences)).audio
    text = ". ".join(sentences)
    samples = round(seconds * timebase.SAMPLE_RATE)
    soundfile.write(folder / "speech.wav", audio[:samples], timebase.SAMPLE_RATE)
    soundfile.write(folder / "warm.wav", audio[: timebase.SAMPLE_RATE], timebase.SAMPLE_RATE)
    photo = next(p for p in packaged_photos() if p.name == "grace_hopper")
    framed = load_photo(photo, size=(640, 360))
    fps = 30
    t = np.arange(round(seconds * fps)) / fps
    drift = np.stack([3 * np.sin(2 * np.pi * 0.5 * t), 2 * np.cos(2 * np.pi * 0.35 * t)], axis=1)
    write_video(folder / "clip.mp4", (_shifted(framed, dx, dy) for dx, dy in drift), fps=fps)
    return {
        "text": text,
        "text_seconds": audio.size / timebase.SAMPLE_RATE,
        "warm_text": sentences[0],
        "audio": str(folder / "speech.wav"),
        "warm": str(folder / "warm.wav"),
        "photo": str(photo.file()),
        "clip": str(folder / "clip.mp4"),
    }


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    import cv2

    shift = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(image, shift, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


HEADER = [
    "input", "px", "Face2Vid weights", "output", "frames", "speech s", "wall s", "frames/s",
    "real-time factor", "peak memory MiB", "RSS growth MiB", "load s",
]  # fmt: skip
NAMES = {"photo": "photo + audio", "clip": "clip + audio", "text": "photo + text"}


def summary_row(kind: str, size: int, r: dict) -> list[str]:
    """One line of the first table (``HEADER``) for the result ``r`` of ``measure``."""
    return [
        NAMES[kind], str(size), "fresh" if r["weights"] == "fresh" else "trained", r["output"],
        str(r["frames"]), f"{r['speech']:.1f}", f"{r['total']:.1f}", f"{r['frames'] / r['total']:.1f}",
        f"{r['total'] / r['speech']:.2f}", f"{r['peak'] / 2**20:.0f}",
        f"{r['growth'] / 2**20:.0f}" if r["growth"] else "-", f"{r['load']:.1f}",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="speech length")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--inputs", nargs="+", default=list(NAMES), choices=list(NAMES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--landmarks_checkpoint", default=None)
    parser.add_argument("--face2vid_checkpoint", default=None, help="used where its size matches a row")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    summary, breakdown, notes = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        inputs = make_inputs(Path(scratch), args.seconds)
        for size in args.sizes:
            for kind in args.inputs:
                face = inputs["clip" if kind == "clip" else "photo"]
                speech = {"text": inputs["text"]} if kind == "text" else {"audio": inputs["audio"]}
                warm_speech = {"text": inputs["warm_text"]} if kind == "text" else {"audio": inputs["warm"]}
                warm = {"face": face, "speech": warm_speech}
                checkpoints = (args.landmarks_checkpoint, args.face2vid_checkpoint)
                r = _in_fresh_process(size, face, speech, warm, args.device, args.threads, checkpoints)
                summary.append(summary_row(kind, size, r))
                share = {part: seconds / r["total"] for part, seconds in r["parts"].items()}
                breakdown.append(
                    [
                        f"{NAMES[kind]}, {size} px",
                        *(f"{r['parts'][p]:.2f} ({100 * share[p]:.0f}%)" for p in PARTS),
                    ]
                )
                top = sorted(share, key=share.get, reverse=True)[:3]
                notes.append(
                    f"{NAMES[kind]}, {size} px: " + ", ".join(f"{p} {100 * share[p]:.0f}%" for p in top)
                )
                print(" | ".join(summary[-1]), flush=True)
    device = torch.cuda.get_device_name() if cuda else platform.processor() or "CPU"
    setup = (
        f"{args.seconds:g} s of speech (GRID sentences, the project's TTS; the text rows speak all "
        f"{inputs['text_seconds']:.1f} s of them); face: the Grace Hopper photo (matplotlib) or a "
        f"{args.seconds:g}-s 640x360 30-fps clip of it. Device: {args.device} ({device}, {os.cpu_count()} "
        f"cores visible, {args.threads} torch thread(s)), torch {torch.__version__}; load average at start "
        f"{load:.1f}. Peak memory: {'torch.cuda.max_memory_allocated' if cuda else 'the process max RSS'}."
    )
    report = "\n\n".join(
        [
            "## End-to-end generation speed (`talking-face generate`)",
            setup,
            _table(HEADER, summary),
            "Real-time factor = wall clock / speech duration (below 1: faster than real time, which at "
            f"{REAL_TIME_FPS:.0f} fps means {REAL_TIME_FPS:.0f} frames/s). The wall clock covers decoding, "
            "detection, both stages, composing and H.264 + AAC encoding, after a short warm-up in the same "
            "process; loading the checkpoints is the `load s` column.",
            "### Where the time goes (seconds, share of the wall clock)",
            _table(["run", *PARTS], breakdown),
            "Largest parts: " + "; ".join(notes) + ".",
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generate_speed.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
