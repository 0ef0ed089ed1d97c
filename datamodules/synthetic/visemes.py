"""Phonemes -> articulatory parameters per video frame, with coarticulation and per-speaker style.

The built-in corpus animates a face from these parameters, so they decide what a model trained on it
learns about mouths. Two things matter:

- **Phonetics.** Each phoneme has a visual target (its viseme): bilabials P B M press the lips together,
  labiodentals F V tuck the lower lip under the upper teeth, rounded sounds W UW OW narrow and round the
  lips, open vowels AA AE AW AY drop the jaw, spread vowels IY IH EY widen the mouth, "sil" is rest with
  the lips together. Diphthongs move from an onset to an offset target inside their segment.
- **Coarticulation** (Cohen & Massaro 1993): every gesture has a dominance over each parameter that
  decays exponentially with time from the gesture (flat over the middle of its segment, then
  ``alpha * exp(-|tau| / width)``); the trajectory is the dominance-weighted average of all targets.
  Bilabial closure and labiodental tuck have a very high dominance, so P B M close the lips even between
  open vowels, while K G HH barely shape the lips and take their neighbours' shape.

**Not an answer key.** A `SpeakerStyle` varies, per speaker, the amplitude of jaw and lip motion, the
width of coarticulation, how far the lips lead the audio (anticipation), a resting smile, and an
idiosyncratic perturbation of the whole target and dominance table (seeded); every utterance adds noise
to each phoneme instance, jitter to the timing and its own speaking effort. The same phonemes therefore
map to different mouths for different speakers and even for the same speaker twice, so no phoneme ->
landmark table reproduces the corpus.

Parameters (columns of a track, ``PARAMS``), all unitless; `face_animator` turns them into landmarks:

- ``jaw_open`` [0, 1]: jaw lowering (0 closed, 1 a wide "AA").
- ``lip_width`` [-1, 1]: mouth corners out (spread, "IY") or in (narrowed).
- ``lip_round`` [0, 1]: rounding and protrusion ("UW", "W"): corners in, an "O"-shaped opening.
- ``lip_close`` [0, 1]: bilabial closure: the inner lips meet (1 = pressed together).
- ``upper_lip_raise`` [0, 1]: upper lip lifted, showing the upper teeth.
- ``lower_lip_tuck`` [0, 1]: lower lip up under the upper teeth ("F", "V"), against the jaw.
- ``teeth_show`` [0, 1]: how much teeth are visible in the opening (rendering only).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.alignment import SILENCE, SILENCE_WORDS
from talking_face.datamodules.phonemes import PHONEMES
from talking_face.datamodules.segments import Segment

__all__ = [
    "DIPHTHONGS",
    "NUM_PARAMS",
    "PARAMS",
    "PARAM_RANGES",
    "VISEMES",
    "SpeakerStyle",
    "articulation_track",
    "param_index",
]

_WHERE = "datamodules/synthetic/visemes.py"

PARAMS: tuple[str, ...] = (
    "jaw_open",
    "lip_width",
    "lip_round",
    "lip_close",
    "upper_lip_raise",
    "lower_lip_tuck",
    "teeth_show",
)
NUM_PARAMS: int = len(PARAMS)
PARAM_RANGES: np.ndarray = np.array(
    [[0, 1], [-1, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 1]], dtype=np.float64
)
"""[P, 2] (low, high) of each parameter; tracks are clipped to it."""


def param_index(name: str) -> int:
    """Column of parameter ``name`` in a track."""
    return PARAMS.index(name)


@dataclass(frozen=True)
class _Viseme:
    """A phoneme's target [P], base dominance, dominance width (s) and per-parameter dominance boosts."""

    target: tuple[float, ...]
    alpha: float
    width: float
    boost: tuple[tuple[str, float], ...] = ()


def _v(
    jaw: float = 0.0,
    width: float = 0.0,
    rnd: float = 0.0,
    close: float = 0.0,
    raise_: float = 0.0,
    tuck: float = 0.0,
    teeth: float = 0.0,
    *,
    alpha: float,
    dur: float = 0.05,
    boost: tuple[tuple[str, float], ...] = (),
) -> _Viseme:
    return _Viseme((jaw, width, rnd, close, raise_, tuck, teeth), alpha, dur, boost)


