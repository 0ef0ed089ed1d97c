"""Map-style datasets over cached records: sequences for stage 1, clips for stage 2.

Records are memory-mapped, so an item reads only the rows it needs. Items and batches are dicts whose
keys and shapes are listed in each class docstring (B = batch, T = frames, S = crop size).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_augment import AudioAugmentation
from talking_face.datamodules.cache import CachedUtterance
from talking_face.datamodules.faces.mouth import mouth_points, neutral_mouth
from talking_face.datamodules.phonemes import SIL_ID


class LandmarkSequenceDataset(Dataset):
    """Stage 1: one utterance -> audio features, frame phonemes and mouth landmarks.

    Item (batched by ``collate_sequences``):
        audio_features float32 [4T, 80]; phoneme_ids int64 [T];
        mouth float32 [T, 20, 2] in the face-normalised frame (``faces.alignment.face_normalise``);
        mouth_reference float32 [20, 2] the utterance's resting mouth in the same frame;
        pixels_per_unit float32 [] crop pixels per normalised unit; speaker, utterance, text: str.
    With ``max_frames``, longer utterances are cut to a random window of that many frames (training).
    With ``augment`` (training), the window's waveform is augmented and its features computed afresh; a
    speed change stretches the window's phonemes and mouth by the same factor, so they stay aligned.
    """

    def __init__(
        self,
        records: Sequence[CachedUtterance],
        max_frames: int | None = None,
        augment: AudioAugmentation | None = None,
    ) -> None:
        self.records = list(records)
        self.max_frames = max_frames
        self.augment = augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        from talking_face.datamodules.faces.alignment import face_normalise, pixels_per_unit

        record = self.records[index]
        crop_size = int(record.meta["crop_size"])
        phoneme_ids = np.asarray(record.array("phoneme_ids"))
        mouth = face_normalise(mouth_points(np.asarray(record.array("landmarks"))), crop_size)
        reference = neutral_mouth(mouth, resting=phoneme_ids == SIL_ID)
        start, stop = 0, record.num_frames
        if self.max_frames and stop > self.max_frames:
            start = int(torch.randint(0, stop - self.max_frames + 1, ()).item())
            stop = start + self.max_frames
        steps = timebase.STEPS_PER_FRAME
        phoneme_ids, mouth = phoneme_ids[start:stop], mouth[start:stop]
        if self.augment is None:
            features = np.array(record.array("audio_features")[start * steps : stop * steps])
        else:
            audio = record.array("audio")[
                start * timebase.SAMPLES_PER_FRAME : stop * timebase.SAMPLES_PER_FRAME
            ]
            features, phoneme_ids, mouth = self._augmented(np.asarray(audio), phoneme_ids, mouth)
        return {
            "audio_features": torch.from_numpy(features),
            "phoneme_ids": torch.from_numpy(np.array(phoneme_ids)),
            "mouth": torch.from_numpy(np.ascontiguousarray(mouth, np.float32)),
            "mouth_reference": torch.from_numpy(reference),
            "pixels_per_unit": torch.tensor(pixels_per_unit(crop_size), dtype=torch.float32),
            "speaker": record.speaker,
            "utterance": record.utterance,
            "text": record.meta["text"],
        }

    def _augmented(
        self, audio: np.ndarray, phoneme_ids: np.ndarray, mouth: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Augmented audio [T*640] -> its features [4T', 80], with phoneme_ids [T] and mouth [T, 20, 2]
        resampled to its T' frames (frame centres mapped through the stretch)."""
        from talking_face.datamodules.audio_features import log_mel

        rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))  # follows torch's worker seeds
        augmented = self.augment(audio, rng)
        frames = len(phoneme_ids)
        if augmented.stretch != 1.0:
            count = max(1, round(frames * augmented.stretch))
            source = np.clip((np.arange(count) + 0.5) / augmented.stretch - 0.5, 0, frames - 1)
            below = np.floor(source).astype(int)
            above, weight = np.minimum(below + 1, frames - 1), (source - below)[:, None, None]
            mouth = (1 - weight) * mouth[below] + weight * mouth[above]
            phoneme_ids, frames = phoneme_ids[np.round(source).astype(int)], count
        return log_mel(augmented.audio, frames), phoneme_ids, mouth


