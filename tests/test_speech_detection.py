"""Where someone speaks (issue 13): Silero VAD tells speech from music and noise, so the mouth moves in
speech and rests in music, noise and pauses, though all of them are loud."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
from generation_media import OTHER_SENTENCE, SENTENCE, music, spoken, write_speech

from talking_face.datamodules import timebase
from talking_face.datamodules.speech_detection import SPEECH_THRESHOLD, speech_probability
from talking_face.generation.speech_input import prepare_speech, voice_activity


def _frames(audio: np.ndarray) -> int:
    return timebase.num_frames_for(audio.size)


def test_speech_scores_high_and_music_and_noise_low():
    speech = spoken(SENTENCE)
    loud = voice_activity(speech, _frames(speech))  # TTS speech: exact digital silence around it
    assert np.mean(speech_probability(speech, _frames(speech))[loud] >= SPEECH_THRESHOLD) > 0.8
    noise = np.random.default_rng(0).normal(0, 0.1, 48_000).astype(np.float32)
    for sound in (music(), noise):
        probability = speech_probability(sound, _frames(sound))
        assert probability.shape == (_frames(sound),) and probability.dtype == np.float32
        assert np.mean(probability >= SPEECH_THRESHOLD) < 0.05


def test_probability_does_not_depend_on_what_was_heard_before():
    speech, sound = spoken(SENTENCE), music()
    first = speech_probability(speech, _frames(speech))
    speech_probability(sound, _frames(sound))
    np.testing.assert_array_equal(speech_probability(speech, _frames(speech)), first)


def test_music_between_sentences_is_not_voiced_and_the_sentences_are():
    before, between, after = spoken(SENTENCE), music(3.0), spoken(OTHER_SENTENCE)
    audio = np.concatenate([before, between, after])
    voiced = voice_activity(audio, _frames(audio))
    first, last = _frames(before), _frames(np.concatenate([before, between]))
    assert not voiced[first + 4 : last - 4].any()  # the music, less the VAD's reach at its edges
    assert voiced[:first].sum() > 0.6 * first and voiced[last:].sum() > 0.6 * _frames(after)
    # loudness alone would take the music for speech: the detector did the work
    assert np.mean(20 * np.log10(np.abs(between) + 1e-9) > -40) > 0.3


@pytest.mark.parametrize("name", ["music.wav", "cantina.wav"])
def test_music_alone_yields_no_phonemes_a_resting_mouth_and_a_warning_naming_the_file(tmp_path, name):
    if name == "cantina.wav":  # a real band recording that ships with gradio (a pinned dependency)
        wav = files("gradio") / "media_assets" / "audio" / name
    else:
        wav = write_speech(tmp_path / name, music())
    with pytest.warns(UserWarning, match=rf"{name}: no speech found"):
        speech = prepare_speech(wav)
    assert speech.phoneme_ids is None and not speech.speaking and "no speech" in speech.path
    with pytest.warns(UserWarning, match="no speech found"):  # the text cannot make music speech
        assert not prepare_speech(wav, text=SENTENCE).speaking
