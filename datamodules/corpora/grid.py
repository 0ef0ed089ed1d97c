"""The GRID audio-visual corpus, read from any of the layouts its copies use in the wild.

Seen layouts: ``sN/*.mpg`` with ``alignments/sN/*.align``; ``sN/video/mpg_6000/*.mpg`` with
``sN/align/*.align``; audio inside the video or as ``.wav`` (``sN/audio/*.wav``, ``audio_25k/sN/*.wav``).
Rather than hard-coding one, every file under the root is matched to an utterance by its speaker (the
nearest folder named ``sN``) and its id (the file stem). The built-in corpus is written in this layout
too, with exact TTS phoneme timings in ``sN/phonemes/*.json``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from talking_face.datamodules.corpora.utterance import CorpusError, Utterance

VIDEO_SUFFIXES = frozenset({".mpg", ".mpeg", ".mp4", ".avi", ".mov", ".mkv", ".webm"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
_SPEAKER = re.compile(r"^s\d+$", re.IGNORECASE)


def _speaker_of(path: Path, root: Path) -> str | None:
    for part in reversed(path.relative_to(root).parts[:-1]):
        if _SPEAKER.match(part):
            return part.lower()
    return None


def _kind_of(path: Path) -> str | None:
    """Which field of an ``Utterance`` this file fills, judged by its name alone."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix == ".align":
        return "alignment"
    if suffix == ".json" and path.parent.name == "phonemes":
        return "phoneme_timings"
    return None


def read_grid(root: str | Path) -> list[Utterance]:
    """All utterances with a video under ``root``, sorted by speaker and id.

    Raises CorpusError when the root is missing or holds no GRID video (a video outside any ``sN``
    folder is ignored). Files are only located here; their contents are read by preprocessing.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: corpus folder does not exist")
    found: dict[str, dict[tuple[str, str], Path]] = defaultdict(dict)
    for path in sorted(root.rglob("*")):
        kind = _kind_of(path)
        speaker = _speaker_of(path, root) if kind and path.is_file() else None
        if speaker:
            found[kind].setdefault((speaker, path.stem), path)
    if not found["video"]:
        raise CorpusError(f"{root}: no GRID videos found (expected sN/**/*.mpg)")
    return [
        Utterance(
            speaker=speaker,
            utterance=utterance,
            video=video,
            audio=found["audio"].get((speaker, utterance)),
            alignment=found["alignment"].get((speaker, utterance)),
            phoneme_timings=found["phoneme_timings"].get((speaker, utterance)),
        )  # fmt: skip
        for (speaker, utterance), video in sorted(found["video"].items())
    ]
