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

from talking_face.datamodules.tts.espeak import _espeak_catalogue, _espeak_synthesize
from talking_face.datamodules.tts.festival import _festival_synthesize, _festival_voices
from talking_face.datamodules.tts.flite import _flite_synthesize, _flite_voices
from talking_face.datamodules.tts.speech import Engine, Speech, Voice

__all__ = ["Speech", "Voice", "available_voices", "default_voices", "synthesize"]


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
