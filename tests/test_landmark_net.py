"""Stage-1 networks: shapes, padding invariance, modality handling, durations, input errors."""

from __future__ import annotations

import time

import pytest
import torch
from landmark_batches import make_batches, single_thread

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_features import LOG_FLOOR
from talking_face.datamodules.phonemes import SIL_ID, VOCAB
from talking_face.lightning_modules.networks.landmark_net import (
    DurationPredictor,
    LandmarkNet,
    augment_log_mel,
    length_regulate,
    lengths_to_mask,
    normalise_log_mel,
    run_length_encode,
    run_progress,
)


@pytest.fixture(scope="module")
def batch() -> dict:
    return make_batches(1, batch_size=4, seed=3)[0]


@pytest.fixture(scope="module")
def net() -> LandmarkNet:
    """A small net with a random (not zero) output head, so every input reaches the output."""
    torch.manual_seed(0)
    model = LandmarkNet(hidden_size=32, attention_layers=1, attention_heads=2)
    torch.nn.init.normal_(model.head[-1].weight, std=0.5)
    return model.eval()


def _inputs(batch: dict) -> dict:
    return {
        "mouth_reference": batch["mouth_reference"],
        "lengths": batch["lengths"],
        "audio_features": batch["audio_features"],
        "phoneme_ids": batch["phoneme_ids"],
    }


def test_untrained_net_predicts_the_neutral_mouth(batch: dict) -> None:
    mouth = LandmarkNet(hidden_size=32, attention_heads=2)(**_inputs(batch))
    frames = batch["phoneme_ids"].shape[1]
    assert mouth.shape == (4, frames, 20, 2)
    torch.testing.assert_close(mouth, batch["mouth_reference"][:, None].expand_as(mouth))


@pytest.mark.parametrize("modes", [("audio_features",), ("phoneme_ids",), ("audio_features", "phoneme_ids")])
def test_padding_never_changes_real_frames(net: LandmarkNet, batch: dict, modes: tuple[str, ...]) -> None:
    inputs = {k: v for k, v in _inputs(batch).items() if k in modes or k in ("mouth_reference", "lengths")}
    with torch.no_grad():
        batched = net(**inputs)
        for row, length in enumerate(batch["lengths"].tolist()):
            alone = {
                "mouth_reference": batch["mouth_reference"][row : row + 1],
                "lengths": batch["lengths"][row : row + 1],
            }
            if "audio_features" in modes:
                alone["audio_features"] = batch["audio_features"][
                    row : row + 1, : length * timebase.STEPS_PER_FRAME
                ]
            if "phoneme_ids" in modes:
                alone["phoneme_ids"] = batch["phoneme_ids"][row : row + 1, :length]
            torch.testing.assert_close(net(**alone)[0], batched[row, :length], atol=1e-4, rtol=1e-4)
            # beyond the length the output is the neutral mouth
            torch.testing.assert_close(
                batched[row, length:], batch["mouth_reference"][row].expand_as(batched[row, length:])
            )


def test_garbage_in_padding_is_ignored(net: LandmarkNet, batch: dict) -> None:
    dirty = _inputs(batch)
    mask = lengths_to_mask(batch["lengths"], batch["phoneme_ids"].shape[1])
    dirty["audio_features"] = torch.where(
        mask.repeat_interleave(timebase.STEPS_PER_FRAME, 1)[..., None], batch["audio_features"], 50.0
    )
    dirty["phoneme_ids"] = torch.where(mask, batch["phoneme_ids"], 7)
    with torch.no_grad():
        clean_out, dirty_out = net(**_inputs(batch)), net(**dirty)
    torch.testing.assert_close(clean_out[mask], dirty_out[mask])


