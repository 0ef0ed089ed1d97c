"""Text -> speech with phoneme and word timings, from three real speech synthesisers.

The built-in corpus and text-only generation need speech *and* where each phoneme lies in it. All three
engines report the times they synthesised, so the labels are exact to the engine (not re-aligned):

- **espeak-ng** (formant synthesis), in-process through ctypes on the ``espeakng-loader`` wheel
  (``libespeak-ng.so`` 1.52 + its data), loaded afresh for each call so that output is deterministic.
  Phoneme events carry the time (ms) of each phoneme's start. Eight English accents (``en``,
  ``en-us``, ``en-gb-x-rp``, ``en-gb-scotland`` ...) times about a hundred voice variants
  (``"en-us+m3"``, ``"en+f2"``); native rate 22 050 Hz.
- **festival** (Debian ``festival``), as a subprocess: diphone voices concatenated from real speakers'
  recordings (``kal_diphone``, ``ked_diphone``: packages ``festvox-kallpc16k``, ``festvox-kdlpc16k``,
  16 kHz) and an HMM voice trained on a real speaker (``cmu_us_slt_arctic_hts``: ``festvox-us-slt-hts``,
  32 kHz). Segment end times come from its ``Segment`` relation. Optional: without it installed,
  ``available_voices()`` lists no festival voices.
- **flite** (Debian ``flite``), in-process through ctypes on ``libflite.so.1``: four US-English voices,
  each built from one real speaker's recordings, at 16 kHz: ``rms`` (US male), ``slt`` (US female),
  ``awb`` (Scottish male), clustergen statistical voices; ``kal16`` (US male), diphones. Segment end
  times and word spans come from the synthesised utterance itself (what ``flite -psdur`` prints).
  Optional like festival.

Phoneme labels are our vocabulary (``datamodules.phonemes.PHONEMES``: ARPAbet without stress) plus
``"sil"``; an engine symbol with no ARPAbet equivalent raises ``ValueError`` rather than being
mislabelled. Word labels are lower-case words as ``datamodules.phonemes.words_of`` writes them, plus
``"sil"``; a group the engine speaks as one unit shares one segment ("of the"), and numbers or symbols
may be labelled otherwise than the engine reads them ("1984"). Both lists cover ``[0, duration]``
contiguously (``datamodules.alignment.normalise_segments``).

Audio is returned at the engine's native rate; resampling to ``timebase.SAMPLE_RATE`` is the caller's job.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import functools
import math
import re
import shutil
import subprocess
import tempfile
import threading
import unicodedata
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from talking_face.datamodules.alignment import SILENCE, normalise_segments, split_word
from talking_face.datamodules.phonemes import words_of
from talking_face.datamodules.segments import Segment

__all__ = ["Speech", "Voice", "available_voices", "default_voices", "synthesize"]

Engine = Literal["espeak", "festival", "flite"]
_ENGINES = ("espeak", "festival", "flite")


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine voice and its prosody settings.

    ``name`` is an espeak voice with an optional variant (``"en-us"``, ``"en-us+m3"``), a festival
    voice (``"kal_diphone"``) or a flite voice (``"rms"``). Factors relative to the voice's own
    defaults: ``rate`` scales the speaking rate (2.0 = twice as fast), ``pitch`` the F0 and
    ``pitch_range`` the spread of F0 (intonation). espeak scales the floor of its F0 contour and adds
    the range on top, so its median F0 moves less than ``pitch`` (measured: x0.73 at 0.6, x1.43 at
    1.6); festival's diphone voices and flite's ``kal16`` scale the mean and spread of their F0 targets;
    festival's HTS voice and flite's clustergen voices make their own F0 and take neither pitch factor.
    """

    engine: Engine
    name: str
    rate: float = 1.0
    pitch: float = 1.0
    pitch_range: float = 1.0

    def __post_init__(self) -> None:
        if self.engine not in _ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {_ENGINES}")
        for field in ("rate", "pitch", "pitch_range"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"voice {self.name!r} needs a positive {field}, got {value}")

    @property
    def slug(self) -> str:
        """File-name-safe identifier of this speaker, e.g. ``"espeak-en-us+m3-r0.90-p1.10-g1.00"``."""
        name = re.sub(r"[^A-Za-z0-9+_.-]", "_", self.name)
        return f"{self.engine}-{name}-r{self.rate:.2f}-p{self.pitch:.2f}-g{self.pitch_range:.2f}"


