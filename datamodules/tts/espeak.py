"""espeak-ng in-process through ctypes (see ``datamodules.tts``)."""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from talking_face.datamodules.alignment import SILENCE, normalise_segments
from talking_face.datamodules.segments import Segment
from talking_face.datamodules.tts.speech import (
    Speech,
    Voice,
    _phoneme_segments,
    _word_label,
)

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
