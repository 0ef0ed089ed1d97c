"""The built-in corpus writer: GRID grammar, speakers that differ, determinism, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talking_face.datamodules.corpora import read_grid
from talking_face.datamodules.synthetic.corpus import (
    GRID_GRAMMAR,
    grid_sentence,
    make_speakers,
    synthesize_corpus,
)


def test_grid_sentences_follow_the_grammar_and_name_themselves():
    rng = np.random.default_rng(0)
    for _ in range(50):
        text, utterance_id = grid_sentence(rng)
        words = text.split()
        assert len(words) == 6 and all(word in slot for word, slot in zip(words, GRID_GRAMMAR, strict=True))
        assert utterance_id[:3] == "".join(w[0] for w in words[:3]) and utterance_id[3] == words[3]
        assert utterance_id[4].isdigit() and utterance_id[5] == words[5][0]


def test_speakers_differ_in_face_voice_and_style():
    speakers = make_speakers(6, seed=1)
    assert len({(s.photo, s.mirrored) for s in speakers}) >= 4
    assert len({s.voice for s in speakers}) == 6
    assert len({s.style for s in speakers}) == 6
    assert make_speakers(6, seed=1) == speakers


def test_more_speakers_add_voices_without_changing_the_first():
    from talking_face.datamodules.tts import available_voices

    speakers = make_speakers(18, seed=0)
    assert speakers[:12] == make_speakers(12, seed=0), "a seed's first speakers stay who they were"
    engines = {v.engine for v in available_voices()}
    assert {s.voice.engine for s in speakers} == engines  # every installed engine speaks


@pytest.mark.slow
def test_same_seed_same_corpus_and_reruns_resume(tmp_path):
    first = synthesize_corpus(tmp_path / "a", speakers=1, utterances=1, seed=5, progress=False)
    second = synthesize_corpus(tmp_path / "b", speakers=1, utterances=1, seed=5, progress=False)
    (utterance,) = read_grid(first)
    (twin,) = read_grid(second)
    assert utterance.utterance == twin.utterance
    assert utterance.alignment.read_text() == twin.alignment.read_text()
    truth = np.load(first / "s1" / "landmarks" / f"{utterance.utterance}.npy")
    np.testing.assert_array_equal(truth, np.load(second / "s1" / "landmarks" / f"{twin.utterance}.npy"))
    assert truth.shape[1:] == (68, 2)
    assert utterance.phoneme_timings is not None and utterance.audio is not None
    assert json.loads((first / "speakers.json").read_text())[0]["name"] == "s1"
    stamp = utterance.video.stat().st_mtime_ns
    synthesize_corpus(first, speakers=1, utterances=1, seed=5, progress=False)
    assert utterance.video.stat().st_mtime_ns == stamp, "a finished utterance is not written again"
