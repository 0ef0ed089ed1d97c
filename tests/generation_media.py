"""Inputs for the generation tests: real packaged faces, TTS speech, short clips, checkpoints as fit saves.

Nothing comes from the network: the faces ship in installed packages, the speech is the project's TTS, the
clips are a framed photo moving a little (an affine shift per frame), written with ``datamodules.media``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from talking_face.datamodules import timebase

SENTENCE = "bin blue at f two now"
OTHER_SENTENCE = "place red by g nine soon"


@functools.cache
def spoken(text: str = SENTENCE) -> np.ndarray:
    """float32 mono speech of ``text`` at ``timebase.SAMPLE_RATE`` (the pipeline's own text-only speech)."""
    from talking_face.generation.speech_input import prepare_speech

    return prepare_speech(text=text).audio


def music(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """float32 mono music at ``timebase.SAMPLE_RATE``: a melody of plucked harmonic notes with vibrato over a
    drum beat, at speech level (what loudness alone takes for a voice)."""
    rate = timebase.SAMPLE_RATE
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    notes_per_second = 3
    pitch = 220 * 2 ** (rng.integers(0, 12, int(seconds * notes_per_second) + 1) / 12)
    f0 = pitch[(t * notes_per_second).astype(int)] * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    within = (t * notes_per_second) % 1
    melody = (
        sum(np.sin(k * phase) / k for k in range(1, 9)) * np.minimum(1, 20 * within) * np.exp(-1.5 * within)
    )
    drums = np.zeros_like(t)
    hit = np.arange(2000)
    for start in range(0, t.size - hit.size, rate // 4):
        drums[start + hit] += rng.standard_normal(hit.size) * np.exp(-hit / 300)
    return (0.2 * melody + 0.3 * drums).astype(np.float32)


def _photo(name: str):
    from talking_face.datamodules.faces.photos import packaged_photos

    return next(photo for photo in packaged_photos() if photo.name == name)


def photo_file(name: str = "grace_hopper") -> Path:
    """A face photo file that ships in an installed package (Grace Hopper: never in the shipped training)."""
    return _photo(name).file()


@functools.cache
def framed(name: str = "grace_hopper") -> np.ndarray:
    """The photo framed like a GRID frame, RGB uint8 [288, 360, 3] (read-only: cached)."""
    from talking_face.datamodules.faces.photos import load_photo

    image = load_photo(_photo(name))
    image.flags.writeable = False
    return image


def write_speech(
    path: Path, audio: np.ndarray, sample_rate: int = timebase.SAMPLE_RATE, stereo: bool = False
) -> Path:
    """Write ``audio`` (at the pipeline's rate) as a wav at ``sample_rate``, mono or stereo."""
    import librosa
    import soundfile

    audio = np.asarray(audio, np.float32)
    if sample_rate != timebase.SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=timebase.SAMPLE_RATE, target_sr=sample_rate)
    if stereo:
        audio = np.stack([audio, 0.5 * audio], axis=1)
    soundfile.write(path, audio, sample_rate)
    return path


def moving_frames(image: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """uint8 [T, H, W, 3]: ``image`` drifting a few pixels back and forth (a head that is not quite still)."""
    import cv2

    height, width = image.shape[:2]
    frames = []
    for t in np.arange(num_frames) / fps:
        shift = np.array([[1, 0, 3 * np.sin(2 * np.pi * t)], [0, 1, 2 * np.cos(2 * np.pi * 0.7 * t)]])
        frames.append(cv2.warpAffine(image, shift, (width, height), borderMode=cv2.BORDER_REPLICATE))
    return np.stack(frames)


def write_clip(
    path: Path, num_frames: int, fps: float, faceless: dict[int, np.ndarray] | None = None
) -> Path:
    """An mp4 of the framed Grace Hopper photo moving a little; ``faceless`` replaces frames by images."""
    from talking_face.datamodules.media import write_video

    frames = moving_frames(framed(), num_frames, fps)
    for index, image in (faceless or {}).items():
        frames[index] = image
    return write_video(path, frames, fps=fps)


def save_checkpoint(module, path: Path) -> Path:
    """A Lightning checkpoint of ``module`` as ``talking-face fit`` writes it (no training needed)."""
    import lightning as L

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path
