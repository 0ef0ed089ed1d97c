"""The preprocessed cache: one folder of memory-mapped arrays per utterance, and a manifest.

Layout (``cache_dir/records/<speaker>/<utterance>/``); T = video frames at ``timebase.FPS``:

- ``frames.npy``          uint8   [T, S, S, 3] aligned face crops, S = crop size
- ``landmarks.npy``       float32 [T, 68, 2]   (x, y) in crop pixels, smoothed detector output
- ``crop_transforms.npy`` float32 [T, 2, 3]    similarity: source-video pixels -> crop pixels
- ``audio.npy``           float32 [T * SAMPLES_PER_FRAME] mono at ``timebase.SAMPLE_RATE``
- ``audio_features.npy``  float32 [T * STEPS_PER_FRAME, N_MELS] log-mel (``audio_features.log_mel``)
- ``phoneme_ids.npy``     int64   [T] ``phonemes.VOCAB`` id under each frame centre
- ``meta.json``           speaker, utterance, text, fps, sample_rate, num_frames, crop_size, phonemes and
  words as [{label, start, end}] in seconds, source files, detector, face_found_fraction

A record folder is built under a temporary name and renamed into place when complete, so a folder
with a ``meta.json`` is always whole: that is how a rerun knows what is done.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from talking_face.datamodules.atomic import atomic_path, write_json
from talking_face.datamodules.segments import Segment

ARRAY_NAMES = ("frames", "landmarks", "crop_transforms", "audio", "audio_features", "phoneme_ids")
MANIFEST = "manifest.json"
CACHE_VERSION = 1


def record_dir(cache_dir: str | Path, speaker: str, utterance: str) -> Path:
    return Path(cache_dir) / "records" / speaker / utterance


def is_done(cache_dir: str | Path, speaker: str, utterance: str) -> bool:
    return (record_dir(cache_dir, speaker, utterance) / "meta.json").is_file()


@dataclass(frozen=True)
class StreamedArray:
    """An array written row by row into its memory-mapped file, never held whole in memory."""

    shape: tuple[int, ...]
    dtype: np.dtype | type
    rows: Iterable[np.ndarray]


def write_record(folder: Path, arrays: dict[str, np.ndarray | StreamedArray], meta: dict) -> None:
    """Write a whole record atomically; ``arrays`` may hold extra names beside ``ARRAY_NAMES``."""
    missing = set(ARRAY_NAMES) - set(arrays)
    if missing:
        raise ValueError(f"record {folder} lacks arrays {sorted(missing)}")
    with atomic_path(folder, directory=True) as tmp:
        for name, array in arrays.items():
            if isinstance(array, StreamedArray):
                _write_streamed(tmp / f"{name}.npy", array)
            else:
                np.save(tmp / f"{name}.npy", array)
        (tmp / "meta.json").write_text(json.dumps({"version": CACHE_VERSION, **meta}, indent=2))


def _write_streamed(path: Path, array: StreamedArray) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    count = 0
    for count, row in enumerate(array.rows, start=1):  # noqa: B007 - count is read after the loop
        if count > array.shape[0]:
            raise ValueError(f"{path.name}: more rows than the {array.shape[0]} announced")
        out[count - 1] = row
    if count != array.shape[0]:
        raise ValueError(f"{path.name}: {count} rows written, {array.shape[0]} announced")
    out.flush()
    del out


@dataclass(frozen=True)
class CachedUtterance:
    """One record, its arrays memory-mapped on first access (cheap to create in every loader worker)."""

    path: Path

    @cached_property
    def meta(self) -> dict:
        return json.loads((self.path / "meta.json").read_text())

    def array(self, name: str) -> np.ndarray:
        return np.load(self.path / f"{name}.npy", mmap_mode="r")

    @property
    def speaker(self) -> str:
        return self.meta["speaker"]

    @property
    def utterance(self) -> str:
        return self.meta["utterance"]

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def phonemes(self) -> list[Segment]:
        return [Segment.from_dict(item) for item in self.meta["phonemes"]]


def scan_records(cache_dir: str | Path) -> list[CachedUtterance]:
    """Every complete record under ``cache_dir``, sorted by speaker and utterance."""
    return [CachedUtterance(meta.parent) for meta in sorted(Path(cache_dir).glob("records/*/*/meta.json"))]


def write_manifest(cache_dir: str | Path) -> Path:
    """Rebuild ``manifest.json`` from the complete records on disk (atomic)."""
    records = [
        {
            "speaker": r.speaker,
            "utterance": r.utterance,
            "path": str(r.path.relative_to(cache_dir)),
            "num_frames": r.num_frames,
            "text": r.meta["text"],
        }
        for r in scan_records(cache_dir)
    ]
    path = Path(cache_dir) / MANIFEST
    write_json(path, {"version": CACHE_VERSION, "records": records})
    return path


def load_manifest(cache_dir: str | Path) -> list[CachedUtterance]:
    """The records listed in the manifest; a clear error when the cache was never built."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest: build the cache with `talking-face preprocess`")
    manifest = json.loads(path.read_text())
    return [CachedUtterance(Path(cache_dir) / item["path"]) for item in manifest["records"]]
