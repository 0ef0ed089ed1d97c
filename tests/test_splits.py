from dataclasses import dataclass

import pytest

from talking_face.datamodules.splits import split_records


@dataclass(frozen=True)
class FakeRecord:
    speaker: str
    utterance: str


def _records(speakers: int = 4, utterances: int = 10) -> list[FakeRecord]:
    return [FakeRecord(f"s{s}", f"u{u:02d}") for s in range(speakers) for u in range(utterances)]


def test_every_record_lands_in_exactly_one_split():
    splits = split_records(_records(), 0.1, 0.2, test_speakers=1, seed=3)
    keys = [(r.speaker, r.utterance) for split in splits.values() for r in split]
    assert sorted(keys) == sorted((r.speaker, r.utterance) for r in _records())
    assert len({r.speaker for r in splits["test_speakers"]}) == 1
    held_out = splits["test_speakers"][0].speaker
    assert all(r.speaker != held_out for name in ("train", "val", "test") for r in splits[name])
    assert len(splits["val"]) == 3 and len(splits["test"]) == 6


def test_split_is_seeded_and_independent_of_listing_order():
    records = _records()
    first = split_records(records, test_speakers=1, seed=7)
    again = split_records(list(reversed(records)), test_speakers=1, seed=7)
    other = split_records(records, test_speakers=1, seed=8)
    assert {k: sorted(map(str, v)) for k, v in first.items()} == {
        k: sorted(map(str, v)) for k, v in again.items()
    }
    assert first != other


def test_named_speakers_and_bad_requests():
    splits = split_records(_records(), test_speakers=["s2"])
    assert {r.speaker for r in splits["test_speakers"]} == {"s2"}
    with pytest.raises(ValueError, match="not in the cache"):
        split_records(_records(), test_speakers=["s9"])
    with pytest.raises(ValueError, match="cannot hold out 4 of 4"):
        split_records(_records(), test_speakers=4)


def test_speakers_with_few_utterances_train_on_all():
    splits = split_records(_records(speakers=2, utterances=2), test_speakers=0)
    assert len(splits["train"]) == 4 and not splits["val"] and not splits["test"]
