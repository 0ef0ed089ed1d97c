"""Preprocessing end to end on the built-in corpus, and on every kind of bad input issue 2 lists."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import TINY_SPEAKERS, TINY_UTTERANCES

from talking_face.datamodules import timebase
from talking_face.datamodules.cache import load_manifest, scan_records
from talking_face.datamodules.faces.alignment import transform_points
from talking_face.datamodules.media import write_video
from talking_face.datamodules.phonemes import SIL_ID, VOCAB
from talking_face.datamodules.preprocess import REPORT, PreprocessConfig, preprocess_corpus


def test_every_utterance_becomes_a_record_on_one_timebase(tiny_cache):
    records = load_manifest(tiny_cache)
    assert len(records) == TINY_SPEAKERS * TINY_UTTERANCES
    for record in records:
        frames, meta = record.num_frames, record.meta
        assert record.array("frames").shape == (frames, 128, 128, 3)
        assert record.array("landmarks").shape == (frames, 68, 2)
        assert record.array("crop_transforms").shape == (frames, 2, 3)
        assert record.array("audio").shape == (frames * timebase.SAMPLES_PER_FRAME,)
        assert record.array("audio_features").shape == (frames * timebase.STEPS_PER_FRAME, timebase.N_MELS)
        phoneme_ids = np.asarray(record.array("phoneme_ids"))
        assert phoneme_ids.shape == (frames,) and phoneme_ids.min() >= 1 and phoneme_ids.max() < len(VOCAB)
        assert phoneme_ids[0] == SIL_ID and (phoneme_ids != SIL_ID).sum() > frames // 3
        assert meta["fps"] == timebase.FPS and meta["face_found_fraction"] == 1.0
        assert meta["phonemes"][0]["start"] == 0 and meta["phonemes"][-1]["end"] == pytest.approx(frames / 25)


def test_detected_landmarks_match_the_corpus_ground_truth(tiny_corpus, tiny_cache):
    """The real detector, tracked and smoothed, lands on the landmarks the corpus was rendered from."""
    errors = []
    for record in scan_records(tiny_cache):
        truth = np.load(tiny_corpus / record.speaker / "landmarks" / f"{record.utterance}.npy")
        truth_in_crop = transform_points(truth, np.asarray(record.array("crop_transforms")))
        errors.append(np.linalg.norm(truth_in_crop - record.array("landmarks"), axis=-1).mean())
    assert np.mean(errors) < 3.0, f"mean landmark error {np.mean(errors):.2f} px in 128-px crops"


def test_crops_hold_the_face_where_the_template_puts_it(tiny_cache):
    """Aligned crops of different people put the eyes at the same place (the crop follows the face)."""
    eyes = [np.asarray(r.array("landmarks"))[:, 36:48].mean(axis=(0, 1)) for r in scan_records(tiny_cache)]
    assert np.ptp(np.array(eyes), axis=0).max() < 6.0


def test_rerun_resumes_and_redoes_nothing(tiny_corpus, tiny_cache):
    report = preprocess_corpus(tiny_corpus, tiny_cache, progress=False)
    assert report["already_done"] == TINY_SPEAKERS * TINY_UTTERANCES and report["done"] == 0


@pytest.fixture(scope="module")
def broken_corpus(tiny_corpus, tmp_path_factory):
    """A copy of two good utterances plus one of every kind of bad input."""
    root = tmp_path_factory.mktemp("broken")
    speaker = sorted(p.name for p in tiny_corpus.iterdir() if p.is_dir())[0]
    shutil.copytree(tiny_corpus / speaker, root / speaker)
    good = sorted((root / speaker / "video").glob("*.mpg"))
    base = good[0].stem
    frames = np.asarray([np.full((288, 360, 3), 120, np.uint8)] * 50)

    def utterance(name, video_bytes=None, frames_=None, audio=None, align=True):
        video = root / speaker / "video" / f"{name}.mpg"
        if video_bytes is not None:
            video.write_bytes(video_bytes)
        else:
            write_video(video, frames_, audio=audio)
        if align:
            shutil.copy(
                root / speaker / "align" / f"{base}.align", root / speaker / "align" / f"{name}.align"
            )

    speech = np.random.default_rng(0).normal(0, 0.1, 2 * timebase.SAMPLE_RATE).astype(np.float32)
    utterance("unreadable", video_bytes=b"not a video at all")
    utterance("truncated", video_bytes=good[0].read_bytes()[: good[0].stat().st_size // 3])
    utterance("faceless", frames_=frames, audio=speech)
    utterance("silent", frames_=np.asarray(_first_frames(good[0], 50)), audio=np.zeros_like(speech))
    utterance("unaligned", frames_=np.asarray(_first_frames(good[0], 50)), audio=speech, align=False)
    utterance("malformed", frames_=np.asarray(_first_frames(good[0], 50)), audio=speech)
    (root / speaker / "align" / "malformed.align").write_text("0 12000 sil\nthis line is wrong\n")
    return root, speaker, [p.stem for p in good]


def _first_frames(video, count):
    from talking_face.datamodules.media import iter_video_frames

    return [frame for frame, _ in zip(iter_video_frames(video), range(count), strict=False)]


def test_bad_inputs_are_skipped_reported_and_lose_nothing(broken_corpus, tmp_path):
    root, speaker, good = broken_corpus
    report = preprocess_corpus(root, tmp_path, workers=2, progress=False)
    assert sorted(r.utterance for r in load_manifest(tmp_path)) == sorted(good)
    reasons = {entry["key"].split("/")[1]: entry["reason"] for entry in report["skipped"]}
    assert set(reasons) == {"unreadable", "truncated", "faceless", "silent", "unaligned", "malformed"}
    for name, reason in reasons.items():
        assert f"{name}." in reason, f"the message for {name} names its file: {reason}"
    assert "cannot be decoded" in reasons["unreadable"] or "not a readable" in reasons["unreadable"]
    assert "video lasts" in reasons["truncated"]  # it decodes, but ends before its speech
    assert "face found in only 0%" in reasons["faceless"]
    assert "silent" in reasons["silent"]
    assert "no transcript" in reasons["unaligned"]
    assert "malformed alignment line" in reasons["malformed"]
    written = json.loads((tmp_path / REPORT).read_text())
    assert written["done"] == len(good) and len(written["skipped"]) == 6


def test_folder_corpus_without_timings_is_force_aligned(tiny_corpus, tmp_path):
    """A folder of videos + .txt only (no timings): the forced aligner places the words on the speech."""
    speaker = sorted(p.name for p in tiny_corpus.iterdir() if p.is_dir())[0]
    video = sorted((tiny_corpus / speaker / "video").glob("*.mpg"))[0]
    words = (tiny_corpus / speaker / "align" / f"{video.stem}.align").read_text().split()[2::3]
    (tmp_path / "corpus" / "ann").mkdir(parents=True)
    shutil.copy(video, tmp_path / "corpus" / "ann" / "clip.mpg")
    (tmp_path / "corpus" / "ann" / "clip.txt").write_text(" ".join(w for w in words if w != "sil"))
    report = preprocess_corpus(tmp_path / "corpus", tmp_path / "cache", layout="folder", progress=False)
    assert report["done"] == 1, report["skipped"]
    (record,) = load_manifest(tmp_path / "cache")
    spoken = [s["label"] for s in record.meta["phonemes"] if s["label"] != "sil"]
    assert len(spoken) >= len(words) - 2


def test_crop_size_is_configurable(tiny_corpus, tmp_path):
    speaker = sorted(p.name for p in tiny_corpus.iterdir() if p.is_dir())[0]
    shutil.copytree(tiny_corpus / speaker, tmp_path / "corpus" / speaker)
    for video in sorted((tmp_path / "corpus" / speaker / "video").glob("*.mpg"))[1:]:
        video.unlink()
    preprocess_corpus(
        tmp_path / "corpus", tmp_path / "cache", options=PreprocessConfig(crop_size=256), progress=False
    )
    (record,) = load_manifest(tmp_path / "cache")
    assert record.array("frames").shape[1:] == (256, 256, 3)
    assert 60 < np.asarray(record.array("landmarks"))[..., 0].mean() * 128 / 256 < 68


def test_out_of_vocabulary_words_are_spelled_and_noted(tiny_corpus, tmp_path):
    speaker = sorted(p.name for p in tiny_corpus.iterdir() if p.is_dir())[0]
    shutil.copytree(tiny_corpus / speaker, tmp_path / "corpus" / speaker)
    videos = sorted((tmp_path / "corpus" / speaker / "video").glob("*.mpg"))
    for video in videos[1:]:
        video.unlink()
    (tmp_path / "corpus" / speaker / "phonemes").rename(tmp_path / "hidden")  # use the word timings
    align = tmp_path / "corpus" / speaker / "align" / f"{videos[0].stem}.align"
    lines = align.read_text().splitlines()
    start, end, _ = lines[2].split()
    lines[2] = f"{start} {end} zorbleflax"
    align.write_text("\n".join(lines) + "\n")
    report = preprocess_corpus(tmp_path / "corpus", tmp_path / "cache", progress=False)
    assert report["done"] == 1
    (note,) = report["notes"]
    assert videos[0].name in note["note"] and "zorbleflax" in note["note"]
    (record,) = load_manifest(tmp_path / "cache")
    assert record.meta["oov_words"] == ["zorbleflax"] and "zorbleflax" in record.meta["text"]


def test_video_at_30_fps_with_44k_stereo_speech_lands_on_the_pipeline_timebase(
    tiny_corpus, tiny_cache, tmp_path
):
    """Camera-like input: 30 fps H.264 with 44.1 kHz stereo AAC, a transcript and word timings."""
    import subprocess

    import imageio_ffmpeg

    (reference,) = [r for r in scan_records(tiny_cache)][:1]
    video = tiny_corpus / reference.speaker / "video" / f"{reference.utterance}.mpg"
    clip = tmp_path / "corpus" / "ann" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video), "-r", "30",
               "-c:v", "libx264", "-ar", "44100", "-ac", "2", "-c:a", "aac", str(clip)]  # fmt: skip
    subprocess.run(command, check=True)
    shutil.copy(
        tiny_corpus / reference.speaker / "align" / f"{reference.utterance}.align", clip.with_suffix(".align")
    )
    clip.with_suffix(".txt").write_text(reference.meta["text"])
    report = preprocess_corpus(tmp_path / "corpus", tmp_path / "cache", layout="folder", progress=False)
    assert report["done"] == 1, report["skipped"]
    (record,) = load_manifest(tmp_path / "cache")
    assert abs(record.num_frames - reference.num_frames) <= 1
    assert record.meta["face_found_fraction"] == 1.0
    opening = np.linalg.norm(
        np.asarray(record.array("landmarks"))[:, 66] - np.asarray(record.array("landmarks"))[:, 62], axis=-1
    )
    original = np.linalg.norm(
        np.asarray(reference.array("landmarks"))[:, 66] - np.asarray(reference.array("landmarks"))[:, 62],
        axis=-1,
    )
    count = min(len(opening), len(original))
    assert np.corrcoef(opening[:count], original[:count])[0, 1] > 0.8, "the mouth moves at the same times"
