"""Shared fixtures: a tiny built-in corpus and its cache (made once per test session), tiny models, a quiet
CPU trainer and one torch thread.

Never the network: the corpus is synthesised offline (real TTS voices, real packaged face photos),
then preprocessed with the real detector, exactly as a user's corpus would be.

A test that needs the corpus or the cache is marked ``slow`` here (making them takes minutes on 2 cores), so
``pytest -m "not slow"`` (``make test-fast``) leaves it out; ``make test`` runs everything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")

TINY_SPEAKERS = 3
TINY_UTTERANCES = 3
CORPUS_FIXTURES = {"tiny_corpus", "tiny_cache"}
"""Session fixtures that synthesise or preprocess a corpus: a test that uses one is slow."""

TINY_FACE2VID = {"image_size": 64, "channels": 8, "bottleneck_blocks": 1, "discriminator_channels": 8,
                 "discriminator_layers": 2}  # fmt: skip
"""A Face2Vid small enough to train a step or render a few seconds in a moment on one core."""
TINY_LANDMARKS = {"hidden_size": 32, "attention_layers": 1, "duration_hidden_size": 16, "dropout": 0.0}
"""A LandmarkModule small enough to train in seconds."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CORPUS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread for a test module, then restored (``pytestmark =
    pytest.mark.usefixtures("one_thread")``).

    Small models gain nothing from more threads, and on a busy 2-core machine two threads spin-wait on each
    other (measured here under load: 0.45 s a training step with 2 threads against 0.10 s with 1, and 3 s of
    speech inferred in 0.27 s against 0.007 s).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def make_trainer() -> Callable[..., object]:
    """``make_trainer(**options)``: a quiet one-CPU ``L.Trainer`` (no logger, checkpoints, progress bar,
    summary or sanity check) with ``options`` on top."""
    import lightning as L

    quiet = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return lambda **options: L.Trainer(**(quiet | options))


@pytest.fixture(scope="session")
def tiny_face2vid() -> Callable[..., object]:
    """``tiny_face2vid(seed=None, **overrides)``: a fresh ``Face2VidModule`` of ``TINY_FACE2VID`` (random
    weights, from ``torch.manual_seed(seed)`` when a seed is given)."""

    def make(seed: int | None = None, **overrides):
        import torch

        from talking_face.lightning_modules import Face2VidModule

        if seed is not None:
            torch.manual_seed(seed)
        return Face2VidModule(**(TINY_FACE2VID | overrides))

    return make


@pytest.fixture(scope="session")
def tiny_landmarks() -> Callable[..., object]:
    """``tiny_landmarks(seed=0, **overrides)``: a fresh ``LandmarkModule`` of ``TINY_LANDMARKS``."""

    def make(seed: int | None = 0, **overrides):
        import torch

        from talking_face.lightning_modules import LandmarkModule

        if seed is not None:
            torch.manual_seed(seed)
        return LandmarkModule(**(TINY_LANDMARKS | overrides))

    return make
