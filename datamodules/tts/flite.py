"""flite in-process through ctypes (see ``datamodules.tts``)."""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from talking_face.datamodules.tts.speech import (
    _RADIO_TO_ARPABET,
    Speech,
    Voice,
    _ascii_text,
    _speech_from_ends,
)

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
