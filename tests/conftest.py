"""Shared fixtures: a tiny built-in corpus and its cache, made once per test session.

Never the network: the corpus is synthesised offline (real TTS voices, real packaged face photos),
then preprocessed with the real detector, exactly as a user's corpus would be.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")

TINY_SPEAKERS = 3
TINY_UTTERANCES = 3


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from talking_face.datamodules.synthetic.corpus import synthesize_corpus

    return synthesize_corpus(
        tmp_path_factory.mktemp("corpus"), speakers=TINY_SPEAKERS, utterances=TINY_UTTERANCES, progress=False
    )


@pytest.fixture(scope="session")
def tiny_cache(tiny_corpus, tmp_path_factory) -> Path:
    from talking_face.datamodules.preprocess import preprocess_corpus

    cache = tmp_path_factory.mktemp("cache")
    report = preprocess_corpus(tiny_corpus, cache, progress=False)
    assert not report["skipped"], report["skipped"]
    return cache
