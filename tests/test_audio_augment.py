"""Waveform augmentation: each effect does what it claims, and augmented training items stay aligned."""

from __future__ import annotations

import numpy as np
import pytest

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_augment import (
    EFFECTS,
    AudioAugmentation,
    active_power,
    add_noise,
    reverberate,
    telephone_band,
)
from talking_face.datamodules.cache import CachedUtterance, record_dir, write_record
from talking_face.datamodules.datasets import LandmarkSequenceDataset

RATE = timebase.SAMPLE_RATE


def _tone(hz: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _voiced(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A buzz with ten harmonics of ``f0``, like a vowel."""
    return sum(_tone(f0 * k, seconds, 0.3 / k) for k in range(1, 11)).astype(np.float32)


def _level_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


def _f0(audio: np.ndarray) -> float:
    import librosa

    return float(np.median(librosa.yin(audio, fmin=60, fmax=400, sr=RATE)))


def _only(effect: str, **ranges) -> AudioAugmentation:
    return AudioAugmentation(prob=1.0, step_prob=1.0, effects=(effect,), **ranges)


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_noise_sits_at_the_requested_snr_below_the_speech(colour: str, snr_db: float) -> None:
    clean = _voiced(140.0)
    clean[: RATE // 4] = 0.0  # a pause, which must not count as speech power
    noisy = add_noise(clean, snr_db, colour, np.random.default_rng(0))
    measured = 10 * np.log10(active_power(clean) / np.mean(np.square(noisy - clean, dtype=np.float64)))
    assert measured == pytest.approx(snr_db, abs=0.2)


def test_noise_colours_put_their_power_where_they_should() -> None:
    import librosa

    silence_and_tone = _tone(1000.0)
    low_share = {}
    for colour in ("white", "pink", "brown"):
        noise = add_noise(silence_and_tone, 0.0, colour, np.random.default_rng(1)) - silence_and_tone
        power = np.abs(librosa.stft(noise, n_fft=512)) ** 2
        frequency = librosa.fft_frequencies(sr=RATE, n_fft=512)
        low_share[colour] = power[frequency < 1000].sum() / power.sum()
    assert low_share["white"] < low_share["pink"] < low_share["brown"], low_share


def test_reverberation_adds_a_decaying_tail_and_keeps_the_timing() -> None:
    burst = np.zeros(RATE, np.float32)
    burst[int(0.2 * RATE) : int(0.4 * RATE)] = _voiced(120.0, 0.2)
    tails = []
    for rt60 in (0.2, 0.8):
        wet = reverberate(burst, rt60, np.random.default_rng(2))
        assert wet.shape == burst.shape
        lag = np.argmax(
            np.correlate(wet[: int(0.5 * RATE)], burst[int(0.1 * RATE) : int(0.45 * RATE)], "valid")
        )
        assert abs(lag - int(0.1 * RATE)) <= 1, "the direct path moved"
        tails.append(_level_db(wet[int(0.45 * RATE) : int(0.6 * RATE)]))
        assert _level_db(wet[: int(0.19 * RATE)]) < -100, "nothing is heard before the sound"
    assert tails[0] > _level_db(burst) - 60 and tails[1] > tails[0] + 10, tails


def test_telephone_band_keeps_speech_frequencies_cuts_the_rest_and_adds_no_delay() -> None:
    levels = {}
    for hz in (100, 1000, 6000):
        tone = _tone(hz)
        levels[hz] = _level_db(telephone_band(tone)[RATE // 10 : -RATE // 10]) - _level_db(tone)
    assert abs(levels[1000]) < 1.0 and levels[100] < -20 and levels[6000] < -20, levels
    click = np.zeros(RATE // 4, np.float32)
    click[RATE // 8] = 1.0
    assert np.argmax(np.abs(telephone_band(click))) == RATE // 8


def test_speed_changes_tempo_and_pitch_together() -> None:
    voiced = _voiced(150.0)
    out = _only("speed", speed=(1.1, 1.1))(voiced, np.random.default_rng(0))
    assert out.stretch == pytest.approx(1 / 1.1, abs=1e-3) and out.audio.size == pytest.approx(
        RATE / 1.1, abs=2
    )
    assert _f0(out.audio) == pytest.approx(165.0, rel=0.02)


def test_pitch_shift_keeps_the_length() -> None:
    out = _only("pitch", semitones=(2.0, 2.0))(_voiced(150.0), np.random.default_rng(0))
    assert out.stretch == 1.0 and out.audio.size == RATE
    assert _f0(out.audio) == pytest.approx(150.0 * 2 ** (2 / 12), rel=0.02)


def test_gain_scales_the_level() -> None:
    voiced = _voiced(150.0) * 0.5
    out = _only("gain", gain_db=(-6.0, -6.0))(voiced, np.random.default_rng(0))
    assert _level_db(out.audio) - _level_db(voiced) == pytest.approx(-6.0, abs=0.01)


def test_off_is_identity_and_a_seed_gives_the_same_chain() -> None:
    voiced = _voiced(150.0)
    assert np.array_equal(AudioAugmentation(prob=0.0)(voiced, np.random.default_rng(0)).audio, voiced)
    every = AudioAugmentation(prob=1.0, step_prob=1.0)
    first, again = (every(voiced, np.random.default_rng(5)) for _ in range(2))
    assert np.array_equal(first.audio, again.audio) and first.stretch == again.stretch != 1.0
    assert not np.allclose(first.audio[: again.audio.size], voiced[: again.audio.size])
    with pytest.raises(ValueError, match="unknown effects"):
        AudioAugmentation(effects=("chorus",))
    assert set(EFFECTS) == {"speed", "pitch", "reverb", "telephone", "noise", "gain"}


FRAMES, LOUD = 40, slice(15, 21)
"""A record silent but for a vowel at frames 15-20, where its phoneme is AA and its mouth opens."""


def _record(folder) -> CachedUtterance:
    from talking_face.datamodules.faces.alignment import TEMPLATE_68
    from talking_face.datamodules.phonemes import VOCAB

    samples = timebase.SAMPLES_PER_FRAME
    audio = np.zeros(FRAMES * samples, np.float32)
    audio[LOUD.start * samples : LOUD.stop * samples] = _voiced(
        130.0, (LOUD.stop - LOUD.start) / timebase.FPS
    )
    landmarks = np.repeat((TEMPLATE_68 * 128)[None], FRAMES, axis=0).astype(np.float32)
    landmarks[LOUD, 57, 1] += 10.0  # the lower lip drops
    landmarks[LOUD, 66, 1] += 10.0
    phoneme_ids = np.full(FRAMES, VOCAB.index("sil"), np.int64)
    phoneme_ids[LOUD] = VOCAB.index("AA")
    arrays = {
        "frames": np.zeros((FRAMES, 8, 8, 3), np.uint8),
        "landmarks": landmarks,
        "crop_transforms": np.tile(np.eye(2, 3, dtype=np.float32), (FRAMES, 1, 1)),
        "audio": audio,
        "audio_features": np.zeros((FRAMES * 4, 80), np.float32),
        "phoneme_ids": phoneme_ids,
    }
    meta = {"speaker": "s1", "utterance": "u1", "text": "ah", "fps": timebase.FPS, "sample_rate": RATE,
            "num_frames": FRAMES, "crop_size": 128, "phonemes": [], "words": []}  # fmt: skip
    path = record_dir(folder, "s1", "u1")
    write_record(path, arrays, meta)
    return CachedUtterance(path)


@pytest.mark.parametrize(
    "augment",
    [
        _only("speed", speed=(0.8, 0.8)),
        _only("speed", speed=(1.2, 1.2)),
        AudioAugmentation(1.0, 1.0, ("reverb", "telephone", "noise", "gain"), snr_db=(20.0, 20.0)),
    ],  # fmt: skip
    ids=["slower", "faster", "room-phone-noise"],
)
def test_augmented_items_keep_sound_phonemes_and_mouth_on_the_same_frames(tmp_path, augment) -> None:
    from talking_face.datamodules.phonemes import VOCAB

    item = LandmarkSequenceDataset([_record(tmp_path)], augment=augment)[0]
    frames = len(item["phoneme_ids"])
    speed = augment.speed[0] if augment.effects == ("speed",) else 1.0
    assert frames == round(FRAMES / speed) and item["audio_features"].shape == (4 * frames, 80)
    assert item["mouth"].shape == (frames, 20, 2)
    vowel = (item["phoneme_ids"] == VOCAB.index("AA")).numpy()
    loudness = item["audio_features"].numpy().reshape(frames, 4, 80).mean(axis=(1, 2))
    loud = loudness > loudness.min() + 0.5 * (loudness.max() - loudness.min())
    opening = (item["mouth"][:, 18, 1] - item["mouth"][:, 14, 1]).numpy()  # lower inner lip (66) from 62
    change = np.abs(opening - opening[0])
    opened = change > 0.5 * change.max()
    assert vowel.sum() == pytest.approx((LOUD.stop - LOUD.start) / speed, abs=1)
    assert np.abs(np.flatnonzero(vowel)[[0, -1]] - np.flatnonzero(opened)[[0, -1]]).max() <= 1
    # the sound starts and ends with its phoneme (a room's tail may ring on for a few frames)
    assert abs(np.flatnonzero(loud)[0] - np.flatnonzero(vowel)[0]) <= 1
    assert 0 <= np.flatnonzero(loud)[-1] - np.flatnonzero(vowel)[-1] <= (3 if speed == 1.0 else 1)