@dataclass(frozen=True)
class Speech:
    """Synthesised speech and its timed labels.

    ``audio`` float32 [N] mono in [-1, 1] at ``sample_rate`` (the engine's native rate). ``phonemes``
    (ARPAbet without stress, ``"sil"``) and ``words`` (lower case, ``"sil"``) each cover
    ``[0, duration]`` seconds contiguously.
    """

    audio: np.ndarray
    sample_rate: int
    phonemes: list[Segment]
    words: list[Segment]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def synthesize(text: str, voice: Voice) -> Speech:
    """Speak ``text`` with ``voice``; raises ``ValueError`` for empty text or a voice not on this machine."""
    if not text or not text.strip():
        raise ValueError(f"empty text {text!r}: nothing to synthesise")
    text = " ".join(text.split())  # newlines and tabs mean nothing to any engine
    engines = {"espeak": _espeak_synthesize, "festival": _festival_synthesize, "flite": _flite_synthesize}
    return engines[voice.engine](text, voice)


def available_voices() -> list[Voice]:
    """Every voice usable here: English espeak voices with and without each variant, then festival's and
    flite's."""
    espeak = _espeak_catalogue()
    suffixes = ("", *(f"+{variant}" for variant in espeak.variants))
    names = [f"{base}{suffix}" for base in espeak.bases for suffix in suffixes]
    return (
        [Voice("espeak", n) for n in names]
        + [Voice("festival", n) for n in _festival_voices()]
        + [Voice("flite", n) for n in _flite_voices()]
    )


# (engine, name, rate, pitch, pitch_range) of the default speakers; festival and flite ones only where
# installed. flite's come last, so that the corpus' first twelve speakers of a seed are those of before.
_DEFAULT_SPEAKERS: tuple[tuple[Engine, str, float, float, float], ...] = (
    ("festival", "kal_diphone", 1.0, 1.0, 1.0),  # US male, diphones of a real speaker
    ("festival", "cmu_us_slt_arctic_hts", 1.0, 1.0, 1.0),  # US female, HMM trained on a real speaker
    ("festival", "ked_diphone", 0.9, 0.95, 1.2),  # US male, slower, lower, livelier
    ("festival", "cmu_us_slt_arctic_hts", 0.85, 1.0, 1.0),  # the same woman, slower
    ("festival", "kal_diphone", 1.15, 1.12, 0.8),  # the same man, faster, higher, flatter
    ("espeak", "en-gb-x-rp+m3", 0.95, 0.9, 1.0),  # British (RP) male
    ("espeak", "en-us+f2", 1.0, 1.0, 1.2),  # US female
    ("espeak", "en+f4", 1.1, 1.05, 1.0),  # British female, faster
    ("espeak", "en-gb-scotland+m1", 0.9, 1.0, 0.9),  # Scottish male, slower
    ("espeak", "en-us-nyc+m6", 1.05, 0.95, 1.1),  # New York male
    ("espeak", "en-gb-x-rp+f3", 0.9, 1.1, 0.8),  # British (RP) female, slower
    ("espeak", "en-029+m2", 1.0, 1.0, 1.0),  # Caribbean male
    ("flite", "rms", 1.0, 1.0, 1.0),  # US male, statistical voice of a real speaker
    ("flite", "awb", 1.0, 1.0, 1.0),  # Scottish male, likewise
    ("flite", "slt", 1.0, 1.0, 1.0),  # US female, likewise
    ("flite", "kal16", 0.95, 1.1, 1.2),  # US male, diphones, slower, higher, livelier
    ("flite", "slt", 1.15, 1.0, 1.0),  # the same woman, faster
    ("flite", "rms", 0.9, 1.0, 1.0),  # the same man, slower
)


def default_voices() -> list[Voice]:
    """A varied, fixed set of 'speakers' (engines, accents, genders, rates, pitches), in a fixed order.

    festival voices come first, as the most human-like; festival and flite voices not installed here are
    left out.
    """
    usable = {("festival", name) for name in _festival_voices()} | {
        ("flite", name) for name in _flite_voices()
    }
    return [
        Voice(engine, name, rate, pitch, spread)
        for engine, name, rate, pitch, spread in _DEFAULT_SPEAKERS
        if engine == "espeak" or (engine, name) in usable
    ]


# --- shared: engine symbols -> our labels -------------------------------------------------------


def _phoneme_segments(
    starts: Sequence[tuple[str, float]],
    end: float,
    table: dict[str, tuple[str, ...]],
    engine: str,
    before_r: dict[str, tuple[str, ...]] | None = None,
) -> list[Segment]:
    """Our labels for timed engine phonemes: (symbol, start s), each ending where the next starts.

    The last ends at ``end``. A symbol for two phonemes (espeak ``aI@`` = AY ER) has its span shared
    between them (``split_word``); a symbol mapped to no phoneme lengthens the one before it.
    ``before_r`` overrides ``table`` where the next symbol is an R of its own (espeak's ``o@`` = AO R,
    but ``o@ r`` = AO R, not AO R R).
    """

    def labels_of(symbol: str) -> tuple[str, ...]:
        if symbol not in table:
            raise ValueError(
                f"{engine} phoneme {symbol!r} has no ARPAbet equivalent in the table; add it there"
            )
        return table[symbol]

    segments: list[Segment] = []
    symbols = [symbol for symbol, _ in starts]
    for i, ((symbol, start), (_, stop)) in enumerate(zip(starts, [*starts[1:], ("", end)], strict=True)):
        labels = labels_of(symbol)
        if before_r and symbol in before_r and i + 1 < len(symbols) and labels_of(symbols[i + 1]) == ("R",):
            labels = before_r[symbol]
        if not labels and segments:  # part of the previous phoneme
            segments[-1] = Segment(segments[-1].label, segments[-1].start, stop)
        elif labels in ((SILENCE,), ()):
            segments.append(Segment(SILENCE, start, stop))
        else:
            segments.extend(split_word(Segment(symbol, start, stop), labels))
    return segments