def test_each_modality_changes_the_output_and_dropout_equals_absence(net: LandmarkNet, batch: dict) -> None:
    ref, lengths = batch["mouth_reference"], batch["lengths"]
    audio, ids = batch["audio_features"], batch["phoneme_ids"]
    with torch.no_grad():
        both = net(ref, lengths, audio, ids)
        audio_only = net(ref, lengths, audio_features=audio)
        text_only = net(ref, lengths, phoneme_ids=ids)
        assert not torch.allclose(both, audio_only) and not torch.allclose(both, text_only)
        # per-sample modality dropout gives exactly what a missing modality gives
        use_audio = torch.tensor([True, False, True, True])
        use_text = torch.tensor([False, True, True, True])
        mixed = net(ref, lengths, audio, ids, use_audio, use_text)
    torch.testing.assert_close(mixed[0], audio_only[0])
    torch.testing.assert_close(mixed[1], text_only[1])
    torch.testing.assert_close(mixed[2:], both[2:])


def test_bad_inputs_raise_clear_errors(net: LandmarkNet, batch: dict) -> None:
    ref, lengths = batch["mouth_reference"], batch["lengths"]
    audio, ids = batch["audio_features"], batch["phoneme_ids"]
    cases = [
        ({}, "no input modality"),
        ({"audio_features": audio[:, :0]}, "zero-length audio"),
        ({"audio_features": audio[:, :-1]}, "not a multiple of 4"),
        ({"audio_features": audio, "phoneme_ids": ids[:, :-1]}, "audio/phoneme length mismatch"),
        ({"phoneme_ids": ids[:, :0]}, "empty phoneme sequence"),
        ({"phoneme_ids": ids.float()}, "must be integer ids"),
        ({"phoneme_ids": ids + len(VOCAB)}, "phoneme ids must lie in"),
        ({"audio_features": audio[..., :40]}, r"audio_features must be \[B=4, 4T, 80\]"),
        ({"audio_features": torch.full_like(audio, float("nan"))}, "NaN"),
    ]
    for extra, message in cases:
        with pytest.raises(ValueError, match=message):
            net(ref, lengths, **extra)
    with pytest.raises(ValueError, match=r"mouth_reference must be \[B, 20, 2\]"):
        net(ref[:, :10], lengths, phoneme_ids=ids)
    with pytest.raises(ValueError, match="exceed"):
        net(ref, lengths + ids.shape[1], phoneme_ids=ids)
    with pytest.raises(ValueError, match="at least one frame"):
        net(ref, torch.zeros_like(lengths), phoneme_ids=ids)


def test_run_progress_known_answer() -> None:
    features = run_progress(torch.tensor([[5, 5, 5, 2, 0]]))
    torch.testing.assert_close(features[0, :4, 0], torch.tensor([1 / 6, 3 / 6, 5 / 6, 0.5]))
    torch.testing.assert_close(features[0, :4, 1].exp(), torch.tensor([3.0, 3.0, 3.0, 1.0]))


def test_run_length_encoding_and_length_regulation_invert_each_other(batch: dict) -> None:
    tokens, durations, token_lengths = run_length_encode(batch["phoneme_ids"], batch["lengths"])
    assert (durations.sum(1) == batch["lengths"]).all()
    assert (tokens[:, 0] == SIL_ID).all()  # the synthetic utterances start in silence
    frame_ids, lengths = length_regulate(tokens, durations, token_lengths)
    assert torch.equal(lengths, batch["lengths"])
    assert torch.equal(frame_ids, batch["phoneme_ids"][:, : frame_ids.shape[1]])


