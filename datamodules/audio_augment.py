"""Waveform augmentation for stage-1 training: clean TTS speech made to sound like people in rooms, phones.

The shipped audio encoder learned from clean synthetic voices and hears real recordings poorly (issue 13).
Each training utterance chosen (``prob``) goes through a random subset of what separates the two:

- **speed** (Kaldi-style speed perturbation: resampled, so tempo and pitch change together, ``speed``):
  the only step that changes the length; the caller stretches its labels by ``Augmented.stretch``;
- **pitch** shift by a few semitones at constant tempo (``librosa.effects.pitch_shift``);
- **reverberation**: a synthetic room impulse response (direct path at lag 0, then exponentially decaying
  Gaussian noise with a reverberation time drawn from ``rt60_s``), so nothing moves in time;
- **telephone band**: 300-3400 Hz, zero-phase Butterworth (no delay);
- **noise** (white, pink or brown) at an SNR drawn from ``snr_db``, relative to the speech's active power;
- **gain** in ``gain_db``, clipped to [-1, 1] as a recorder would.

Everything works on 16 kHz mono float32 (``timebase.SAMPLE_RATE``) with numpy, scipy and librosa.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talking_face.datamodules import timebase

__all__ = [
    "EFFECTS",
    "Augmented",
    "AudioAugmentation",
    "active_power",
    "add_noise",
    "reverberate",
    "telephone_band",
]

EFFECTS = ("speed", "pitch", "reverb", "telephone", "noise", "gain")
"""The effects, in the order they apply."""

_TELEPHONE_HZ = (300.0, 3400.0)
_NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
"""Exponent of 1/f in the noise power spectrum."""


@dataclass(frozen=True)
class Augmented:
    """``audio`` float32 [M] and ``stretch`` = M / N, the factor by which its timeline grew."""

    audio: np.ndarray
    stretch: float


def active_power(audio: np.ndarray, floor_db: float = 40.0) -> float:
    """Mean power of the 10 ms blocks of ``audio`` [N] within ``floor_db`` of the loudest: pauses left out."""
    hop = timebase.HOP_LENGTH
    blocks = np.asarray(audio, np.float64)[: audio.size // hop * hop].reshape(-1, hop)
    if blocks.size == 0:
        return float(np.mean(np.square(audio, dtype=np.float64)))
    power = np.square(blocks).mean(axis=1)
    return float(power[power >= power.max() * 10 ** (-floor_db / 10)].mean())


def add_noise(audio: np.ndarray, snr_db: float, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``audio`` [N] plus stationary ``colour``ed noise at ``snr_db`` below its active power."""
    spectrum = np.fft.rfft(rng.standard_normal(audio.size))
    frequency = np.fft.rfftfreq(audio.size, 1.0 / timebase.SAMPLE_RATE)
    spectrum /= np.maximum(frequency, 20.0) ** (_NOISE_COLOURS[colour] / 2)
    noise = np.fft.irfft(spectrum, audio.size)
    noise *= np.sqrt(active_power(audio) / np.mean(np.square(noise)) * 10 ** (-snr_db / 10))
    return (audio + noise).astype(np.float32)


def reverberate(audio: np.ndarray, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` [N] in a room with reverberation time ``rt60_s`` (a synthetic impulse response), at its
    active power. The direct path sits at lag 0, so speech keeps its timing."""
    from scipy.signal import fftconvolve

    times = np.arange(int(rt60_s * timebase.SAMPLE_RATE)) / timebase.SAMPLE_RATE
    response = rng.standard_normal(times.size) * 10 ** (-3 * times / rt60_s)  # -60 dB at rt60
    response[0] = 0.0
    response *= 0.5 / np.sqrt(np.sum(np.square(response)))  # reverberant energy 6 dB under the direct path
    response[0] = 1.0
    wet = fftconvolve(audio, response)[: audio.size]
    return (wet * np.sqrt(active_power(audio) / active_power(wet))).astype(np.float32)


def telephone_band(audio: np.ndarray) -> np.ndarray:
    """``audio`` [N] through a telephone's 300-3400 Hz band, zero-phase (no delay)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, _TELEPHONE_HZ, btype="bandpass", fs=timebase.SAMPLE_RATE, output="sos")
    return sosfiltfilt(sos, audio).astype(np.float32)


@dataclass(frozen=True)
class AudioAugmentation:
    """A random chain of the module's effects; each applies with probability ``step_prob``.

    Args:
        prob: probability that an utterance is augmented at all.
        step_prob: probability of each effect once it is.
        effects: the effects to draw from (``EFFECTS``; they apply in that order).
        speed: range of the speed factor (1.1 = 10 % faster and higher).
        semitones: range of the pitch shift.
        rt60_s: range of the reverberation time.
        snr_db: range of the noise's SNR.
        gain_db: range of the gain.
    """

    prob: float = 0.5
    step_prob: float = 0.4
    effects: tuple[str, ...] = EFFECTS
    speed: tuple[float, float] = (0.9, 1.1)
    semitones: tuple[float, float] = (-2.0, 2.0)
    rt60_s: tuple[float, float] = (0.2, 0.8)
    snr_db: tuple[float, float] = (0.0, 30.0)
    gain_db: tuple[float, float] = (-10.0, 10.0)

    def __post_init__(self) -> None:
        if not (0.0 <= self.prob <= 1.0 and 0.0 <= self.step_prob <= 1.0):
            raise ValueError(f"prob and step_prob must lie in [0, 1], got {self.prob}, {self.step_prob}")
        if not (0.0 < self.speed[0] <= self.speed[1] and 0.0 < self.rt60_s[0] <= self.rt60_s[1]):
            raise ValueError(f"speed and rt60_s need positive ranges, got {self.speed}, {self.rt60_s}")
        if unknown := set(self.effects) - set(EFFECTS):
            raise ValueError(f"unknown effects {sorted(unknown)}; expected some of {EFFECTS}")

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> Augmented:
        """Augment 16 kHz mono ``audio`` [N] (float in [-1, 1])."""
        import librosa

        audio = np.asarray(audio, np.float32)
        if audio.size == 0 or rng.random() >= self.prob or not np.any(audio):
            return Augmented(audio, 1.0)

        def chosen(effect: str) -> bool:
            return bool(rng.random() < self.step_prob) and effect in self.effects

        size = audio.size
        if chosen("speed"):
            rate = timebase.SAMPLE_RATE
            audio = librosa.resample(audio, orig_sr=rate, target_sr=rate / rng.uniform(*self.speed))
        if chosen("pitch"):
            steps = rng.uniform(*self.semitones)
            audio = librosa.effects.pitch_shift(audio, sr=timebase.SAMPLE_RATE, n_steps=steps)
        if chosen("reverb"):
            audio = reverberate(audio, rng.uniform(*self.rt60_s), rng)
        if chosen("telephone"):
            audio = telephone_band(audio)
        if chosen("noise"):
            audio = add_noise(audio, rng.uniform(*self.snr_db), str(rng.choice(list(_NOISE_COLOURS))), rng)
        if chosen("gain"):
            audio = audio * 10 ** (rng.uniform(*self.gain_db) / 20)
        return Augmented(np.clip(audio, -1.0, 1.0).astype(np.float32), audio.size / size)