def _word_label(text: str) -> str:
    """Text as a lower-case word label ("Now," -> "now", "12" -> "twelve", "of the" -> "of the")."""
    try:
        return " ".join(words_of(text))
    except ValueError:  # no letters or digits: a symbol the engine spelled out ("&"), or nothing
        return text.strip().lower()


# --- espeak-ng through ctypes -------------------------------------------------------------------

# speak_lib.h (API revision 12) enums and flags
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_RATE_NORMAL, _RATE_MIN, _RATE_MAX = 175, 80, 450  # words per minute
_EE_OK = 0
_ESPEAK_MIN_PHONEME_S = 0.03


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT``; for phoneme events ``id.string`` holds the mnemonic (NUL-terminated if < 8)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text, 1-based
        ("length", ctypes.c_int),  # word length in characters (word events)
        ("audio_position", ctypes.c_int),  # ms from the start of the audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceInfo(ctypes.Structure):
    """``espeak_VOICE``; ``languages`` is a list of (priority byte, name, NUL), ended by an empty name."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class _EspeakEvent:
    kind: int  # _EVENT_WORD or _EVENT_PHONEME
    time: float  # seconds
    text_position: int  # 0-based character index into the text
    symbol: str  # phoneme events: the mnemonic


@dataclass(frozen=True)
class _EspeakCatalogue:
    sample_rate: int
    bases: tuple[str, ...]  # English accents: voice file names, lower case ("en-us" for en-US)
    variants: tuple[str, ...]  # voice variant file names ("m3", "Storm"; case matters)


_ESPEAK_LOCK = threading.Lock()


@contextlib.contextmanager
def _espeak_library() -> Iterator[tuple[ctypes.CDLL, int]]:
    """libespeak-ng loaded afresh and initialised (the library and its sample rate), unloaded after.

    espeak-ng is a process-wide singleton that keeps synthesis state in C statics between calls (its F0
    flutter and glottal-wave phases, its noise generator), so the same text came out a few samples
    longer or shorter each time. A fresh copy per call (about 20 ms) makes the output a function of
    the input alone. The lock serialises threads; the library is never used outside it.
    """
    try:
        import espeakng_loader
    except ImportError as error:
        raise ImportError("espeak voices need the espeakng-loader package") from error
    with _ESPEAK_LOCK:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_VoiceInfo)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceInfo))
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        # the data path must be passed: the library's built-in default points at its build machine
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_PHONEME_EVENTS)
        try:
            if rate <= 0:
                raise RuntimeError(f"espeak_Initialize failed (data {data.decode()!r})")
            yield lib, rate
        finally:
            lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)


def _list_voices(lib: ctypes.CDLL, language: bytes | None) -> dict[str, _VoiceInfo]:
    """Voice file name (without folder) -> voice info, for ``language`` (None: all)."""
    spec = None
    if language is not None:
        spec = _VoiceInfo()
        spec.languages = language
    found, table = {}, lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
    i = 0
    while table[i]:  # NULL-terminated array
        info = table[i].contents
        found[info.identifier.decode().rsplit("/", 1)[-1]] = info
        i += 1
    return found


@functools.cache
def _espeak_catalogue() -> _EspeakCatalogue:
    """English accents (Latin script: ``en-shaw`` reads the Shavian alphabet) and voice variants."""
    with _espeak_library() as (lib, rate):
        english = [n.lower() for n, info in _list_voices(lib, None).items() if info.languages[1:3] == b"en"]
        variants = [v for v in _list_voices(lib, b"variant") if " " not in v]
    bases = tuple(sorted(n for n in english if n != "en-shaw"))
    return _EspeakCatalogue(rate, bases, tuple(sorted(variants, key=str.lower)))


def _espeak_parameters(voice: Voice) -> dict[int, int]:
    """espeak_SetParameter values for ``voice``; raises ``ValueError`` for an unknown name or range."""
    catalogue = _espeak_catalogue()
    base, _, variant = voice.name.partition("+")
    if base not in catalogue.bases or (variant and variant not in catalogue.variants):
        raise ValueError(
            f"no espeak voice {voice.name!r}; names are ACCENT or ACCENT+VARIANT with ACCENT "
            f"one of {list(catalogue.bases)} and VARIANT one of {list(catalogue.variants)}"
        )
    wpm = round(_RATE_NORMAL * voice.rate)
    # espeak's pitch parameter p (50 = the voice's own) scales the F0 floor by about 2 ** ((p - 50) / 50)
    # (its pitch_adjust_tab: 64/128 at 0 ... 128/128 at 50 ... 254/128 at 100)
    pitch = round(50 + 50 * math.log2(voice.pitch))
    spread = round(50 * voice.pitch_range)
    if not (_RATE_MIN <= wpm <= _RATE_MAX and 0 <= pitch <= 100 and 0 <= spread <= 100):
        raise ValueError(
            f"espeak voice {voice.name!r}: rate {voice.rate}, pitch {voice.pitch} or pitch_range "
            f"{voice.pitch_range} is out of espeak's range (rate {_RATE_MIN / _RATE_NORMAL:.2f}-"
            f"{_RATE_MAX / _RATE_NORMAL:.2f}, pitch 0.5-2.0, pitch_range 0-2)"
        )
    return {_PARAM_RATE: wpm, _PARAM_PITCH: pitch, _PARAM_RANGE: spread}


def _espeak_run(text: str, voice: Voice) -> tuple[np.ndarray, int, list[_EspeakEvent]]:
    """int16 samples [N], their rate, and the word and phoneme events of ``text`` spoken by ``voice``."""
    parameters = _espeak_parameters(voice)
    chunks: list[np.ndarray] = []
    events: list[_EspeakEvent] = []

    def collect(wav: ctypes.Array, count: int, items: ctypes.Array) -> int:
        if wav and count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while items[i].type != _EVENT_LIST_TERMINATED:
            item = items[i]
            if item.type in (_EVENT_WORD, _EVENT_PHONEME):
                symbol = item.id.string.decode("utf-8", "replace") if item.type == _EVENT_PHONEME else ""
                time, position = item.audio_position / 1000.0, item.text_position - 1
                events.append(_EspeakEvent(item.type, time, position, symbol))
            i += 1
        return 0  # continue

    data = text.encode("utf-8")
    with _espeak_library() as (lib, rate):
        callback = _SynthCallback(collect)  # referenced until synthesis is over
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
            raise ValueError(f"espeak could not load voice {voice.name!r}")
        for parameter, value in parameters.items():
            lib.espeak_SetParameter(parameter, value, 0)
        status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if status != _EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {status} on {text!r}")
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)), rate, events


def _lengthen_short(segments: list[Segment], minimum: float) -> list[Segment]:
    """Phonemes shorter than ``minimum`` s take the missing time from the phoneme before them (at most
    half of it).

    espeak synthesises a vowel and a following dark [l] as one unit and reports the [l] at its very end
    ("twelve": [l] and [v] start together), and the [d] of "nd" likewise; without this such phonemes
    would vanish from the alignment although they are spoken.
    """
    out = list(segments)
    for i in range(1, len(out)):
        prev, seg = out[i - 1], out[i]
        if SILENCE in (prev.label, seg.label) or seg.duration >= minimum:
            continue
        take = min(minimum - seg.duration, prev.duration / 2)
        out[i - 1] = Segment(prev.label, prev.start, prev.end - take)
        out[i] = Segment(seg.label, seg.start - take, seg.end)
    return out


def _strip_stress(symbol: str) -> str:
    """espeak mnemonic without its stress marks (``'`` primary, ``,`` secondary, ``%`` unstressed)."""
    return symbol.lstrip("',%=")


def _espeak_synthesize(text: str, voice: Voice) -> Speech:
    samples, sample_rate, events = _espeak_run(text, voice)
    duration = len(samples) / sample_rate
    if duration == 0.0:
        raise ValueError(f"espeak voice {voice.name!r} produced no audio for {text!r}")
    phones = [e for e in events if e.kind == _EVENT_PHONEME]
    starts = [(_strip_stress(e.symbol), e.time) for e in phones]
    segments = _phoneme_segments(starts, duration, _ESPEAK_TO_ARPABET, "espeak", _ESPEAK_BEFORE_R)
    phonemes = normalise_segments(_lengthen_short(segments, _ESPEAK_MIN_PHONEME_S), duration)

    # a word's text runs from its event's position to the next word's (espeak's own word lengths stop
    # at apostrophes: "o'clock" has length 1); it spans the phonemes spoken from that text. espeak
    # speaks some pairs as one word ("of the"): their segment is labelled with both words.
    positions = sorted({e.text_position for e in events if e.kind == _EVENT_WORD})
    ends = [phone.time for phone in phones[1:]] + [duration]
    words: list[Segment] = []
    for start, next_start in zip(positions, [*positions[1:], len(text)], strict=True):
        spans = [
            (phone.time, end)
            for phone, end in zip(phones, ends, strict=True)
            if start <= phone.text_position < next_start and not phone.symbol.startswith("_")
        ]
        label = _word_label(text[start:next_start])
        if spans and label:
            words.append(Segment(label, spans[0][0], spans[-1][1]))
    return Speech(
        audio=(samples.astype(np.float32) / 32768.0),
        sample_rate=sample_rate,
        phonemes=phonemes,
        words=normalise_segments(words, duration),
    )


# espeak-ng's English phoneme mnemonics (phsource/phonemes base1 and ph_english*, after stress marks
# are stripped) -> ARPAbet without stress, as the CMU dictionary writes the same sounds. A symbol for two
# sounds maps to both ("aI@" in "fire" = AY ER); "()" joins the span to the phoneme before it (";" is the
# linking [j] glide after an [i] vowel, "i;E" in "city east", part of that vowel's gesture).
_ESPEAK_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # pauses and boundaries
    **dict.fromkeys(("_", "_!", "_|", "_:", "_::", "_;_", "_^_", "||"), (SILENCE,)),
    ";": (),
    # stops, affricates (t# en-us flap, t2 unreduced t, ? glottal stop for t, d#/z# voicing-assimilated)
    "p": ("P",), "b": ("B",), "t": ("T",), "t#": ("T",), "t2": ("T",), "t[": ("T",), "?": ("T",),
    "d": ("D",), "d#": ("D",), "d[": ("D",), "k": ("K",), "g": ("G",), "tS": ("CH",), "dZ": ("JH",),
    # fricatives (x: the "ch" of loch, which CMU writes K; C: the [ç] of "huge")
    "f": ("F",), "v": ("V",), "T": ("TH",), "D": ("DH",), "s": ("S",), "z": ("Z",), "z#": ("Z",),
    "z/2": ("Z",), "S": ("SH",), "Z": ("ZH",), "h": ("HH",), "C": ("HH",), "x": ("K",), "X": ("HH",),
    # nasals, liquids, glides (r- linking r, l/2 dark l, w# the [ʍ] of "which")
    "m": ("M",), "n": ("N",), "N": ("NG",), "l": ("L",), "l/2": ("L",), "l#": ("L",), "L": ("L",),
    "l^": ("L",), "r": ("R",), "r-": ("R",), "j": ("Y",), "w": ("W",), "w#": ("W",),
    # syllabic consonants: CMU writes a schwa before them ("button" B AH T AH N, "simple" ... AH L)
    "n-": ("AH", "N"), "m-": ("AH", "M"), "l-": ("AH", "L"), "@L": ("AH", "L"),
    # schwas and reduced vowels
    "@": ("AH",), "@-": ("AH",), "@2": ("AH",), "@5": ("AH",), "@#": ("AH",), "a#": ("AH",),
    "a#2": ("AH",), "E#": ("AH",), "0#": ("AH",), "V": ("AH",), "02": ("AH",),
    # r-coloured vowels ("3" is the vowel of letter: ER in CMU for British and American voices alike)
    "3": ("ER",), "3:": ("ER",), "IR": ("ER",), "VR": ("ER",),
    # front vowels
    "a": ("AE",), "a2": ("AE",), "aa": ("AE",), "E": ("EH",), "E2": ("EH",), "e#": ("EH",), "e": ("EH",),
    "I": ("IH",), "I2": ("IH",), "I#": ("IH",), "I2#": ("IH",), "i": ("IY",), "i:": ("IY",),
    # back vowels
    "A:": ("AA",), "A#": ("AA",), "0": ("AA",), "A~": ("AA",), "O": ("AO",), "O:": ("AO",),
    "O2": ("AO",), "O~": ("AO",), "U": ("UH",), "u:": ("UW",), "u": ("UW",), "o": ("OW",), "o:": ("OW",),
    # diphthongs
    "eI": ("EY",), "e:": ("EY",), "aI": ("AY",), "aI2": ("AY",), "OI": ("OY",), "aU": ("AW",),
    "oU": ("OW",), "oU#": ("OW",),
    # vowel + r (non-rhotic accents drop the r, CMU keeps it); "i@" is the [iə] of "idea", "area"
    "A@": ("AA", "R"), "O@": ("AO", "R"), "o@": ("AO", "R"), "e@": ("EH", "R"), "i@": ("IY", "AH"),
    "i@3": ("IH", "R"), "U@": ("UH", "R"), "aI@": ("AY", "ER"), "aI3": ("AY", "ER"), "aU@": ("AW", "ER"),
}  # fmt: skip
# the same vowels before an [r] of their own (rhotic accents' "four" o@ r, linking r in "zero" i@ r)
_ESPEAK_BEFORE_R: dict[str, tuple[str, ...]] = {
    "A@": ("AA",), "O@": ("AO",), "o@": ("AO",), "e@": ("EH",), "i@": ("IY",), "i@3": ("IH",), "U@": ("UH",),
}  # fmt: skip