def test_length_regulate_rescales_and_keeps_the_total() -> None:
    tokens = torch.tensor([[1, 4, 9, 1], [3, 6, 0, 0]])
    durations = torch.tensor([[1.4, 1.4, 1.4, 1.8], [2.5, 2.5, 0.0, 0.0]])
    frame_ids, lengths = length_regulate(tokens, durations, torch.tensor([4, 2]))
    assert lengths.tolist() == [6, 5]  # round(6.0), round(5.0): cumulative rounding keeps the total
    assert frame_ids[0].tolist() == [1, 4, 4, 9, 1, 1] and frame_ids[1].tolist() == [3, 3, 6, 6, 6, 0]
    frame_ids, lengths = length_regulate(
        tokens, durations, torch.tensor([4, 2]), num_frames=torch.tensor([12, 3])
    )
    assert lengths.tolist() == [12, 3]
    assert frame_ids[0, :12].unique_consecutive().tolist() == [1, 4, 9, 1]
    with pytest.raises(ValueError, match="empty phoneme sequence"):
        length_regulate(tokens, durations, torch.tensor([4, 0]))


def test_duration_predictor_shapes_masks_and_errors() -> None:
    torch.manual_seed(0)
    predictor = DurationPredictor(hidden_size=16, blocks=2).eval()
    tokens = torch.tensor([[1, 5, 7, 1], [1, 9, 1, 0]])
    lengths = torch.tensor([4, 3])
    with torch.no_grad():
        frames = predictor.frames(tokens, lengths)
        alone = predictor.frames(tokens[1:, :3], lengths[1:])
    assert frames.shape == (2, 4) and (frames >= 0).all() and frames[1, 3] == 0
    torch.testing.assert_close(frames[1, :3], alone[0])
    with pytest.raises(ValueError, match="empty phoneme sequence"):
        predictor(tokens[:, :0], torch.tensor([0, 0]))


def test_normalisation_removes_recording_level_and_ignores_padding() -> None:
    features = torch.randn(2, 16, 80)
    mask = torch.tensor([[True] * 16, [True] * 10 + [False] * 6])
    louder = features + 3.0  # +13 dB: the same speech, recorded louder
    louder[1, 10:] = 99.0
    torch.testing.assert_close(
        normalise_log_mel(features, mask), normalise_log_mel(louder, mask), atol=1e-5, rtol=1e-5
    )
    assert (normalise_log_mel(louder, mask)[1, 10:] == 0).all()


def test_augmentation_without_gain_colour_or_noise_is_the_identity() -> None:
    torch.manual_seed(0)
    features = torch.log(torch.rand(2, 12, 80) + 0.1)
    mask = torch.tensor([[True] * 12, [True] * 8 + [False] * 4])
    same = augment_log_mel(features, mask, gain_db=0.0, snr_db_range=(200.0, 200.0), tilt=0.0)
    torch.testing.assert_close(same[mask], features[mask], atol=1e-4, rtol=1e-4)
    noisy = augment_log_mel(features, mask)
    assert (
        torch.isfinite(noisy).all()
        and (noisy[1, 8:] == 0).all()
        and not torch.allclose(noisy[mask], features[mask])
    )
    silence = torch.full((1, 8, 80), float(torch.log(torch.tensor(LOG_FLOOR))))
    speech = torch.cat([features[:1, :8], silence], dim=1)
    floor = augment_log_mel(speech, torch.ones(1, 16, dtype=torch.bool), snr_db_range=(20.0, 20.0))
    assert floor[0, 8:].mean() > silence.mean() + 1.0  # digital silence gets a noise floor


def test_default_net_is_small_and_far_faster_than_real_time() -> None:
    net = LandmarkNet().eval()
    assert sum(p.numel() for p in net.parameters()) < 5_000_000
    frames = 3 * timebase.FPS  # a 3-second utterance
    inputs = {
        "mouth_reference": torch.zeros(1, 20, 2),
        "lengths": torch.tensor([frames]),
        "audio_features": torch.randn(1, frames * timebase.STEPS_PER_FRAME, 80),
        "phoneme_ids": torch.randint(1, len(VOCAB), (1, frames)),
    }
    with torch.inference_mode(), single_thread():
        net(**inputs)
        start = time.perf_counter()
        net(**inputs)
        elapsed = time.perf_counter() - start
    assert elapsed < 0.3, f"3 s of speech took {elapsed:.3f} s (must be > 10x real time)"
