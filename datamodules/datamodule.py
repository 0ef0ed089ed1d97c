"""The one LightningDataModule both stages share, configured from LightningCLI YAML."""

from __future__ import annotations

from typing import Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset

from talking_face.datamodules.audio_augment import AudioAugmentation
from talking_face.datamodules.cache import load_manifest
from talking_face.datamodules.datasets import FaceClipDataset, LandmarkSequenceDataset, collate_sequences
from talking_face.datamodules.splits import split_records

__all__ = ["TEST_SPLITS", "TalkingFaceDataModule"]

TEST_SPLITS = {"test_utterances": "test", "test_speakers": "test_speakers"}
"""The test loaders in ``test_dataloader``'s order: the name modules log them under -> the split served."""


class TalkingFaceDataModule(L.LightningDataModule):
    """Cached records -> seeded splits -> stage-1 sequences or stage-2 clips.

    Splits (``datamodules.splits``): ``test_speakers`` held out whole; the other speakers' utterances
    go to train / val / test. ``val_dataloader`` serves held-out utterances of training speakers;
    ``test_dataloader`` serves two loaders, [held-out utterances, held-out speakers].

    Args:
        cache_dir: the preprocessed cache (``talking-face preprocess``).
        stage: ``landmarks`` (stage 1: padded sequences) or ``face2vid`` (stage 2: clips).
        batch_size: items per batch.
        num_workers: loader processes.
        val_utterances: fraction of each training speaker's utterances held out for validation.
        test_utterances: fraction of each training speaker's utterances held out for testing.
        test_speakers: speakers held out entirely, by name or as a count drawn with ``seed``.
        seed: the split's seed.
        max_frames: stage 1 trains on random windows of at most this many frames (None: whole).
        augment_audio: stage 1: probability that a training window's waveform is augmented (speed, pitch,
            reverberation, telephone band, noise, gain: ``datamodules.audio_augment``); 0: off.
        clip_length: stage 2 clip length in frames.
        clip_stride: stage 2 distance between clip starts in frames.
    """

    def __init__(
        self,
        cache_dir: str = "outputs/cache",
        stage: Literal["landmarks", "face2vid"] = "landmarks",
        batch_size: int = 16,
        num_workers: int = 0,
        val_utterances: float = 0.1,
        test_utterances: float = 0.1,
        test_speakers: list[str] | int = 1,
        seed: int = 0,
        max_frames: int | None = 150,
        augment_audio: float = 0.0,
        clip_length: int = 8,
        clip_stride: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            hp = self.hparams
            self.splits = split_records(
                load_manifest(hp.cache_dir), hp.val_utterances, hp.test_utterances, hp.test_speakers, hp.seed
            )

    def dataset(self, split: str, training: bool = False) -> Dataset:
        """The dataset of one split (``train``, ``val``, ``test``, ``test_speakers``)."""
        self.setup()
        records = self.splits[split]
        if not records:
            raise ValueError(f"split {split!r} of {self.hparams.cache_dir} is empty: the corpus is too small")
        hp = self.hparams
        if hp.stage == "landmarks":
            augment = AudioAugmentation(prob=hp.augment_audio) if training and hp.augment_audio > 0 else None
            return LandmarkSequenceDataset(records, hp.max_frames if training else None, augment)
        return FaceClipDataset(records, hp.clip_length, hp.clip_stride, random_reference=training)

    def _loader(self, split: str, training: bool = False) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            self.dataset(split, training),
            batch_size=hp.batch_size,
            shuffle=training,
            drop_last=False,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            collate_fn=collate_sequences if hp.stage == "landmarks" else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(split) for split in TEST_SPLITS.values()]

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test_speakers")
