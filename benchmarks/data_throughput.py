"""How fast the data pipeline is: preprocessing (frames/s per worker, per stage) and loading (samples/s).

    python benchmarks/data_throughput.py [--speakers 3 --utterances 4 --seed 0 --out outputs/benchmarks]

Synthesises a small built-in corpus (kept in ``<out>/corpus`` and reused by later runs), then measures:

1. preprocessing with ``preprocess_corpus`` on 1 and on 2 workers (fresh caches, best of 2 runs; wall
   clock with process start-up and detector loading included): frames/s, and frames/s per worker;
2. where one worker's time goes, by timing the public functions that preprocessing calls, in its order,
   on the corpus' first videos: decode, detect + track, smooth + crop transforms, crop, audio + features +
   phonemes, write;
3. ``TalkingFaceDataModule`` loading for stage 1 (``landmarks``) and stage 2 (``face2vid``) with
   ``num_workers`` 0 and 2: samples/s after one warm-up epoch;
4. baselines measured in the same run: one training step of small stand-in networks (a 2-layer GRU
   over the [B, 4T, 80] log-mel folded to frames; a 4-layer conv encoder-decoder over the [B*L, 3, S, S]
   frames of a clip) and whole records read with ``np.load`` without memory-mapping. The real networks
   are larger than the stand-ins, so their steps are slower: while the loader's samples/s exceed the
   stand-in step's, the loader is not the bottleneck.

Writes the markdown tables to stdout and to ``<out>/data_throughput.md``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from talking_face.datamodules.cache import ARRAY_NAMES, load_manifest

BATCH_SIZE = 8
MAX_FRAMES = 150
CLIP_LENGTH = 8


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class _Stopwatch:
    """Accumulates wall time per named stage: ``with clock("crop"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started


# --- preprocessing --------------------------------------------------------------------------------


def preprocessing_throughput(
    corpus: Path, scratch: Path, workers: Iterable[int] = (1, 2), repeats: int = 2
) -> list[list]:
    """Rows [workers, utterances, frames, seconds, frames/s, frames/s per worker]: the best of ``repeats``
    runs, each into a fresh cache (the best, because other processes on a shared machine only slow runs
    down). The first 1-worker cache is kept as ``scratch / "cache_1w"``."""
    from talking_face.datamodules.preprocess import preprocess_corpus

    rows = []
    for count in workers:
        reports = []
        for repeat in range(repeats):
            name = f"cache_{count}w" if repeat == 0 else f"cache_{count}w_{repeat}"
            reports.append(preprocess_corpus(corpus, scratch / name, workers=count, progress=False))
            if reports[-1]["skipped"]:
                raise RuntimeError(
                    f"{corpus}: benchmark corpus has skipped utterances: {reports[-1]['skipped']}"
                )
        best = min(reports, key=lambda report: report["seconds"])
        rate = best["frames"] / best["seconds"]
        rows.append(
            [
                count,
                best["done"],
                best["frames"],
                f"{best['seconds']:.1f}",
                f"{rate:.1f}",
                f"{rate / count:.1f}",
            ]
        )
    return rows


def worker_startup() -> float:
    """Seconds a fresh Python process takes to import preprocessing and load the detector, as a worker."""
    code = (
        "import numpy as np; import talking_face.datamodules.preprocess; from talking_face.datamodules.faces.detector import "
        "make_detector; make_detector('dlib').detect(np.zeros((64, 64, 3), np.uint8))"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def preprocessing_stages(corpus: Path, scratch: Path, videos: int = 3) -> list[list]:
    """Rows [stage, ms per frame, share] of one worker on the first ``videos`` utterances (model loaded).

    Mirrors ``datamodules.preprocess.process_utterance`` with the same public functions and default
    options. Preprocessing decodes each video twice (track, then crop while streaming, so a long video
    never sits in memory); here the first pass is materialised to time decoding apart from tracking.
    """
    from talking_face.datamodules import timebase
    from talking_face.datamodules.alignment import frame_phoneme_ids, normalise_segments
    from talking_face.datamodules.audio_features import fit_to_frames, log_mel
    from talking_face.datamodules.cache import write_record
    from talking_face.datamodules.corpora import read_corpus
    from talking_face.datamodules.faces.alignment import (
        estimate_crop_transform,
        smooth_transforms,
        transform_points,
        warp_to_crop,
    )
    from talking_face.datamodules.faces.detector import make_detector, smooth_landmarks, track_landmarks
    from talking_face.datamodules.media import iter_video_frames, load_audio
    from talking_face.datamodules.preprocess import PreprocessConfig

    options, clock = PreprocessConfig(), _Stopwatch()
    detector = make_detector(options.detector)
    detector.detect(np.zeros((64, 64, 3), np.uint8))  # the model file is read on first use: not timed
    total_frames = 0
    for utterance in read_corpus(corpus)[:videos]:
        with clock("decode video (2 passes)"):
            frames = list(iter_video_frames(utterance.video))
        with clock("detect + track landmarks"):
            landmarks, found = track_landmarks(frames, detector, options.redetect_every)
        with clock("smooth + crop transforms"):
            landmarks = smooth_landmarks(landmarks, found, options.landmark_smoothing)
            transforms = estimate_crop_transform(landmarks, options.crop_size)
            transforms = smooth_transforms(transforms, options.crop_smoothing)
        with clock("decode video (2 passes)"):
            for _ in iter_video_frames(utterance.video):  # the crop pass decodes again
                pass
        with clock("crop (warp to 128 px)"):
            crops = np.stack(
                [warp_to_crop(f, m, options.crop_size) for f, m in zip(frames, transforms, strict=True)]
            )
        count = len(frames)
        with clock("audio + log-mel + phonemes"):
            audio = fit_to_frames(load_audio(utterance.audio or utterance.video), count)
            phonemes = normalise_segments(utterance.read_phoneme_timings(), count / timebase.FPS)
            arrays = {
                "audio": audio,
                "audio_features": log_mel(audio, count),
                "phoneme_ids": frame_phoneme_ids(phonemes, count),
                "frames": crops,
                "landmarks": transform_points(landmarks, transforms).astype(np.float32),
                "crop_transforms": transforms.astype(np.float32),
            }
        with clock("write record"):
            meta = {"speaker": utterance.speaker, "utterance": utterance.utterance, "num_frames": count}
            write_record(scratch / "stages" / utterance.key, arrays, meta)
        total_frames += count
    total = sum(clock.seconds.values())
    rows = [
        [stage, f"{1000 * seconds / total_frames:.2f}", f"{100 * seconds / total:.0f} %"]
        for stage, seconds in clock.seconds.items()
    ]
    rows.append(
        [
            f"total ({total_frames} frames)",
            f"{1000 * total / total_frames:.2f}",
            f"{total_frames / total:.0f} frames/s",
        ]
    )
    return rows


# --- loading --------------------------------------------------------------------------------------


def loader_throughput(
    cache: Path, stage: str, num_workers: int, min_seconds: float = 3.0
) -> tuple[float, int]:
    """(samples/s, samples per epoch) of the training loader after one warm-up epoch."""
    from talking_face.datamodules.datamodule import TalkingFaceDataModule

    data = TalkingFaceDataModule(
        str(cache), stage, batch_size=BATCH_SIZE, num_workers=num_workers, val_utterances=0.0,
        test_utterances=0.0, test_speakers=0, max_frames=MAX_FRAMES, clip_length=CLIP_LENGTH,
    )  # fmt: skip
    loader = data.train_dataloader()
    epoch = len(loader.dataset)
    for _ in loader:  # warm-up: workers start, files are opened and paged in
        pass
    samples, started = 0, time.perf_counter()
    while samples == 0 or time.perf_counter() - started < min_seconds:
        for batch in loader:
            samples += len(batch["speaker"])
    return samples / (time.perf_counter() - started), epoch


def _step_rate(
    model: torch.nn.Module, make_batch: Callable[[], torch.Tensor], batch: int, min_seconds: float
) -> float:
    """Samples/s of Adam training steps (forward, mean-square loss, backward, update) after one warm-up."""
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    inputs = make_batch()

    def step() -> None:
        optimiser.zero_grad()
        model(inputs).square().mean().backward()
        optimiser.step()

    step()
    runs, started = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - started < min_seconds:
        step()
        runs += 1
    return batch * runs / (time.perf_counter() - started)


class _RecurrentStandIn(torch.nn.Module):
    """Stage-1 stand-in: log-mel [B, 4T, 80] -> 4 steps folded per frame -> 2-layer GRU 256 -> [B, T, 40]."""

    def __init__(self) -> None:
        super().__init__()
        self.fold = torch.nn.Conv1d(80, 256, kernel_size=4, stride=4)
        self.gru = torch.nn.GRU(256, 256, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(256, 40)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        frames = self.fold(features.transpose(1, 2)).transpose(1, 2)  # [B, T, 256]
        return self.head(self.gru(frames)[0])


def _conv_stand_in() -> torch.nn.Module:
    """Stage-2 stand-in: frames [N, 3, S, S] -> 2 strided convs, 2 transposed convs -> [N, 3, S, S]."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 3, 4, 2, 1),
    )  # fmt: skip


def baselines(cache: Path, min_seconds: float = 2.0) -> dict[str, float]:
    """Samples/s of the stand-in training steps and records/s of whole ``np.load`` reads (no mmap)."""
    from talking_face.datamodules import timebase

    records = load_manifest(cache)
    size = int(records[0].meta["crop_size"])
    steps = MAX_FRAMES * timebase.STEPS_PER_FRAME
    torch.manual_seed(0)
    recurrent = _step_rate(
        _RecurrentStandIn(), lambda: torch.randn(BATCH_SIZE, steps, 80), BATCH_SIZE, min_seconds
    )
    frames = lambda: torch.rand(BATCH_SIZE * CLIP_LENGTH, 3, size, size)  # noqa: E731
    conv = _step_rate(_conv_stand_in(), frames, BATCH_SIZE, min_seconds)

    def read_all() -> None:
        for record in records:
            for name in ARRAY_NAMES:
                np.load(record.path / f"{name}.npy")

    reads, started = 0, time.perf_counter()
    while reads == 0 or time.perf_counter() - started < min_seconds:
        read_all()
        reads += len(records)
    return {"recurrent": recurrent, "conv": conv, "np_load": reads / (time.perf_counter() - started)}


# --- the report -----------------------------------------------------------------------------------


def run(speakers: int = 3, utterances: int = 4, seed: int = 0, out: str = "outputs/benchmarks") -> str:
    """Measure and report the data pipeline's throughput on a built-in corpus.

    Args:
        speakers: speakers of the benchmark corpus.
        utterances: sentences per speaker.
        seed: the corpus seed.
        out: folder of the corpus (reused when present) and of ``data_throughput.md``.
    """
    from talking_face.datamodules.synthetic.corpus import synthesize_corpus

    out_dir = Path(out)
    load = os.getloadavg()[0]
    corpus = synthesize_corpus(out_dir / "corpus", speakers, utterances, seed, progress=False)
    with tempfile.TemporaryDirectory(prefix="talking-face-bench-") as scratch:
        scratch = Path(scratch)
        preprocess_rows = preprocessing_throughput(corpus, scratch)
        startup = worker_startup()
        stage_rows = preprocessing_stages(corpus, scratch)
        cache = scratch / "cache_1w"
        loading = {
            (stage, workers): loader_throughput(cache, stage, workers)
            for stage in ("landmarks", "face2vid")
            for workers in (0, 2)
        }
        base = baselines(cache)
        frames = sum(r.num_frames for r in load_manifest(cache))

    step = {"landmarks": base["recurrent"], "face2vid": base["conv"]}
    load_rows = [
        [f"{stage} ({'stage 1' if stage == 'landmarks' else 'stage 2'})", workers, epoch, f"{rate:.0f}",
         f"{step[stage]:.1f}", f"{rate / step[stage]:.0f}x"]
        for (stage, workers), (rate, epoch) in loading.items()
    ]  # fmt: skip
    busy = " (more than the cores: other processes shared them)" if load > (os.cpu_count() or 1) else ""
    report = f"""# Data pipeline throughput

{platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} \
threads), load average {load:.1f} at the start{busy}. Corpus: {speakers} speakers x {utterances} utterances, \
{frames} frames at 25 fps ({frames / 25:.0f} s of video), seed {seed}.

## Preprocessing (`preprocess_corpus`, best of 2 runs, wall clock incl. process start-up and model loading)

{_table(["workers", "utterances", "frames", "seconds", "frames/s", "frames/s per worker"], preprocess_rows)}

A spawned worker first imports the package and loads the dlib model: {startup:.1f} s for a fresh process, a \
large share of a run on a tiny corpus (use more utterances to see the parallel speed-up).

## One worker's time by stage (first 3 videos, detector loaded)

{_table(["stage", "ms per frame", "share"], stage_rows)}

## Loading (`TalkingFaceDataModule.train_dataloader`, batch {BATCH_SIZE})

Stage 1: windows of at most {MAX_FRAMES} frames; stage 2: clips of {CLIP_LENGTH} frames. Baseline: one Adam \
step of a small stand-in network on a batch of the same shape (stage 1: 4 log-mel steps folded per frame, \
2-layer GRU 256 over [B, T, 256]; stage 2: 4-layer conv encoder-decoder over [B*L, 3, S, S]). The real \
networks are larger, so `loader / step` is a lower bound on the margin.

{_table(["stage", "num_workers", "samples per epoch", "loader samples/s", "step samples/s", "loader / step"],
        load_rows)}

Whole records read with `np.load` (no mmap, all arrays): {base["np_load"]:.0f} records/s; the datasets \
memory-map and read only the rows an item needs.
"""  # fmt: skip
    print(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "data_throughput.md").write_text(report)
    return report


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(run, as_positional=False)
