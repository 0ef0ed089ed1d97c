"""Corpus readers: each turns a folder on disk into a list of ``Utterance``s for preprocessing."""

from __future__ import annotations

from pathlib import Path

from talking_face.datamodules.corpora.folder import read_folder
from talking_face.datamodules.corpora.grid import read_grid
from talking_face.datamodules.corpora.utterance import CorpusError, Utterance

__all__ = ["CorpusError", "Utterance", "read_corpus", "read_folder", "read_grid"]


def read_corpus(root: str | Path, layout: str = "auto") -> list[Utterance]:
    """Read a corpus as ``grid``, ``folder``, or ``auto`` (GRID when speaker folders ``sN`` exist)."""
    if layout not in {"auto", "grid", "folder"}:
        raise CorpusError(f"unknown corpus layout {layout!r}: use auto, grid or folder")
    if layout == "grid":
        return read_grid(root)
    if layout == "folder":
        return read_folder(root)
    try:
        return read_grid(root)
    except CorpusError:
        return read_folder(root)
