"""Timed labels (words or phonemes) shared by corpora, TTS, aligners and the cache."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Segment:
    """A label spanning ``[start, end)`` seconds of an utterance.

    Phoneme labels are ARPAbet without stress (see ``datamodules.phonemes.VOCAB``), with ``"sil"``
    for silence; word labels are lower-case words, with ``"sil"`` for silence.
    """

    label: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if not self.end >= self.start >= 0.0:
            raise ValueError(f"segment {self.label!r} has bad times [{self.start}, {self.end})")

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Segment:
        return cls(str(data["label"]), float(data["start"]), float(data["end"]))
