"""Preprocessing: a corpus on disk -> one cached record per utterance (see ``datamodules.cache``).

For each utterance: decode the audio (16 kHz mono) and the video (resampled to 25 fps, streamed);
track 68 landmarks with the real detector; smooth them; estimate a smoothed similarity per frame from
the stable points to the crop template; crop (second streaming pass, so a long video never sits in
memory); compute log-mel features on the same timebase; place phonemes on the frames from the most
precise timing available (TTS phoneme times > GRID word times split by duration priors > forced
alignment of the transcript on the audio).

A bad utterance never stops the run: it is skipped with a message naming its file and listed in
``preprocess_report.json``. Finished records are never redone, so a rerun resumes.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from talking_face.datamodules import timebase
from talking_face.datamodules.atomic import write_json
from talking_face.datamodules.cache import StreamedArray, is_done, record_dir, write_manifest, write_record
from talking_face.datamodules.corpora import CorpusError, Utterance, read_corpus
from talking_face.datamodules.media import MediaError, iter_video_frames, load_audio
from talking_face.datamodules.segments import Segment

REPORT = "preprocess_report.json"


class SkipUtterance(ValueError):
    """This utterance cannot make a usable record; the message says which file and why."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Knobs of preprocessing (all have defaults that work on GRID and on your own videos).

    Args:
        crop_size: side of the square aligned face crop in pixels (128 default, 256 for sharper faces).
        detector: landmark detector name (``datamodules.faces.detector.make_detector``).
        redetect_every: run the full face detector every N frames; in between, track (fit in the box).
        landmark_smoothing: temporal window (frames) against detector jitter; 1 = none.
        crop_smoothing: temporal window (frames) of the crop's similarity transform; 1 = none.
        min_face_fraction: skip videos where the face is found in fewer frames than this.
        min_speech_rms: skip utterances whose audio RMS is below this (silent or missing speech).
        max_missing_seconds: skip videos that end this much before their audio or their words end.
    """

    crop_size: int = 128
    detector: str = "dlib"
    redetect_every: int = 25
    landmark_smoothing: int = 5
    crop_smoothing: int = 9
    min_face_fraction: float = 0.8
    min_speech_rms: float = 1e-3
    max_missing_seconds: float = 0.2


@cache
def _detector(name: str):
    """One detector per process (loading dlib's model takes a moment; workers reuse theirs)."""
    from talking_face.datamodules.faces.detector import make_detector

    return make_detector(name)


def _phoneme_segments(
    utterance: Utterance, text: str, pronunciations: list, audio: np.ndarray, duration: float
) -> tuple[list[Segment], list[Segment]]:
    """Phoneme and word segments covering [0, duration], from the most precise source present."""
    from talking_face.datamodules.alignment import normalise_segments, phonemes_from_words

    timings = utterance.read_phoneme_timings()
    words = utterance.read_words()
    if timings is not None:
        return normalise_segments(timings, duration), words or []
    if words is not None:
        return phonemes_from_words(words, pronunciations, duration), words
    from talking_face.datamodules.forced_aligner import force_align

    alignment = force_align(audio, timebase.SAMPLE_RATE, text)
    return normalise_segments(alignment.phonemes, duration), alignment.words


def process_utterance(utterance: Utterance, cache_dir: str | Path, options: PreprocessConfig) -> dict:
    """Build the cached record of one utterance; returns its meta (``num_frames``, ``oov_words``, ...).

    Raises SkipUtterance, CorpusError or MediaError (each naming the file) when it cannot.
    """
    from talking_face.datamodules.alignment import check_alignment, frame_phoneme_ids
    from talking_face.datamodules.audio_features import fit_to_frames, log_mel
    from talking_face.datamodules.faces.alignment import (
        estimate_crop_transform,
        smooth_transforms,
        transform_points,
        warp_to_crop,
    )
    from talking_face.datamodules.faces.detector import smooth_landmarks, track_landmarks
    from talking_face.datamodules.phonemes import pronounce

    text = utterance.read_text()
    pronunciations = pronounce(text)
    oov_words = sorted({w.word for w in pronunciations if not w.in_dictionary})  # spelled by g2p's model
    audio_source = utterance.audio or utterance.video
    audio = load_audio(audio_source)
    detector = _detector(options.detector)
    landmarks, found = track_landmarks(iter_video_frames(utterance.video), detector, options.redetect_every)
    num_frames = len(landmarks)
    face_fraction = float(found.mean()) if num_frames else 0.0
    if face_fraction < options.min_face_fraction:
        found_in = f"{face_fraction:.0%} of {num_frames} frames"
        raise SkipUtterance(f"{utterance.video}: face found in only {found_in}")
    landmarks = smooth_landmarks(landmarks, found, options.landmark_smoothing)
    transforms = estimate_crop_transform(landmarks, options.crop_size)
    transforms = smooth_transforms(transforms, options.crop_smoothing)

    duration = num_frames / timebase.FPS
    _check_video_covers(utterance, duration, audio.size / timebase.SAMPLE_RATE, options.max_missing_seconds)
    rms = float(np.sqrt(np.mean(np.square(audio))))
    if rms < options.min_speech_rms:
        raise SkipUtterance(f"{audio_source}: audio is silent (RMS {rms:.2e} < {options.min_speech_rms:g})")
    phonemes, words = _phoneme_segments(utterance, text, pronunciations, audio, duration)
    check_alignment(phonemes, duration)
    audio = fit_to_frames(audio, num_frames)
    size = options.crop_size
    frames = iter_video_frames(utterance.video)  # second pass: crop while streaming
    crops = (warp_to_crop(frame, matrix, size) for frame, matrix in zip(frames, transforms, strict=False))
    arrays = {
        "frames": StreamedArray((num_frames, size, size, 3), np.uint8, crops),
        "landmarks": transform_points(landmarks, transforms).astype(np.float32),
        "crop_transforms": transforms.astype(np.float32),
        "audio": audio,
        "audio_features": log_mel(audio, num_frames),
        "phoneme_ids": frame_phoneme_ids(phonemes, num_frames),
    }
    meta = {
        "speaker": utterance.speaker,
        "utterance": utterance.utterance,
        "text": text,
        "fps": timebase.FPS,
        "sample_rate": timebase.SAMPLE_RATE,
        "num_frames": num_frames,
        "crop_size": size,
        "phonemes": [s.to_dict() for s in phonemes],
        "words": [s.to_dict() for s in words],
        "sources": {k: str(v) for k, v in asdict(utterance).items() if isinstance(v, Path)},
        "detector": options.detector,
        "face_found_fraction": face_fraction,
        "oov_words": oov_words,
    }
    write_record(record_dir(cache_dir, utterance.speaker, utterance.utterance), arrays, meta)
    return meta


def _check_video_covers(
    utterance: Utterance, video_seconds: float, audio_seconds: float, slack: float
) -> None:
    """A truncated video often still decodes (as a shorter clip): catch it by what it should cover."""
    if audio_seconds > video_seconds + slack:
        raise SkipUtterance(
            f"{utterance.video}: video lasts {video_seconds:.2f} s but its audio {audio_seconds:.2f} s "
            "(truncated?)"
        )
    words = utterance.read_words()
    spoken_end = max((w.end for w in words or [] if w.label != "sil"), default=0.0)
    if spoken_end > video_seconds + slack:
        raise SkipUtterance(
            f"{utterance.video}: video lasts {video_seconds:.2f} s but {utterance.alignment} has speech "
            f"until {spoken_end:.2f} s (truncated video?)"
        )


def _process_safely(utterance: Utterance, cache_dir: Path, options: PreprocessConfig) -> dict:
    """Run one utterance and turn any failure into a report entry (never raises)."""
    started = time.perf_counter()
    try:
        meta = process_utterance(utterance, cache_dir, options)
        seconds = time.perf_counter() - started
        result = {"key": utterance.key, "status": "done", "frames": meta["num_frames"], "seconds": seconds}
        if meta["oov_words"]:
            result["note"] = f"{utterance.video}: not in the dictionary, spelled by g2p: {meta['oov_words']}"
        return result
    except (SkipUtterance, CorpusError, MediaError, ValueError) as error:
        reason = str(error)
    except Exception as error:  # an unexpected bug must not cost the other utterances either
        reason = f"{utterance.video}: unexpected {type(error).__name__}: {error}\n{traceback.format_exc()}"
    return {"key": utterance.key, "status": "skipped", "file": str(utterance.video), "reason": reason}


def preprocess_corpus(
    corpus: str | Path,
    cache_dir: str | Path,
    layout: str = "auto",
    workers: int = 1,
    options: PreprocessConfig = PreprocessConfig(),  # noqa: B008 - frozen, so sharing the default is safe
    progress: bool = True,
) -> dict:
    """Preprocess every utterance of ``corpus`` into ``cache_dir``; returns the report (also written).

    Args:
        corpus: the corpus root (GRID layout, a folder of videos + transcripts, or the built-in corpus).
        cache_dir: where records, ``manifest.json`` and ``preprocess_report.json`` go.
        layout: ``auto``, ``grid`` or ``folder``.
        workers: processes working in parallel (each loads its own detector).
        options: preprocessing knobs (``--options.crop_size 256`` on the command line).
        progress: show a progress bar.
    """
    cache_dir = Path(cache_dir)
    utterances = read_corpus(corpus, layout)
    todo = [u for u in utterances if not is_done(cache_dir, u.speaker, u.utterance)]
    started = time.perf_counter()
    results = []
    bar = tqdm(total=len(todo), desc="preprocess", unit="utt", disable=not progress)
    if workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_process_safely, u, cache_dir, options) for u in todo]
            for future in as_completed(futures):
                results.append(future.result())
                bar.update()
    else:
        for utterance in todo:
            results.append(_process_safely(utterance, cache_dir, options))
            bar.update()
    bar.close()
    seconds = time.perf_counter() - started
    done = [r for r in results if r["status"] == "done"]
    skipped = [r for r in results if r["status"] == "skipped"]
    notes = [{"key": r["key"], "note": r["note"]} for r in done if "note" in r]
    if progress:
        for entry in skipped:
            tqdm.write(f"skipped {entry['key']}: {entry['reason'].splitlines()[0]}")
        for entry in notes:
            tqdm.write(f"note {entry['key']}: {entry['note']}")
    frames = sum(r["frames"] for r in done)
    report = {
        "corpus": str(corpus),
        "utterances": len(utterances),
        "already_done": len(utterances) - len(todo),
        "done": len(done),
        "skipped": skipped,
        "notes": notes,
        "frames": frames,
        "seconds": round(seconds, 2),
        "frames_per_second": round(frames / seconds, 1) if seconds and frames else 0.0,
        "workers": workers,
        "options": asdict(options),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(cache_dir)
    write_json(cache_dir / REPORT, report)
    if progress:
        tqdm.write(
            f"{len(done)} done, {len(skipped)} skipped, {report['already_done']} already done; "
            f"{frames} frames in {seconds:.1f} s; report: {cache_dir / REPORT}"
        )
    return report