# --- festival as a subprocess -------------------------------------------------------------------

_FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
_FESTIVAL_TIMEOUT_S = 120.0

# festival's "radio" phone set (lib/radio_phones.scm, used by its US English voices) -> ARPAbet
_RADIO_TO_ARPABET: dict[str, tuple[str, ...]] = {
    **{p: (p.upper(),) for p in (
        "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh"
    ).split()},
    "ax": ("AH",), "axr": ("ER",), "ix": ("IH",), "hv": ("HH",), "dx": ("T",), "nx": ("N",),
    "el": ("AH", "L"), "em": ("AH", "M"), "en": ("AH", "N"),
    "pau": (SILENCE,), "h#": (SILENCE,), "brth": (SILENCE,),
}  # fmt: skip
_PHONE_SETS = {"radio": _RADIO_TO_ARPABET}


@dataclass(frozen=True)
class _FestivalVoice:
    name: str
    phone_set: str
    pitch_control: bool  # linear-regression F0 targets we can rescale (the HTS voice makes its own F0)


def _run_festival(script: str, workdir: Path, what: str) -> str:
    """Run a Scheme ``script`` with ``festival --batch`` in ``workdir``; its stdout, which must end "DONE"."""
    exe = shutil.which("festival")
    if exe is None:
        raise ValueError("festival is not installed (Debian: apt-get install festival)")
    path = workdir / "script.scm"
    path.write_text(script + '(format t "DONE\\n")\n', encoding="utf-8")
    # cwd: the HTS module writes scratch files into the working directory
    done = subprocess.run(
        [exe, "--batch", str(path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=_FESTIVAL_TIMEOUT_S,
    )
    if done.returncode != 0 or not done.stdout.rstrip().endswith("DONE"):
        raise RuntimeError(
            f"festival failed on {what} (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-600:]}"
        )
    return done.stdout


@functools.cache
def _festival_voice_info() -> dict[str, _FestivalVoice]:
    """Installed festival voices whose phone set we can map (one festival run, about 1 s, once)."""
    if shutil.which("festival") is None:
        return {}
    script = """(mapcar (lambda (v)
  (unwind-protect
    (begin
      (voice.select v)
      (format t "VOICE\\t%s\\t%l\\t%s\\t%l\\n" v (PhoneSet.description '(name))
              (Parameter.get 'Synth_Method) (assoc 'target_f0_mean int_lr_params)))
    (format t "BROKEN\\t%s\\n" v)))
  (voice.list))
"""
    with tempfile.TemporaryDirectory(prefix="festival-") as workdir:
        out = _run_festival(script, Path(workdir), "listing its voices")
    voices = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[0] != "VOICE" or len(fields) != 5:
            continue
        match = re.search(r"\(name (\S+?)\)", fields[2])
        if match and match.group(1) in _PHONE_SETS:
            pitch = fields[3] != "HTS" and fields[4] not in ("nil", "()")
            voices[fields[1]] = _FestivalVoice(fields[1], match.group(1), pitch)
    return voices


def _festival_voices() -> list[str]:
    return sorted(_festival_voice_info())


def _festival_voice(voice: Voice) -> _FestivalVoice:
    info = _festival_voice_info().get(voice.name)
    if info is None:
        package = _FESTIVAL_PACKAGES.get(voice.name)
        hint = f" (Debian: apt-get install festival {package})" if package else ""
        raise ValueError(
            f"no festival voice {voice.name!r} on this machine{hint}; installed and usable: "
            f"{_festival_voices()}"
        )
    if not info.pitch_control and (voice.pitch != 1.0 or voice.pitch_range != 1.0):
        raise ValueError(f"festival voice {voice.name!r} makes its own F0; use pitch=1.0 and pitch_range=1.0")
    return info


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ascii_text(text: str, engine: str) -> str:
    """festival and flite read 8-bit text: accents are dropped ("café" -> "cafe"), other scripts cannot be
    spoken (``ValueError``)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    if not text.strip():
        raise ValueError(f"{engine} voices speak only Latin-script text")
    return text


def _speech_from_ends(
    audio: np.ndarray,
    sample_rate: int,
    ends: list[tuple[str, float]],
    words: list[tuple[str, float, float]],
    table: dict[str, tuple[str, ...]],
    engine: str,
    what: str,
) -> Speech:
    """Speech from engine segments with end times (festival's and flite's own: each starts where the
    previous ended) and word spans (start, end s); words that span no time are left out."""
    duration = len(audio) / sample_rate
    if duration == 0.0:
        raise ValueError(f"{engine} produced no audio for {what}")
    previous_ends = [0.0, *(end for _, end in ends[:-1])]
    starts = [(name, start) for (name, _), start in zip(ends, previous_ends, strict=True)]
    phonemes = _phoneme_segments(starts, ends[-1][1] if ends else duration, table, engine)
    spans = [Segment(_word_label(name), start, end) for name, start, end in words if end > start]
    return Speech(
        audio=audio,
        sample_rate=sample_rate,
        phonemes=normalise_segments(phonemes, duration),
        words=normalise_segments(spans, duration),
    )


def _festival_synthesize(text: str, voice: Voice) -> Speech:
    info = _festival_voice(voice)
    text = _ascii_text(text, "festival")
    pitch = ""
    if voice.pitch != 1.0 or voice.pitch_range != 1.0:  # rescale the F0 targets' mean and spread
        pitch = f"""(set! int_lr_params (list
  (list 'target_f0_mean (* {voice.pitch} (cadr (assoc 'target_f0_mean int_lr_params))))
  (list 'target_f0_std (* {voice.pitch * voice.pitch_range} (cadr (assoc 'target_f0_std int_lr_params))))
  (assoc 'model_f0_mean int_lr_params) (assoc 'model_f0_std int_lr_params)))
