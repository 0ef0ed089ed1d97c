"""The cache inspection plots and table, on a hand-made record (no TTS, no detector)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.collections import PathCollection

from talking_face.datamodules import timebase
from talking_face.datamodules.cache import CachedUtterance, record_dir, write_manifest, write_record
from talking_face.datamodules.datamodule import TalkingFaceDataModule
from talking_face.datamodules.faces.alignment import TEMPLATE_68
from talking_face.datamodules.faces.landmark_scheme import MOUTH
from talking_face.datamodules.inspect import (
    describe_batch,
    describe_record,
    frame_envelope,
    inspect_cache,
    lagged_correlation,
    plot_clip,
    plot_frame_strip,
    plot_mel_with_phonemes,
    plot_mouth_vs_envelope,
    plot_normalised_mouth,
    summarize_cache,
)

FRAMES, SIZE = 20, 32
PHONEMES = [("sil", 0.0, 0.2), ("B", 0.2, 0.28), ("AA", 0.28, 0.6), ("sil", 0.6, FRAMES / timebase.FPS)]
UPPER_INNER, LOWER_INNER = [61, 62, 63], [67, 66, 65]


def _loudness() -> np.ndarray:
    """Per-frame amplitude [T]: silent, then a rise and fall of speech, then silent."""
    loud = np.zeros(FRAMES)
    loud[5:15] = np.sin(np.linspace(0, np.pi, 11)[:10]) + 0.1  # one loudest frame: 10
    return loud


def _write(cache, speaker: str, utterance: str, opening: np.ndarray) -> CachedUtterance:
    """A record whose lower inner lip is ``opening`` [T] pixels below the upper one, with a tone whose
    per-frame amplitude follows ``_loudness``."""
    landmarks = np.repeat((TEMPLATE_68 * SIZE - 0.5)[None], FRAMES, axis=0).astype(np.float32)
    landmarks[:, LOWER_INNER, 1] = landmarks[:, UPPER_INNER, 1] + opening[:, None]
    t = np.arange(FRAMES * timebase.SAMPLES_PER_FRAME) / timebase.SAMPLE_RATE
    tone = np.sin(2 * np.pi * 250 * t)  # 250 Hz: whole periods in each 40 ms frame
    audio = np.repeat(_loudness(), timebase.SAMPLES_PER_FRAME) * tone
    arrays = {
        "frames": np.random.default_rng(0).integers(0, 255, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8),
        "landmarks": landmarks,
        "crop_transforms": np.tile(np.eye(2, 3, dtype=np.float32), (FRAMES, 1, 1)),
        "audio": audio.astype(np.float32),
        "audio_features": np.random.default_rng(1).normal(size=(FRAMES * 4, 80)).astype(np.float32),
        "phoneme_ids": np.ones(FRAMES, np.int64),
    }
    meta = {
        "speaker": speaker, "utterance": utterance, "text": "bah", "fps": timebase.FPS,
        "sample_rate": timebase.SAMPLE_RATE, "num_frames": FRAMES, "crop_size": SIZE,
        "phonemes": [{"label": label, "start": start, "end": end} for label, start, end in PHONEMES],
        "words": [],
    }  # fmt: skip
    folder = record_dir(cache, speaker, utterance)
    write_record(folder, arrays, meta)
    return CachedUtterance(folder)


@pytest.fixture
def cache(tmp_path):
    _write(tmp_path, "s1", "u1", 4.0 * _loudness())
    _write(tmp_path, "s1", "u2", 4.0 * np.roll(_loudness(), -3))  # the mouth opens 3 frames early
    _write(tmp_path, "s2", "u1", np.full(FRAMES, 1.5))
    write_manifest(tmp_path)
    report = {"skipped": [{"key": "s2/broken", "file": "s2/video/broken.mpg", "reason": "unreadable"}]}
    (tmp_path / "preprocess_report.json").write_text(json.dumps(report))
    return tmp_path


def test_frame_strip_draws_68_points_per_crop(cache):
    record = CachedUtterance(record_dir(cache, "s1", "u1"))
    figure = plot_frame_strip(record, count=5)
    (ax,) = figure.axes
    (image,) = ax.get_images()
    assert image.get_array().shape == (SIZE, 5 * SIZE, 3)
    face, mouth = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(face.get_offsets()) == 5 * MOUTH.start and len(mouth.get_offsets()) == 5 * len(MOUTH)
    assert face.get_facecolor()[0].tolist() != mouth.get_facecolor()[0].tolist()
    # crop i's points are shifted by i crop widths: the last crop's mouth lies in the last crop
    assert (mouth.get_offsets()[-len(MOUTH) :, 0] > 4 * SIZE).all()
    assert len(plot_frame_strip(record, count=100).axes[0].get_xticks()) == FRAMES  # never more than T


def test_mel_plot_has_one_boundary_and_label_per_phoneme(cache):
    figure = plot_mel_with_phonemes(CachedUtterance(record_dir(cache, "s1", "u1")))
    (ax,) = figure.axes
    assert sorted(line.get_xdata()[0] for line in ax.get_lines()) == [start for _, start, _ in PHONEMES]
    assert [text.get_text() for text in ax.texts] == [label for label, _, _ in PHONEMES]
    (image,) = ax.get_images()
    left, right, _, _ = image.get_extent()
    assert right - left == pytest.approx(FRAMES / timebase.FPS)  # 4 steps of 10 ms per 40 ms frame


def test_envelope_and_correlation_known_answers():
    t = np.arange(2 * timebase.SAMPLES_PER_FRAME) / timebase.SAMPLE_RATE
    tone = np.sin(2 * np.pi * 250 * t)  # 250 Hz: whole periods in each 40 ms frame
    tone[: timebase.SAMPLES_PER_FRAME] *= 0.5
    assert frame_envelope(tone, 2) == pytest.approx([0.5 / np.sqrt(2), 1 / np.sqrt(2)], rel=1e-4)
    with pytest.raises(ValueError, match="3 frames"):
        frame_envelope(tone, 3)
    signal = np.random.default_rng(0).normal(size=50)
    delayed = np.roll(signal, 2)
    correlations = lagged_correlation(signal, delayed, max_lag=4)
    assert max(correlations, key=correlations.get) == 2 and correlations[2] == pytest.approx(1.0, abs=0.05)
    assert 0 not in lagged_correlation(np.ones(10), signal[:10])  # constant: no correlation defined


def test_mouth_plot_reports_the_correlation_it_shows(cache):
    follows = plot_mouth_vs_envelope(CachedUtterance(record_dir(cache, "s1", "u1"))).axes[0]
    assert "envelope: r = 1.00" in follows.get_title()  # opening drawn proportional to loudness
    mouth, envelope = follows.get_lines()
    assert np.asarray(mouth.get_ydata()) == pytest.approx(np.asarray(envelope.get_ydata()), abs=1e-3)
    assert min(mouth.get_ydata()) == 0 and max(mouth.get_ydata()) == 1
    assert len(follows.patches) == 2  # the two silences are shaded
    early = plot_mouth_vs_envelope(CachedUtterance(record_dir(cache, "s1", "u2"))).axes[0].get_title()
    assert early.startswith("mouth opening vs audio envelope: r = 0.") and "best r = 1.00 at lag +3" in early


def test_summary_counts_the_cache_and_the_skipped_files(cache):
    summary = summarize_cache(cache)
    assert (summary["speakers"], summary["utterances"], summary["frames"]) == (2, 3, 3 * FRAMES)
    assert summary["hours"] == pytest.approx(3 * FRAMES / timebase.FPS / 3600)
    assert summary["crop_sizes"] == [SIZE] and summary["skipped"] == 1
    assert summary["per_speaker"]["s1"] == {"utterances": 2, "frames": 2 * FRAMES}
    shapes = describe_record(CachedUtterance(record_dir(cache, "s2", "u1")))
    assert shapes["frames"] == f"uint8 [{FRAMES}, {SIZE}, {SIZE}, 3]"
    assert shapes["audio_features"] == f"float32 [{FRAMES * 4}, 80]"


def test_inspect_cache_prints_a_table_and_writes_a_png(cache, tmp_path, capsys):
    out = tmp_path / "figures" / "overview.png"
    result = inspect_cache(str(cache), str(out), utterance="s2/u1")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["figure"] == str(out) and result["utterance"] == "s2/u1" and result["utterances"] == 3
    printed = capsys.readouterr().out
    assert "s1" in printed and "s2" in printed and "skipped in last preprocessing: 1" in printed
    with pytest.raises(ValueError, match="no utterance 'nope'"):
        inspect_cache(str(cache), str(out), utterance="nope")


def test_batch_views_of_both_stages(cache):
    data = TalkingFaceDataModule(str(cache), "face2vid", batch_size=2, test_speakers=["s2"], clip_length=4)
    batch = next(iter(data.train_dataloader()))
    assert describe_batch(batch)["frames"] == f"float32 [2, 4, 3, {SIZE}, {SIZE}]"
    assert describe_batch(batch)["speaker"] == "list[str] of 2"
    (ax,) = plot_clip(batch, index=1).axes
    assert ax.get_images()[0].get_array().shape == (SIZE, 5 * SIZE, 3)  # the reference, then 4 frames
    assert sum(len(c.get_offsets()) for c in ax.collections) == 5 * 68
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "reference"

    data = TalkingFaceDataModule(str(cache), "landmarks", batch_size=2, test_speakers=["s2"], max_frames=None)
    batch = next(iter(data.train_dataloader()))
    (ax,) = plot_normalised_mouth(batch, index=batch["utterance"].index("u1")).axes
    (cloud,) = ax.collections
    assert len(cloud.get_offsets()) == FRAMES * len(MOUTH)
    most_open = [line for line in ax.get_lines() if "most open" in line.get_label()]
    assert [line.get_label() for line in most_open] == ["most open (frame 10)"]  # u1 opens with loudness
