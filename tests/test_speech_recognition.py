"""Audio without text (issue 13): its words are recognised (or, when asked, the phones heard in it without
words) and drive the mouth beside the sound; noise holds no speech, so no phonemes and a resting mouth, with
a warning naming the file (music: ``test_speech_detection.py``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from generation_media import SENTENCE, photo_file, spoken, write_speech

from talking_face.datamodules.alignment import frame_phoneme_ids
from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points
from talking_face.datamodules.forced_aligner import force_align
from talking_face.datamodules.phonemes import BILABIALS, VOCAB
from talking_face.datamodules.speech_recognition import hear_phones, recognise
from talking_face.generation.speech_input import prepare_speech

PLAIN = "the boy went to the market to buy some bread"
"""Everyday English (the recogniser's language model knows it; GRID's grammar is far from it)."""


@pytest.fixture(scope="module")
def noise_wav(tmp_path_factory):
    """Two seconds of white noise at speech level (RMS 0.1)."""
    noise = np.random.default_rng(0).normal(0.0, 0.1, 32_000).astype(np.float32)
    return write_speech(tmp_path_factory.mktemp("noise") / "white_noise.wav", noise)


def test_speech_is_recognised_and_its_phonemes_cover_it():
    found = recognise(spoken(PLAIN), 16_000)  # TTS speech with exact digital silence around it
    assert found.found_words and found.confidence >= 0.5, found
    assert len(set(found.text.split()) & set(PLAIN.split())) >= 6, found.text  # most words right
    assert found.phonemes[0].start == 0.0 and found.phonemes[-1].end == pytest.approx(
        spoken(PLAIN).size / 16e3
    )
    assert {"B", "N"} <= {p.label for p in found.phonemes}


def test_the_phones_heard_without_words_find_the_closures():
    said = "bob met a man by the big map"
    audio = spoken(said)
    frames = audio.size * 25 // 16_000
    heard = hear_phones(audio, 16_000)
    assert heard[0].start == 0.0 and heard[-1].end == pytest.approx(audio.size / 16e3)
    truth = [VOCAB[i] for i in frame_phoneme_ids(force_align(audio, 16_000, said).phonemes, frames)]
    near = [VOCAB[i] in BILABIALS for i in frame_phoneme_ids(list(heard), frames)]
    closures = [t for t, phone in enumerate(truth) if phone in BILABIALS]
    found = [any(near[max(0, t - 1) : t + 2]) for t in closures]
    assert len(closures) >= 10 and np.mean(found) >= 0.6, (len(closures), np.mean(found))


def test_audio_alone_takes_the_recognised_path_and_says_so(tmp_path):
    wav = write_speech(tmp_path / "said.wav", spoken(SENTENCE))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # good speech: nothing to warn about
        speech = prepare_speech(wav)
    assert speech.mode == "both" and speech.text_source == "recognised" and speech.speaking
    assert speech.phoneme_ids is not None and len(speech.phoneme_ids) == speech.num_frames
    assert "recognised text" in speech.path
    plain = prepare_speech(wav, recognise="off")
    assert plain.mode == "audio" and plain.phoneme_ids is None and plain.path == "audio only"
    heard = prepare_speech(wav, recognise="phones")
    assert heard.mode == "both" and heard.text_source == "phones" and heard.recognised is None
    assert len(heard.phoneme_ids) == heard.num_frames and "phones heard" in heard.path


def test_white_noise_yields_no_phonemes_and_a_warning_naming_the_file(noise_wav):
    assert not recognise(np.random.default_rng(1).normal(0, 0.1, 32_000), 16_000).found_words
    with pytest.warns(UserWarning, match=r"white_noise\.wav: no speech found"):
        speech = prepare_speech(noise_wav)
    assert speech.phoneme_ids is None and not speech.speaking and "no speech" in speech.path


def test_white_noise_leaves_the_mouth_at_rest(noise_wav, tiny_face2vid, monkeypatch):
    from talking_face.datamodules import speech_detection
    from talking_face.generation.checkpoints import load_mouth_predictor, shipped_checkpoint
    from talking_face.generation.pipeline import TalkingFacePipeline

    rollout = tiny_face2vid().frame_rollout()
    pipeline = TalkingFacePipeline(load_mouth_predictor(shipped_checkpoint("landmarks")), rollout)
    face = photo_file()
    for recognise_ in ("words", "phones", "off"):
        with pytest.warns(UserWarning, match="no speech found"):
            plan = pipeline.prepare(face, noise_wav, head_motion=0, blinks=0, recognise=recognise_)
        assert not plan.voiced.any()
        rest = mouth_opening(mouth_points(plan.own))
        np.testing.assert_allclose(mouth_opening(mouth_points(plan.driving)), rest, atol=1e-3)
    # were the noise taken for speech, the audio alone would move the mouth: the detector did the work
    monkeypatch.setattr(
        speech_detection, "speech_probability", lambda audio, frames: np.ones(frames, np.float32)
    )
    moved = pipeline.prepare(face, noise_wav, head_motion=0, blinks=0, recognise="off")
    assert np.ptp(mouth_opening(mouth_points(moved.driving))) > 0.5  # crop pixels


@pytest.mark.parametrize(
    ("words", "confidence", "mode", "warning"),
    [
        ("a word", 0.9, "both", None),
        ("a word", 0.4, "audio", "fit the speech poorly"),
        ("", 0.0, "audio", "no words were recognised"),
    ],
)
def test_recognition_decides_between_fusion_and_audio_alone(
    tmp_path, monkeypatch, words, confidence, mode, warning
):
    from talking_face.datamodules import speech_recognition
    from talking_face.datamodules.segments import Segment

    wav = write_speech(tmp_path / "voice.wav", spoken(SENTENCE))
    duration = spoken(SENTENCE).size / 16_000
    found = speech_recognition.Recognition(words, (Segment("AA", 0.0, duration),), confidence, 0.1)
    monkeypatch.setattr(speech_recognition, "recognise", lambda audio, rate: found)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        speech = prepare_speech(wav)
    assert (speech.mode, speech.confidence) == (
        mode,
        confidence,
    ) and speech.speaking  # speech: the mouth moves
    messages = [str(w.message) for w in caught]
    if warning is None:
        assert not messages and speech.text_source == "recognised"
    else:
        assert len(messages) == 1 and "voice.wav" in messages[0] and warning in messages[0]
        assert speech.phoneme_ids is None and messages[0] in speech.notes
