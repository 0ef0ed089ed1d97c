"""Recognition-like phone errors for training the text branch: lengths, padding, silences and rates."""

from __future__ import annotations

import torch

from talking_face.datamodules.phonemes import PAD_ID, SIL_ID, phoneme_id
from talking_face.lightning_modules.phone_noise import corrupt_phonemes


def _frames(labels: list[str], frames_each: int = 4) -> torch.Tensor:
    return torch.tensor([phoneme_id(label) for label in labels]).repeat_interleave(frames_each)


def _batch(repeats: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    row = _frames(["sil", "B", "AA", "T", "M", "IY", "sil", "P", "AE", "N", "sil"])
    ids = torch.full((repeats, len(row) + 5), PAD_ID)
    ids[:, : len(row)] = row
    return ids, torch.full((repeats,), len(row))


def test_nothing_changes_at_zero_rates():
    ids, lengths = _batch(3)
    out = corrupt_phonemes(ids, lengths, substitution=0.0, deletion=0.0, jitter=0)
    assert torch.equal(out, ids)


def test_errors_come_at_the_asked_rates_and_keep_lengths_padding_and_silences():
    ids, lengths = _batch()
    generator = torch.Generator().manual_seed(0)
    out = corrupt_phonemes(ids, lengths, substitution=0.2, deletion=0.1, jitter=2, generator=generator)
    n = int(lengths[0])
    assert out.shape == ids.shape and torch.equal(out[:, n:], ids[:, n:])  # padding untouched
    assert (out[:, :n] != PAD_ID).all()
    assert (out[:, 0] == SIL_ID).all() and (out[:, n - 1] == SIL_ID).all()  # silences are never replaced
    changed = (out[:, :n] != ids[:, :n]).float().mean()
    assert 0.1 < changed < 0.5, changed  # phones are 8 of 11 tokens: about 0.2 + 0.1 of them, plus jitter
    no_jitter = corrupt_phonemes(ids, lengths, 0.2, 0.1, 0, torch.Generator().manual_seed(0))
    runs = [torch.unique_consecutive(row[:n]) for row in no_jitter]
    deleted = 1 - sum(len(r) for r in runs) / (len(runs) * 11)
    assert 0.03 < deleted < 0.15, deleted  # about 0.1 x 8 / 11, a little less where neighbours merge


def test_jitter_moves_boundaries_by_at_most_its_width():
    ids, lengths = _batch(50)
    out = corrupt_phonemes(ids, lengths, 0.0, 0.0, jitter=1, generator=torch.Generator().manual_seed(1))
    n = int(lengths[0])
    assert not torch.equal(out, ids)
    for row in out:
        tokens, counts = torch.unique_consecutive(row[:n], return_counts=True)
        assert torch.equal(tokens, torch.unique_consecutive(ids[0, :n]))  # same phones, in order
        assert counts.min() >= 2 and counts.max() <= 6  # 4 frames each, every boundary +-1


def test_training_feeds_corrupted_phones_to_samples_with_both_inputs(monkeypatch):
    import lightning as L
    from landmark_batches import make_batches

    from talking_face.lightning_modules import LandmarkModule, landmark_module

    seen = []

    def recording(ids, lengths, *rates):
        seen.append(rates)
        return torch.full_like(ids, SIL_ID)  # unmistakable: every phone silenced

    monkeypatch.setattr(landmark_module, "corrupt_phonemes", recording)
    module = LandmarkModule(hidden_size=32, attention_layers=1, duration_hidden_size=16, text_noise_prob=1.0)
    given = []
    forward = module.forward
    monkeypatch.setattr(module, "forward", lambda *a, **k: given.append(a[3]) or forward(*a, **k))
    batch = make_batches(1, batch_size=8, seed=0)[0]
    L.seed_everything(0)
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss) and seen == [(0.07, 0.04, 2)]
    silenced = (given[0] == SIL_ID).all(dim=1)
    assert silenced.any()  # the corrupted rows reached the network...
    assert not torch.equal(given[0], batch["phoneme_ids"])
    quiet = LandmarkModule(hidden_size=32, attention_layers=1, duration_hidden_size=16)
    assert quiet.hparams.text_noise_prob == 0.0  # ...and the default leaves training as it was