_VOWEL = {"alpha": 0.5, "dur": 0.07, "boost": (("lip_close", 3.0), ("lower_lip_tuck", 2.0))}
_BILABIAL = _v(0.08, close=1.0, alpha=1.0, dur=0.022, boost=(("lip_close", 12.0), ("jaw_open", 2.0)))
_LABIODENTAL = _v(
    0.12, 0.1, raise_=0.3, tuck=1.0, teeth=0.7, alpha=0.9, dur=0.028, boost=(("lower_lip_tuck", 6.0),)
)
_DENTAL = _v(0.18, 0.15, raise_=0.1, teeth=0.8, alpha=0.5, boost=(("teeth_show", 3.0),))
_SIBILANT = _v(0.06, 0.35, raise_=0.15, teeth=0.9, alpha=0.6, boost=(("jaw_open", 3.0), ("teeth_show", 3.0)))
_POSTALVEOLAR = _v(0.1, -0.35, 0.65, raise_=0.25, teeth=0.6, alpha=0.7, boost=(("lip_round", 3.0),))
_ALVEOLAR = _v(0.15, 0.1, raise_=0.05, teeth=0.45, alpha=0.3)
_VELAR = _v(0.22, raise_=0.05, teeth=0.3, alpha=0.12)

VISEMES: dict[str, _Viseme] = {
    SILENCE: _v(close=0.6, alpha=0.5, dur=0.1),
    "AA": _v(1.0, 0.05, raise_=0.1, teeth=0.35, **_VOWEL),
    "AE": _v(0.8, 0.4, raise_=0.15, teeth=0.55, **_VOWEL),
    "AH": _v(0.6, 0.1, raise_=0.05, teeth=0.35, **_VOWEL),
    "AO": _v(0.75, -0.35, 0.55, raise_=0.05, teeth=0.25, **_VOWEL),
    "EH": _v(0.55, 0.35, raise_=0.1, teeth=0.5, **_VOWEL),
    "ER": _v(0.3, -0.25, 0.45, raise_=0.1, teeth=0.3, **_VOWEL),
    "IH": _v(0.35, 0.45, raise_=0.1, teeth=0.55, **_VOWEL),
    "IY": _v(0.2, 0.7, raise_=0.15, teeth=0.7, **_VOWEL),
    "UH": _v(0.3, -0.35, 0.6, raise_=0.05, teeth=0.2, **_VOWEL),
    "UW": _v(0.15, -0.7, 1.0, teeth=0.1, alpha=0.6, dur=0.07, boost=(("lip_round", 2.0), ("lip_close", 3.0))),
    "B": _BILABIAL,
    "P": _BILABIAL,
    "M": _BILABIAL,
    "F": _LABIODENTAL,
    "V": _LABIODENTAL,
    "TH": _DENTAL,
    "DH": _DENTAL,
    "S": _SIBILANT,
    "Z": _SIBILANT,
    "SH": _POSTALVEOLAR,
    "ZH": _POSTALVEOLAR,
    "CH": _POSTALVEOLAR,
    "JH": _POSTALVEOLAR,
    "T": _ALVEOLAR,
    "D": _ALVEOLAR,
    "N": _ALVEOLAR,
    "L": _v(0.25, 0.05, raise_=0.05, teeth=0.4, alpha=0.25),
    "R": _v(0.15, -0.2, 0.5, raise_=0.1, teeth=0.25, alpha=0.45, boost=(("lip_round", 2.0),)),
    "W": _v(0.08, -0.6, 1.0, alpha=0.9, boost=(("lip_round", 4.0),)),
    "Y": _v(0.12, 0.45, raise_=0.1, teeth=0.5, alpha=0.45),
    "K": _VELAR,
    "G": _VELAR,
    "NG": _VELAR,
    "HH": _v(0.35, teeth=0.2, alpha=0.04),
}
"""Phoneme -> viseme. Targets from articulatory phonetics; dominances after Cohen & Massaro (1993)."""

