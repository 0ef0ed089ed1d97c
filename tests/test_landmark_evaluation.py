"""Honest stage-1 evaluation: honest modes never read the cached timings; the aligner runs on real records."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from landmark_batches import make_items, single_thread

from talking_face.datamodules.datasets import LandmarkSequenceDataset
from talking_face.datamodules.phonemes import PAD_ID, SIL_ID, VOCAB, phoneme_id
from talking_face.lightning_modules import LandmarkModule
from talking_face.lightning_modules.landmark_evaluation import (
    BASELINES,
    HONEST_MODES,
    ORACLE_MODES,
    TextInputs,
    evaluate_records,
    honest_batch,
    predict_honest,
    text_inputs,
)
from talking_face.lightning_modules.text_timing import text_phonemes

ALL_MODES = (*HONEST_MODES, *ORACLE_MODES, *BASELINES)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(scope="module")
def module() -> LandmarkModule:
    """A small module whose outputs depend on its inputs (a fresh one predicts the neutral mouth only)."""
    torch.manual_seed(0)
    module = LandmarkModule(hidden_size=32, attention_layers=1, duration_hidden_size=16, dropout=0.0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
        module.mean_displacement.normal_(0.0, 0.01)
    return module.eval()


def _items(count: int, seed: int, frames_range: tuple[int, int] = (20, 60)) -> list[dict]:
    """Synthetic dataset items with the names ``collate_sequences`` carries."""
    items = make_items(count, seed, frames_range)
    return [
        item | {"speaker": "s1", "utterance": f"u{i}", "text": "bin blue"} for i, item in enumerate(items)
    ]


def _inputs(items: list[dict], aligned: list[bool]) -> list[TextInputs]:
    """Text inputs unlike the cached timings: every frame aligned to one shifted phoneme, 5 tokens."""
    out = []
    for item, ok in zip(items, aligned, strict=True):
        frames = len(item["phoneme_ids"])
        ids = np.roll(item["phoneme_ids"].numpy(), 3) if ok else None
        tokens = np.array([SIL_ID, 5, 9, 12, SIL_ID], dtype=np.int64)
        out.append(TextInputs(tokens, ids if ids is None else ids[:frames], 1.0 if ok else None))
    return out


def test_honest_batch_pads_tokens_and_alignments() -> None:
    items = _items(3, seed=2, frames_range=(20, 40))
    inputs = _inputs(items, [True, False, True])
    inputs[2] = TextInputs(np.array([SIL_ID, 7, SIL_ID]), inputs[2].aligned_ids, 1.0)
    batch = honest_batch(items, inputs)
    frames = batch["phoneme_ids"].shape[1]
    assert batch["text_tokens"].shape == (3, 5)
    assert batch["token_lengths"].tolist() == [5, 5, 3]
    assert (batch["text_tokens"][2, 3:] == PAD_ID).all()
    assert batch["aligned_ids"].shape == (3, frames)
    assert batch["aligned"].tolist() == [True, False, True]
    assert (batch["aligned_ids"][1] == PAD_ID).all()
    for row, length in enumerate(batch["lengths"].tolist()):
        assert (batch["aligned_ids"][row, length:] == PAD_ID).all()
    assert torch.equal(
        batch["aligned_ids"][0, : batch["lengths"][0]], torch.from_numpy(inputs[0].aligned_ids)
    )


def test_honest_batch_rejects_mismatched_inputs() -> None:
    items = _items(2, seed=3)
    inputs = _inputs(items, [True, True])
    with pytest.raises(ValueError, match="2 items but 1 text inputs"):
        honest_batch(items, inputs[:1])
    short = TextInputs(inputs[0].tokens, inputs[0].aligned_ids[:-1], 1.0)
    with pytest.raises(ValueError, match="aligned frames"):
        honest_batch(items, [short, inputs[1]])


def test_honest_modes_never_read_the_cached_timings(module: LandmarkModule) -> None:
    items = _items(4, seed=4)
    batch = honest_batch(items, _inputs(items, [True] * 4))
    preds = predict_honest(module, batch)
    assert set(preds) == set(ALL_MODES)
    for pred in preds.values():
        assert pred.shape == batch["mouth"].shape
    scrambled = dict(
        batch, phoneme_ids=torch.where(batch["mask"], torch.full_like(batch["phoneme_ids"], 7), 0)
    )
    again = predict_honest(module, scrambled)
    for mode in HONEST_MODES:
        torch.testing.assert_close(again[mode], preds[mode], msg=f"{mode} read the cached phoneme_ids")
    for mode in ORACLE_MODES:
        assert not torch.allclose(again[mode], preds[mode]), f"{mode} ignored the cached phoneme_ids"


def test_each_mode_is_the_documented_call_of_predict(module: LandmarkModule) -> None:
    items = _items(3, seed=5)
    batch = honest_batch(items, _inputs(items, [True] * 3))
    preds = predict_honest(module, batch)
    common = {"mouth_reference": batch["mouth_reference"], "lengths": batch["lengths"]}
    tokens = {"phoneme_tokens": batch["text_tokens"], "token_lengths": batch["token_lengths"]}
    features = batch["audio_features"]
    expected = {
        "audio": module.predict(**common, audio_features=features),
        "text": module.predict(**common, **tokens),
        "both": module.predict(**common, audio_features=features, phoneme_ids=batch["aligned_ids"]),
        "both_durations": module.predict(**common, audio_features=features, **tokens),
        "text_oracle": module.predict(**common, phoneme_ids=batch["phoneme_ids"]),
    }
    for mode, prediction in expected.items():
        torch.testing.assert_close(preds[mode], prediction.mouth, msg=mode)
    reference = batch["mouth_reference"][:, None]
    torch.testing.assert_close(preds["reference"], reference.expand_as(preds["reference"]))
    torch.testing.assert_close(
        preds["mean_mouth"] - preds["reference"], module.mean_displacement.expand_as(preds["reference"])
    )


def test_both_falls_back_to_audio_where_the_aligner_failed(module: LandmarkModule) -> None:
    items = _items(3, seed=6)
    batch = honest_batch(items, _inputs(items, [True, False, True]))
    preds = predict_honest(module, batch, ["both"])
    audio = predict_honest(module, batch, ["audio"])["audio"]
    torch.testing.assert_close(preds["both"][1], audio[1])
    assert not torch.allclose(preds["both"][0], audio[0])


def test_unknown_modes_are_rejected(module: LandmarkModule) -> None:
    items = _items(1, seed=7)
    with pytest.raises(ValueError, match="unknown modes"):
        predict_honest(module, honest_batch(items, _inputs(items, [True])), ["video"])


@pytest.mark.slow
def test_on_cached_records_the_aligner_finds_the_speech_and_metrics_have_known_answers(
    tiny_cache, module: LandmarkModule
) -> None:
    from talking_face.datamodules.cache import load_manifest

    records = load_manifest(tiny_cache)[:3]
    inputs = [text_inputs(record) for record in records]
    for record, x in zip(records, inputs, strict=True):
        labels = text_phonemes(record.meta["text"])
        assert [VOCAB[i] for i in x.tokens] == labels
        assert x.tokens.tolist() == [phoneme_id(label) for label in labels]
        assert x.aligned_ids is not None and len(x.aligned_ids) == record.num_frames
        assert x.align_score > 0.5
        # the aligner never saw the TTS timings, yet lands on the same phoneme in most frames
        cached = np.asarray(record.array("phoneme_ids"))
        assert (x.aligned_ids == cached).mean() > 0.6

    results = evaluate_records(module, records, inputs, batch_size=2)
    assert set(results) == set(ALL_MODES)
    dataset = LandmarkSequenceDataset(records)
    distances, speeds = [], []
    for i in range(len(records)):
        item = dataset[i]
        mouth, reference = item["mouth"].numpy(), item["mouth_reference"].numpy()
        scale = float(item["pixels_per_unit"])
        distances.append(np.linalg.norm(mouth - reference, axis=-1).mean(axis=-1) * scale)
        speeds.append(np.linalg.norm(np.diff(mouth, axis=0), axis=-1).mean(axis=-1) * scale)
    assert results["reference"]["lmd"] == pytest.approx(np.concatenate(distances).mean(), rel=1e-4)
    assert results["reference"]["velocity"] == pytest.approx(np.concatenate(speeds).mean(), rel=1e-4)
    for mode in ALL_MODES:
        assert np.isfinite(results[mode]["lmd"]) and results[mode]["lmd"] > 0
