"""Phoneme segments for the articulation tests, written as (label, duration) pairs."""

from __future__ import annotations

from talking_face.datamodules.segments import Segment


def utterance(*spec: tuple[str, float]) -> list[Segment]:
    """Contiguous segments from (label, duration) pairs, starting at 0 s."""
    segments, start = [], 0.0
    for label, duration in spec:
        segments.append(Segment(label, start, start + duration))
        start += duration
    return segments
