"""Seeded train / val / test splits by speaker and by utterance.

- ``test_speakers`` are held out entirely (a list of names, or a number drawn with the seed): they
  measure how a model does on people it never saw.
- Every other speaker's utterances are shuffled with the seed and a per-speaker stream, and fractions
  go to val and test (at least one each once a speaker has 3 or more utterances): they measure new
  sentences of known people.
The split depends only on the seed and the names, never on the order records were listed in.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from talking_face.datamodules.cache import CachedUtterance

SPLITS = ("train", "val", "test", "test_speakers")


def split_records(
    records: Sequence[CachedUtterance],
    val_utterances: float = 0.1,
    test_utterances: float = 0.1,
    test_speakers: Sequence[str] | int = 1,
    seed: int = 0,
) -> dict[str, list[CachedUtterance]]:
    """Assign every record to one of ``SPLITS``."""
    by_speaker: dict[str, list[CachedUtterance]] = defaultdict(list)
    for record in records:
        by_speaker[record.speaker].append(record)
    speakers = sorted(by_speaker)
    if isinstance(test_speakers, int):
        if not 0 <= test_speakers < len(speakers):
            raise ValueError(f"cannot hold out {test_speakers} of {len(speakers)} speakers and still train")
        held_out = set(np.random.default_rng(seed).permutation(speakers)[:test_speakers].tolist())
    else:
        unknown = set(test_speakers) - set(speakers)
        if unknown:
            raise ValueError(f"test_speakers {sorted(unknown)} are not in the cache (it has {speakers})")
        held_out = set(test_speakers)
    splits: dict[str, list[CachedUtterance]] = {name: [] for name in SPLITS}
    for speaker in speakers:
        utterances = sorted(by_speaker[speaker], key=lambda r: r.utterance)
        if speaker in held_out:
            splits["test_speakers"].extend(utterances)
            continue
        rng = np.random.default_rng([seed, zlib.crc32(speaker.encode())])
        order = [utterances[i] for i in rng.permutation(len(utterances))]
        count = len(order)
        n_val = max(1, round(val_utterances * count)) if count >= 3 and val_utterances > 0 else 0
        n_test = max(1, round(test_utterances * count)) if count >= 3 and test_utterances > 0 else 0
        splits["val"].extend(order[:n_val])
        splits["test"].extend(order[n_val : n_val + n_test])
        splits["train"].extend(order[n_val + n_test :])
    return splits