def collate_sequences(items: list[dict]) -> dict:
    """Pad stage-1 items to the longest: adds ``mask`` bool [B, T] and ``lengths`` int64 [B]."""
    lengths = torch.tensor([len(item["phoneme_ids"]) for item in items])
    frames, batch = int(lengths.max()), len(items)
    steps = timebase.STEPS_PER_FRAME
    out = {
        "audio_features": torch.zeros(batch, frames * steps, items[0]["audio_features"].shape[-1]),
        "phoneme_ids": torch.zeros(batch, frames, dtype=torch.long),
        "mouth": torch.zeros(batch, frames, *items[0]["mouth"].shape[1:]),
        "mask": torch.arange(frames)[None, :] < lengths[:, None],
        "lengths": lengths,
    }
    for row, (item, length) in enumerate(zip(items, lengths.tolist(), strict=True)):
        out["audio_features"][row, : length * steps] = item["audio_features"]
        out["phoneme_ids"][row, :length] = item["phoneme_ids"]
        out["mouth"][row, :length] = item["mouth"]
    out["mouth_reference"] = torch.stack([item["mouth_reference"] for item in items])
    out["pixels_per_unit"] = torch.stack([item["pixels_per_unit"] for item in items])
    for key in ("speaker", "utterance", "text"):
        out[key] = [item[key] for item in items]
    return out


class FaceClipDataset(Dataset):
    """Stage 2: clips of ``clip_length`` consecutive frames with landmarks and a reference of the person.

    Item (default-collated into a batch):
        frames float32 [L, 3, S, S] in [0, 1]; landmarks float32 [L, 68, 2] crop pixels;
        reference_frame float32 [3, S, S]; reference_landmarks float32 [68, 2];
        start int64 []; speaker, utterance: str.
    The reference comes from another utterance of the same speaker when one exists (so the generator
    cannot copy the clip's own frames); ``random_reference`` draws it anew each time (training),
    otherwise it is the middle frame of the speaker's first other utterance (stable for evaluation).
    """

    def __init__(
        self,
        records: Sequence[CachedUtterance],
        clip_length: int = 8,
        stride: int = 4,
        random_reference: bool = False,
    ) -> None:
        if clip_length < 1 or stride < 1:
            raise ValueError(f"clip_length and stride must be >= 1, got {clip_length}, {stride}")
        self.records = list(records)
        self.clip_length = clip_length
        self.random_reference = random_reference
        self.clips = [
            (index, start)
            for index, record in enumerate(self.records)
            for start in range(0, record.num_frames - clip_length + 1, stride)
        ]
        by_speaker: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(self.records):
            by_speaker[record.speaker].append(index)
        self.same_speaker = {i: by_speaker[r.speaker] for i, r in enumerate(self.records)}

    def __len__(self) -> int:
        return len(self.clips)

    def _reference(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        others = [i for i in self.same_speaker[index] if i != index] or [index]
        if self.random_reference:
            record = self.records[others[int(torch.randint(len(others), ()).item())]]
            frame = int(torch.randint(record.num_frames, ()).item())
        else:
            record = self.records[others[0]]
            frame = record.num_frames // 2
        return np.asarray(record.array("frames")[frame]), np.asarray(record.array("landmarks")[frame])

    def __getitem__(self, item: int) -> dict:
        index, start = self.clips[item]
        record = self.records[index]
        window = slice(start, start + self.clip_length)
        reference_frame, reference_landmarks = self._reference(index)
        return {
            "frames": _to_float_image(np.asarray(record.array("frames")[window])),
            "landmarks": torch.from_numpy(np.array(record.array("landmarks")[window], np.float32)),
            "reference_frame": _to_float_image(reference_frame),
            "reference_landmarks": torch.from_numpy(np.array(reference_landmarks, np.float32)),
            "start": torch.tensor(start),
            "speaker": record.speaker,
            "utterance": record.utterance,
        }


def _to_float_image(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).movedim(-1, -3).float().div_(255.0)
