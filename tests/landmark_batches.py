"""Synthetic stage-1 batches for tests, in the DataModule's batch contract (see CONTRACTS.md / datasets.py).

Each phoneme id owns a fixed mouth gesture (opening, spreading) and a fixed spectral envelope, so the mouth
is predictable from the phonemes and from the audio; gestures are smoothed over neighbouring frames
(coarticulation), each "speaker" has its own mouth size and loudness, and the log-mel carries noise. A
model that learns anything beats the neutral-mouth and mean-mouth baselines; one that learns nothing
does not. Not a corpus: only shapes, masks and learnability are realistic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_features import LOG_FLOOR
from talking_face.datamodules.faces.landmark_scheme import NUM_MOUTH
from talking_face.datamodules.phonemes import SIL_ID, VOCAB


def _tables(seed: int = 1234) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per phoneme id: opening [V], spreading [V], log spectral envelope [V, 80]; silence is closed."""
    rng = np.random.default_rng(seed)
    opening = rng.uniform(0.0, 1.0, len(VOCAB))
    spreading = rng.uniform(-0.5, 0.5, len(VOCAB))
    bins = np.arange(timebase.N_MELS)
    centres = rng.uniform(5, 75, (len(VOCAB), 2))
    formant1 = np.exp(-(((bins[None, :] - centres[:, :1]) / 8.0) ** 2))
    formant2 = np.exp(-(((bins[None, :] - centres[:, 1:]) / 12.0) ** 2))
    envelope = np.log(formant1 + formant2 + 1e-3)
    opening[:2] = spreading[:2] = 0.0
    return opening, spreading, envelope


def neutral_mouth(scale: float = 1.0) -> np.ndarray:
    """A closed mouth [20, 2] in face-normalised units (x right, y down): outer lip 12 points, inner 8."""
    outer = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    inner = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    outer_lip = np.stack([0.45 * np.cos(outer), 0.15 * np.sin(outer)], 1)
    inner_lip = np.stack([0.3 * np.cos(inner), 0.02 * np.sin(inner)], 1)
    points = np.concatenate([outer_lip, inner_lip])
    return (points * scale).astype(np.float32)


def make_utterance(rng: np.random.Generator, frames_range: tuple[int, int] = (20, 60)) -> dict:
    """One stage-1 item: audio_features [4T, 80], phoneme_ids [T], mouth [T, 20, 2], mouth_reference [20, 2]
    (plus pixels_per_unit), T drawn from ``frames_range``."""
    opening, spreading, envelope = _tables()
    target = int(rng.integers(*frames_range, endpoint=True))
    ids = [SIL_ID] * int(rng.integers(2, 5))
    while len(ids) < target - 2:
        ids += [int(rng.integers(2, len(VOCAB)))] * int(rng.integers(2, 7))
    ids = np.array((ids + [SIL_ID] * 3)[:target], dtype=np.int64)
    kernel = np.array([0.15, 0.2, 0.3, 0.2, 0.15])  # coarticulation: neighbours shape each frame
    open_t = np.convolve(np.pad(opening[ids], 2, mode="edge"), kernel, mode="valid")
    spread_t = np.convolve(np.pad(spreading[ids], 2, mode="edge"), kernel, mode="valid")
    scale = float(rng.uniform(0.8, 1.2))
    reference = neutral_mouth(scale)
    lower = reference[:, 1] > 0  # y grows downwards: the lower lip opens down, the upper up
    open_pattern = np.stack([np.zeros(NUM_MOUTH), np.where(lower, 0.35, -0.12)], 1)
    spread_pattern = np.stack([np.sign(reference[:, 0]) * 0.12, np.zeros(NUM_MOUTH)], 1)
    mouth = reference + scale * (
        open_t[:, None, None] * open_pattern + spread_t[:, None, None] * spread_pattern
    )
    loudness = float(rng.uniform(-1.0, 1.0))
    frame_power = np.exp(envelope[ids] + loudness) * (0.1 + open_t[:, None])
    frame_power[ids == SIL_ID] = 0.0
    steps = np.repeat(frame_power, timebase.STEPS_PER_FRAME, axis=0)
    noise = rng.exponential(1.0, steps.shape) * 1e-3 * np.exp(loudness)
    features = np.log(steps * rng.uniform(0.7, 1.3, steps.shape) + noise + LOG_FLOOR)
    return {
        "audio_features": torch.tensor(features, dtype=torch.float32),
        "phoneme_ids": torch.from_numpy(ids),
        "mouth": torch.tensor(mouth, dtype=torch.float32),
        "mouth_reference": torch.from_numpy(reference),
        "pixels_per_unit": torch.tensor(float(rng.uniform(30.0, 50.0))),
    }


def collate(items: list[dict], pad_to: int | None = None) -> dict:
    """Pad items to the longest (or ``pad_to``) frames, as the DataModule does; adds mask, lengths, names."""
    lengths = torch.tensor([len(item["phoneme_ids"]) for item in items])
    frames = max(int(lengths.max()), pad_to or 0)
    steps = timebase.STEPS_PER_FRAME
    batch = {
        "audio_features": torch.zeros(len(items), frames * steps, timebase.N_MELS),
        "phoneme_ids": torch.zeros(len(items), frames, dtype=torch.long),
        "mouth": torch.zeros(len(items), frames, NUM_MOUTH, 2),
        "mask": torch.arange(frames)[None, :] < lengths[:, None],
        "lengths": lengths,
        "mouth_reference": torch.stack([item["mouth_reference"] for item in items]),
        "pixels_per_unit": torch.stack([item["pixels_per_unit"] for item in items]),
    }
    for row, (item, length) in enumerate(zip(items, lengths.tolist(), strict=True)):
        batch["audio_features"][row, : length * steps] = item["audio_features"]
        batch["phoneme_ids"][row, :length] = item["phoneme_ids"]
        batch["mouth"][row, :length] = item["mouth"]
    batch["speaker"] = [f"s{row}" for row in range(len(items))]
    batch["utterance"] = [f"u{row}" for row in range(len(items))]
    batch["text"] = ["bin blue at f two now"] * len(items)
    return batch


def make_items(count: int, seed: int = 0, frames_range: tuple[int, int] = (20, 60)) -> list[dict]:
    """``count`` different synthetic utterances (see ``make_utterance``)."""
    rng = np.random.default_rng(seed)
    return [make_utterance(rng, frames_range) for _ in range(count)]


def make_batches(
    count: int, batch_size: int = 8, seed: int = 0, frames_range: tuple[int, int] = (20, 60)
) -> list[dict]:
    """``count`` padded batches of ``batch_size`` synthetic utterances."""
    items = make_items(count * batch_size, seed, frames_range)
    return [collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore.

    Small models gain nothing from more threads, and on a busy 2-core machine two threads spin-wait on each
    other (measured here under load: 0.45 s a training step with 2 threads against 0.10 s with 1, and 3 s of
    speech inferred in 0.27 s against 0.007 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