DIPHTHONGS: dict[str, tuple[str, str]] = {
    "AW": ("AA", "UH"),
    "AY": ("AA", "IH"),
    "EY": ("EH", "IY"),
    "OW": ("AO", "UH"),
    "OY": ("AO", "IH"),
}
"""Diphthong -> (onset, offset) monophthong targets, placed at 30 % and 80 % of its segment."""

_LABELS: tuple[str, ...] = tuple(VISEMES)
_ROW: dict[str, int] = {label: i for i, label in enumerate(_LABELS)}
assert set(PHONEMES) <= set(VISEMES) | set(DIPHTHONGS), "every phoneme needs a viseme"

_PLATEAU = 0.3  # fraction of a gesture's span over which its dominance stays at its peak
_ANTICIPATORY = 1.3  # dominance reaches further before a gesture than after it (anticipatory coarticulation)


@dataclass(frozen=True)
class SpeakerStyle:
    """How one synthetic speaker articulates (the defaults are the textbook speaker).

    mouth_scale: amplitude of lip motion (width, rounding, raise, tuck).
    jaw_scale: amplitude of jaw opening.
    coarticulation: multiplies every dominance width; > 1 blends neighbouring phonemes more.
    anticipation_s: seconds by which the lips lead the audio.
    idiosyncrasy: std of this speaker's perturbation of the target table (and, x2, of log-dominance).
    idiosyncrasy_seed: seed of that perturbation.
    articulation_noise: std of the noise added to each phoneme instance's target.
    smile: constant offset of ``lip_width`` (a resting spread or pout).
    blink_rate: blinks per second.
    head_motion: amplitude of head motion (1 = about 1.5 degrees, 2 % of the inter-ocular distance per axis).
    """

    mouth_scale: float = 1.0
    jaw_scale: float = 1.0
    coarticulation: float = 1.0
    anticipation_s: float = 0.04
    idiosyncrasy: float = 0.0
    idiosyncrasy_seed: int = 0
    articulation_noise: float = 0.0
    smile: float = 0.0
    blink_rate: float = 0.3
    head_motion: float = 1.0

    def __post_init__(self) -> None:
        positive = ("mouth_scale", "jaw_scale", "coarticulation")
        non_negative = ("anticipation_s", "idiosyncrasy", "articulation_noise", "blink_rate", "head_motion")
        bad = [n for n in positive if not getattr(self, n) > 0] + [
            n for n in non_negative if getattr(self, n) < 0
        ]
        if bad:
            raise ValueError(f"{_WHERE}: SpeakerStyle fields {bad} out of range: {self}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> SpeakerStyle:
        """A random plausible speaker (ranges chosen to span careful to sloppy, small to large movers)."""
        return cls(
            mouth_scale=float(rng.uniform(0.8, 1.25)),
            jaw_scale=float(rng.uniform(0.7, 1.35)),
            coarticulation=float(np.exp(rng.uniform(np.log(0.7), np.log(1.5)))),
            anticipation_s=float(rng.uniform(0.0, 0.08)),
            idiosyncrasy=float(rng.uniform(0.05, 0.15)),
            idiosyncrasy_seed=int(rng.integers(2**31)),
            articulation_noise=float(rng.uniform(0.02, 0.06)),
            smile=float(rng.uniform(-0.05, 0.2)),
            blink_rate=float(rng.uniform(0.15, 0.5)),
            head_motion=float(rng.uniform(0.3, 1.3)),
        )


@functools.lru_cache(maxsize=64)
def _speaker_table(style: SpeakerStyle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This speaker's (targets [V, P], dominance [V, P], widths [V] s) over the rows of ``VISEMES``."""
    targets = np.array([v.target for v in VISEMES.values()], dtype=np.float64)
    alpha = np.array([[v.alpha] * NUM_PARAMS for v in VISEMES.values()], dtype=np.float64)
    for row, viseme in enumerate(VISEMES.values()):
        for name, factor in viseme.boost:
            alpha[row, param_index(name)] *= factor
    widths = np.array([v.width for v in VISEMES.values()], dtype=np.float64) * style.coarticulation
    if style.idiosyncrasy > 0:
        rng = np.random.default_rng(style.idiosyncrasy_seed)
        targets = targets + rng.normal(0.0, style.idiosyncrasy, targets.shape)
        alpha = alpha * np.exp(rng.normal(0.0, 2 * style.idiosyncrasy, alpha.shape))
        widths = widths * np.exp(rng.normal(0.0, style.idiosyncrasy, widths.shape))
    # rest stays rest, closures stay closed: the perturbation must not undo what defines a viseme
    targets[_ROW[SILENCE], param_index("jaw_open")] = 0.0
    targets[[_ROW[p] for p in ("B", "P", "M")], param_index("lip_close")] = 1.0
    return _clip(targets), alpha, widths


def _clip(track: np.ndarray) -> np.ndarray:
    return np.clip(track, PARAM_RANGES[:, 0], PARAM_RANGES[:, 1])


def _row_of(label: str) -> int | None:
    """Table row of a phoneme label (stress digits and case ignored); None for a diphthong."""
    if label.lower() in SILENCE_WORDS:
        return _ROW[SILENCE]
    symbol = label.upper().rstrip("012")
    if symbol in DIPHTHONGS:
        return None
    if symbol not in _ROW:
        raise ValueError(f"{_WHERE}: no viseme for phoneme label {label!r}; known: {sorted(_ROW)}")
    return _ROW[symbol]


def _gestures(phonemes: Sequence[Segment]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gestures of a phoneme sequence: table rows [G], centres [G] s and plateau half-widths [G] s."""
    rows, centres, halves = [], [], []
    for segment in phonemes:
        row = _row_of(segment.label)
        if row is not None:
            rows.append(row)
            centres.append(0.5 * (segment.start + segment.end))
            halves.append(0.5 * _PLATEAU * segment.duration)
            continue
        for part, at in zip(DIPHTHONGS[segment.label.upper().rstrip("012")], (0.3, 0.8), strict=True):
            rows.append(_ROW[part])
            centres.append(segment.start + at * segment.duration)
            halves.append(0.25 * _PLATEAU * segment.duration)
    return np.array(rows, dtype=np.int64), np.array(centres), np.array(halves)


def articulation_track(
    phonemes: Sequence[Segment],
    num_frames: int,
    style: SpeakerStyle | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Articulatory parameters float32 [T, P] (columns ``PARAMS``) at the centres of ``num_frames`` frames.

    phonemes: timed labels in seconds (ARPAbet without stress, or "sil"), in order; frame f is sampled at
        ``(f + 0.5) / timebase.FPS``, before the first and after the last segment the mouth rests.
    style: the speaker (default: the textbook speaker, no idiosyncrasy).
    rng: per-utterance randomness (instance noise, timing jitter, effort); None gives the noise-free track.
    """
    if num_frames < 0:
        raise ValueError(f"{_WHERE}: num_frames must be >= 0, got {num_frames}")
    style = style or SpeakerStyle()
    times = np.asarray(timebase.frame_times(num_frames), dtype=np.float64)
    rows, centres, halves = _gestures(phonemes)
    rows = np.concatenate([[_ROW[SILENCE]], rows])  # a rest gesture far away keeps empty stretches at rest
    centres = np.concatenate([[-10.0], centres])
    halves = np.concatenate([[0.0], halves])
    table, alpha, widths = _speaker_table(style)
    targets = table[rows]
    lead = style.anticipation_s
    if rng is not None:
        targets = targets + rng.normal(0.0, style.articulation_noise, targets.shape)
        targets[:, param_index("jaw_open")] *= rng.normal(1.0, 0.07)  # this utterance's effort
        lead = lead + rng.normal(0.0, 0.01)
        centres = centres + rng.normal(0.0, 0.008, centres.shape)
    centres = centres - lead
    offset = times[:, None] - centres[None, :]  # [T, G], negative before the gesture
    tau = np.maximum(np.abs(offset) - halves[None, :], 0.0)
    width = widths[rows][None, :] * np.where(offset < 0, _ANTICIPATORY, 1.0)
    log_dominance = np.log(alpha[rows])[None, :, :] - (tau / width)[:, :, None]  # [T, G, P]
    weights = np.exp(log_dominance - log_dominance.max(axis=1, keepdims=True))
    track = (weights * targets[None]).sum(axis=1) / weights.sum(axis=1)
    track[:, param_index("lip_width")] += style.smile
    return _clip(track).astype(np.float32)