"""
    with tempfile.TemporaryDirectory(prefix="festival-") as workdir:
        wav = Path(workdir) / "speech.wav"
        script = f"""(voice.select '{info.name})
(if (eq? (Parameter.get 'Synth_Method) 'HTS)
  (set! hts_engine_params (cons (list "-r" {voice.rate}) hts_engine_params))
  (let ((stretch (Parameter.get 'Duration_Stretch)))
    (Parameter.set 'Duration_Stretch (/ (if stretch stretch 1.0) {voice.rate}))))
{pitch}(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))
(utt.save.wave utt {_scheme_string(str(wav))} 'riff)
(mapcar (lambda (s) (format t "SEG\\t%s\\t%f\\n" (item.name s) (item.feat s "end")))
  (utt.relation.items utt 'Segment))
(mapcar (lambda (w) (format t "WORD\\t%s\\t%f\\t%f\\n" (item.name w) (item.feat w "word_start")
  (item.feat w "word_end"))) (utt.relation.items utt 'Word))
"""
        out = _run_festival(script, Path(workdir), f"{text!r} with voice {voice.name!r}")
        audio, sample_rate = _read_wav(wav)
    rows = [line.split("\t") for line in out.splitlines()]
    ends = [(row[1], float(row[2])) for row in rows if row[0] == "SEG" and len(row) == 3]
    words = [(row[1], float(row[2]), float(row[3])) for row in rows if row[0] == "WORD" and len(row) == 4]
    table = _PHONE_SETS[info.phone_set]
    return _speech_from_ends(audio, sample_rate, ends, words, table, "festival", f"{text!r} ({voice.name})")


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """float32 [N] in [-1, 1] and the rate of a 16-bit mono RIFF file."""
    with wave.open(str(path), "rb") as file:
        if file.getsampwidth() != 2 or file.getnchannels() != 1:
            raise RuntimeError(f"festival wrote {path} as other than 16-bit mono")
        data = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
        return data.astype(np.float32) / 32768.0, file.getframerate()


# --- flite through ctypes -----------------------------------------------------------------------

_FLITE_VOICES = ("awb", "kal16", "rms", "slt")
"""Debian flite's US-English voices at 16 kHz (``kal`` is the same speaker as ``kal16`` at 8 kHz)."""

_FLITE_LOCK = threading.Lock()


class _FliteWave(ctypes.Structure):
    """``cst_wave``: interleaved int16 samples."""

    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class _FliteVoiceHead(ctypes.Structure):
    """The first fields of ``cst_voice``: its name and its feature set (synthesis parameters)."""

    _fields_ = [("name", ctypes.c_char_p), ("features", ctypes.c_void_p)]


@dataclass(frozen=True)
class _FliteVoice:
    voice: ctypes.c_void_p  # cst_voice *, registered once per process and never freed
    library: ctypes.CDLL  # the voice's own library, kept loaded
    duration_stretch: float  # the voice's own defaults, which ``Voice`` factors scale
    f0_mean: float  # 0: the voice makes its own F0 (clustergen) and takes no pitch factor
    f0_stddev: float


@functools.cache
def _flite_library() -> ctypes.CDLL | None:
    """``libflite.so.1``, initialised, or None where Debian's ``flite`` is not installed."""
    try:
        lib = ctypes.CDLL("libflite.so.1")
    except OSError:
        return None
    void, text = ctypes.c_void_p, ctypes.c_char_p
    for name, restype, argtypes in (
        ("flite_synth_text", void, [text, void]),
        ("utt_wave", ctypes.POINTER(_FliteWave), [void]),
        ("utt_relation", void, [void, text]),
        ("relation_head", void, [void]),
        ("item_next", void, [void]),
        ("ffeature_string", text, [void, text]),
        ("ffeature_float", ctypes.c_float, [void, text]),
        ("get_param_float", ctypes.c_float, [void, text, ctypes.c_float]),
        ("feat_set_float", None, [void, text, ctypes.c_float]),
        ("delete_utterance", None, [void]),
    ):
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    lib.flite_init()
    return lib


@functools.cache
def _flite_voices() -> list[str]:
    """The flite voices whose library loads here."""
    if _flite_library() is None:
        return []
    found = []
    for name in _FLITE_VOICES:
        try:
            ctypes.CDLL(f"libflite_cmu_us_{name}.so.1")
        except OSError:
            continue
        found.append(name)
    return found


@functools.cache
def _flite_voice_of(name: str) -> _FliteVoice:
    """The registered voice ``name`` (one of ``_flite_voices()``) and its default parameters (call under
    ``_FLITE_LOCK``)."""
    lib = _flite_library()
    library = ctypes.CDLL(f"libflite_cmu_us_{name}.so.1")
    register = getattr(library, f"register_cmu_us_{name}")
    register.restype, register.argtypes = ctypes.POINTER(_FliteVoiceHead), [ctypes.c_char_p]
    voice = register(None)
    features = voice.contents.features
    return _FliteVoice(
        voice=ctypes.cast(voice, ctypes.c_void_p),
        library=library,
        duration_stretch=lib.get_param_float(features, b"duration_stretch", 1.0),
        f0_mean=max(lib.get_param_float(features, b"int_f0_target_mean", 0.0), 0.0),
        f0_stddev=lib.get_param_float(features, b"int_f0_target_stddev", 0.0),
    )


def _flite_items(lib: ctypes.CDLL, utterance: int, relation: bytes) -> Iterator[int]:
    item = lib.relation_head(lib.utt_relation(utterance, relation))
    while item:
        yield item
        item = lib.item_next(item)


def _flite_synthesize(text: str, voice: Voice) -> Speech:
    if voice.name not in _flite_voices():
        raise ValueError(
            f"no flite voice {voice.name!r} on this machine (Debian: apt-get install flite); installed: "
            f"{_flite_voices()}"
        )
    text = _ascii_text(text, "flite")
    with _FLITE_LOCK:
        info, lib = _flite_voice_of(voice.name), _flite_library()
        if info.f0_mean == 0.0 and (voice.pitch != 1.0 or voice.pitch_range != 1.0):
            raise ValueError(
                f"flite voice {voice.name!r} makes its own F0; use pitch=1.0 and pitch_range=1.0"
            )
        # parameters live on the shared voice: set all of them on every call, so none leaks to the next
        features = ctypes.cast(info.voice, ctypes.POINTER(_FliteVoiceHead)).contents.features
        lib.feat_set_float(features, b"duration_stretch", info.duration_stretch / voice.rate)
        if info.f0_mean > 0.0:
            lib.feat_set_float(features, b"int_f0_target_mean", info.f0_mean * voice.pitch)
            lib.feat_set_float(
                features, b"int_f0_target_stddev", info.f0_stddev * voice.pitch * voice.pitch_range
            )
        lib.srand(
            0
        )  # clustergen voices excite with libc's rand(): reseeded, the audio depends on the input alone
        utterance = lib.flite_synth_text(text.encode(), info.voice)
        try:
            wave = lib.utt_wave(utterance).contents
            if wave.num_channels != 1:
                raise RuntimeError(f"flite voice {voice.name!r} wrote {wave.num_channels} channels")
            samples = np.ctypeslib.as_array(wave.samples, shape=(wave.num_samples,)).astype(np.float32)
            sample_rate = wave.sample_rate
            ends = [
                (lib.ffeature_string(s, b"name").decode(), lib.ffeature_float(s, b"end"))
                for s in _flite_items(lib, utterance, b"Segment")
            ]
            # a word runs from the end of the segment before its first to the end of its last
            words = [
                (
                    lib.ffeature_string(w, b"name").decode(),
                    lib.ffeature_float(w, b"R:SylStructure.daughter1.daughter1.R:Segment.p.end"),
                    lib.ffeature_float(w, b"R:SylStructure.daughtern.daughtern.R:Segment.end"),
                )
                for w in _flite_items(lib, utterance, b"Word")
            ]
        finally:
            lib.delete_utterance(utterance)
    audio = samples / 32768.0
    return _speech_from_ends(
        audio, sample_rate, ends, words, _RADIO_TO_ARPABET, "flite", f"{text!r} ({voice.name})"
    )
