"""A folder of your own videos, each with a same-named ``.txt`` transcript (a GRID ``.align`` optional).

Speakers are the first-level sub-folders (``root/alice/clip1.mp4`` belongs to ``alice``); videos
directly in the root belong to one speaker named after the root. Without an ``.align``, preprocessing
places the transcript on the speech with the forced aligner.
"""

from __future__ import annotations

from pathlib import Path

from talking_face.datamodules.corpora.grid import VIDEO_SUFFIXES
from talking_face.datamodules.corpora.utterance import CorpusError, Utterance


def read_folder(root: str | Path) -> list[Utterance]:
    """All videos under ``root`` that have a transcript; a video without one is an error naming it."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: corpus folder does not exist")
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not videos:
        raise CorpusError(f"{root}: no videos found ({', '.join(sorted(VIDEO_SUFFIXES))})")
    utterances = []
    for video in videos:
        relative = video.relative_to(root)
        nested = len(relative.parts) > 1
        speaker = relative.parts[0] if nested else root.resolve().name
        name = relative.relative_to(relative.parts[0]) if nested else relative
        alignment = video.with_suffix(".align")
        utterances.append(
            Utterance(
                speaker=speaker,
                utterance=str(name.with_suffix("")).replace("/", "__"),
                video=video,
                transcript=video.with_suffix(".txt"),  # a missing one is reported when it is read
                alignment=alignment if alignment.is_file() else None,
            )
        )
    return utterances
