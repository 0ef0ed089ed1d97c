"""LandmarkModule: learning, the three input modes from one checkpoint, metrics/logging, inputs, timing."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from landmark_batches import collate, make_batches, make_items
from torch.utils.data import DataLoader

from talking_face.datamodules import timebase
from talking_face.datamodules.datamodule import TEST_SPLITS
from talking_face.datamodules.phonemes import SIL_ID, VOCAB
from talking_face.lightning_modules import LandmarkModule
from talking_face.lightning_modules.landmark_module import (
    EVAL_MODES,
    INPUT_MODES,
    masked_position_loss,
    masked_velocity_loss,
    sample_modes,
)
from talking_face.lightning_modules.metrics import MouthLandmarkDistance
from talking_face.lightning_modules.text_timing import (
    segments_from_frame_ids,
    text_phonemes,
    timing_from_audio,
    timing_from_durations,
    timing_from_tts,
)

SMALL = {"hidden_size": 64, "attention_layers": 1, "duration_hidden_size": 32, "lr": 3e-3}


pytestmark = pytest.mark.usefixtures("one_thread")


def _loader(batches: list[dict], shuffle: bool = False) -> DataLoader:
    return DataLoader(batches, batch_size=None, shuffle=shuffle)


@pytest.fixture(scope="module")
def val_batches() -> list[dict]:
    return make_batches(3, batch_size=8, seed=1)


@pytest.fixture(scope="module")
def trained(make_trainer, val_batches: list[dict]) -> dict:
    """A small module before and after 60 training steps on synthetic batches, with its validation results."""
    L.seed_everything(0)
    train_batches = make_batches(10, batch_size=8, seed=0)
    module = LandmarkModule(**SMALL)
    trainer = make_trainer(max_epochs=6, check_val_every_n_epoch=100)
    before = trainer.validate(module, _loader(val_batches), verbose=False)[0]
    trainer.fit(module, _loader(train_batches, shuffle=True))
    after = trainer.validate(module, _loader(val_batches), verbose=False)[0]
    return {"module": module, "trainer": trainer, "before": before, "after": after, "train": train_batches}


@pytest.mark.slow
def test_training_lowers_the_loss_and_every_mode_beats_the_mean_mouth(trained: dict) -> None:
    before, after = trained["before"], trained["after"]
    assert after["val/loss"] < 0.5 * before["val/loss"]
    # the training-set mean displacement is a stronger baseline than the neutral mouth ...
    assert after["val/lmd_mean_mouth"] < after["val/lmd_reference"]
    # ... and the model beats it clearly in every mode
    for mode in (*INPUT_MODES, "text_durations"):
        assert after[f"val/lmd_{mode}"] < 0.8 * after["val/lmd_mean_mouth"], (mode, after)
    assert after["val/velocity_both"] < after["val/velocity_mean_mouth"]


@pytest.mark.slow
def test_mean_displacement_is_the_training_frames_mean(trained: dict) -> None:
    frames = [
        (b["mouth"] - b["mouth_reference"][:, None])[b["mask"]] for b in trained["train"]
    ]  # each [n, 20, 2]
    expected = torch.cat(frames).mean(dim=0)
    torch.testing.assert_close(trained["module"].mean_displacement, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_every_mode_from_one_checkpoint_after_save_and_load(trained: dict, tmp_path: Path) -> None:
    module, trainer = trained["module"], trained["trainer"]
    path = tmp_path / "landmarks.ckpt"
    trainer.save_checkpoint(path)
    loaded = LandmarkModule.load_from_checkpoint(path)
    assert loaded.hparams == module.hparams
    torch.testing.assert_close(loaded.mean_displacement, module.mean_displacement, rtol=0, atol=0)
    batch = collate(make_items(3, seed=7))
    ref, audio, ids = batch["mouth_reference"], batch["audio_features"], batch["phoneme_ids"]
    tokens = torch.nn.utils.rnn.pad_sequence(
        [row[:n].unique_consecutive() for row, n in zip(ids, batch["lengths"], strict=True)], batch_first=True
    )
    requests = {
        "audio": {"audio_features": audio, "lengths": batch["lengths"]},
        "text": {"phoneme_ids": ids, "lengths": batch["lengths"]},
        "both": {"audio_features": audio, "phoneme_ids": ids, "lengths": batch["lengths"]},
    }
    for mode, inputs in requests.items():
        original = module.predict(mouth_reference=ref, **inputs)
        restored = loaded.predict(mouth_reference=ref, **inputs)
        assert original.mode == restored.mode == mode
        assert original.mouth.shape == (3, ids.shape[1], 20, 2)
        torch.testing.assert_close(restored.mouth, original.mouth, rtol=0, atol=0)
    # text without timing: the duration predictor places the tokens, the same way in both
    original = module.predict(mouth_reference=ref, phoneme_tokens=tokens)
    restored = loaded.predict(mouth_reference=ref, phoneme_tokens=tokens)
    assert original.mode == "text" and torch.equal(original.phoneme_ids, restored.phoneme_ids)
    torch.testing.assert_close(restored.mouth, original.mouth, rtol=0, atol=0)
    # audio + untimed tokens: placed over exactly the audio's frames
    placed = loaded.predict(mouth_reference=ref, audio_features=audio, phoneme_tokens=tokens)
    assert placed.mode == "both" and placed.phoneme_ids.shape == ids.shape
    assert (placed.lengths == ids.shape[1]).all()


@pytest.mark.slow
def test_long_inputs_run_in_cross_faded_windows_without_losing_accuracy(trained: dict) -> None:
    module = trained["module"]
    batch = collate(make_items(3, seed=11, frames_range=(200, 260)))
    inputs = {k: batch[k] for k in ("mouth_reference", "audio_features", "phoneme_ids", "lengths")}
    one_pass = module.predict(**inputs, window_frames=None).mouth
    lmd = MouthLandmarkDistance()
    errors = {}
    for overlap in (0, 30):
        windowed = module.predict(**inputs, window_frames=100, overlap_frames=overlap).mouth
        assert windowed.shape == one_pass.shape
        for row, length in enumerate(batch["lengths"].tolist()):  # rows do not disturb each other
            alone = module.predict(
                mouth_reference=inputs["mouth_reference"][row : row + 1],
                audio_features=inputs["audio_features"][row : row + 1, : 4 * length],
                phoneme_ids=inputs["phoneme_ids"][row : row + 1, :length],
                window_frames=100,
                overlap_frames=overlap,
            ).mouth
            torch.testing.assert_close(windowed[row : row + 1, :length], alone, atol=1e-4, rtol=1e-4)
        lmd.reset()
        lmd.update(windowed, batch["mouth"], batch["mask"], batch["pixels_per_unit"])
        errors[overlap] = lmd.compute().item()
    lmd.reset()
    lmd.update(one_pass, batch["mouth"], batch["mask"], batch["pixels_per_unit"])
    assert errors[30] < 1.15 * lmd.compute().item(), (errors, lmd.compute().item())
    with pytest.raises(ValueError, match="overlap_frames < window_frames"):
        module.predict(**inputs, window_frames=100, overlap_frames=100)


def test_validation_and_test_log_every_mode_and_both_test_splits(
    trained: dict, val_batches: list[dict]
) -> None:
    after = trained["after"]
    for mode in EVAL_MODES:
        assert f"val/lmd_{mode}" in after and f"val/velocity_{mode}" in after
    assert "val/duration_mae_frames" in after
    other = make_batches(2, batch_size=8, seed=5)
    results = trained["trainer"].test(
        trained["module"], [_loader(val_batches), _loader(other)], verbose=False
    )
    assert len(results) == 2
    for split, result in zip(TEST_SPLITS, results, strict=True):
        assert f"{split}/lmd_both" in result and f"{split}/lmd_mean_mouth" in result
    # the first test split on the validation batches reproduces the validation numbers
    utterances, speakers = TEST_SPLITS
    assert results[0][f"{utterances}/lmd_both"] == pytest.approx(after["val/lmd_both"], rel=1e-5)
    assert results[1][f"{speakers}/lmd_both"] != pytest.approx(after["val/lmd_both"], rel=1e-3)


def test_padding_never_changes_losses_or_predictions() -> None:
    torch.manual_seed(0)
    module = LandmarkModule(**SMALL).eval()
    torch.nn.init.normal_(module.net.head[-1].weight, std=0.5)
    items = make_items(2, seed=8)
    tight, loose = collate(items), collate(items, pad_to=80)
    loose["mouth"][~loose["mask"]] = 1e3  # garbage where there is no frame
    with torch.no_grad():
        predictions = [
            module(b["mouth_reference"], b["lengths"], b["audio_features"], b["phoneme_ids"])
            for b in (tight, loose)
        ]
    frames = tight["phoneme_ids"].shape[1]
    torch.testing.assert_close(predictions[1][:, :frames], predictions[0], atol=1e-5, rtol=1e-5)
    for loss in (
        lambda p, b: masked_position_loss(p, b["mouth"], b["mask"], "l1"),
        lambda p, b: masked_position_loss(p, b["mouth"], b["mask"], "l2"),
        lambda p, b: masked_velocity_loss(p, b["mouth"], b["mask"]),
    ):
        assert loss(predictions[1], loose).item() == pytest.approx(
            loss(predictions[0], tight).item(), rel=1e-5
        )


def test_position_and_velocity_losses_known_answers() -> None:
    target = torch.zeros(1, 4, 20, 2)
    mask = torch.tensor([[True, True, True, False]])
    assert masked_position_loss(target + 0.5, target, mask, "l1").item() == pytest.approx(0.5)
    assert masked_position_loss(target + 0.5, target, mask, "l2").item() == pytest.approx(0.25)
    ramp = torch.arange(4.0)[None, :, None, None].expand(1, 4, 20, 2) * 0.1  # moves 0.1 per frame
    assert masked_velocity_loss(ramp, target, mask).item() == pytest.approx(0.1)


def test_modality_dropout_probabilities() -> None:
    torch.manual_seed(0)
    use_audio, use_text = sample_modes(20_000, 0.3, 0.2, torch.device("cpu"))
    assert (use_audio | use_text).all()
    assert (~use_text).float().mean().item() == pytest.approx(0.3, abs=0.02)  # audio only
    assert (~use_audio).float().mean().item() == pytest.approx(0.2, abs=0.02)  # text only
    use_audio, use_text = sample_modes(100, 0.0, 0.0, torch.device("cpu"))
    assert use_audio.all() and use_text.all()
    with pytest.raises(ValueError, match="audio_only_prob \\+ text_only_prob"):
        LandmarkModule(audio_only_prob=0.7, text_only_prob=0.5)


def test_predict_rejects_bad_inputs_with_clear_errors() -> None:
    module = LandmarkModule(**SMALL)
    batch = collate(make_items(1, seed=9))
    ref, audio, ids = batch["mouth_reference"], batch["audio_features"], batch["phoneme_ids"]
    with pytest.raises(ValueError, match="no input modality"):
        module.predict(mouth_reference=ref)
    with pytest.raises(ValueError, match="zero-length audio"):
        module.predict(mouth_reference=ref, audio_features=audio[:, :0])
    with pytest.raises(ValueError, match="empty phoneme sequence"):
        module.predict(mouth_reference=ref, phoneme_tokens=torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty phoneme sequence"):
        module.predict(mouth_reference=ref, phoneme_ids=ids[:, :0])
    with pytest.raises(ValueError, match="audio/phoneme length mismatch"):
        module.predict(mouth_reference=ref, audio_features=audio, phoneme_ids=ids[:, :-3])
    with pytest.raises(ValueError, match="not both"):
        module.predict(mouth_reference=ref, phoneme_ids=ids, phoneme_tokens=ids)
    assert module.training, "predict must restore the training mode it found"


@pytest.mark.parametrize("configs", [["landmarks.yaml"], ["landmarks.yaml", "landmarks_tiny.yaml"]])
def test_config_model_section_builds_a_small_module(configs: list[str]) -> None:
    from talking_face.cli import cli_main

    args = [arg for name in configs for arg in ("-c", name)]
    module = cli_main([*args, "--trainer.logger=false"], run=False).model
    assert isinstance(module, LandmarkModule)
    assert sum(p.numel() for p in module.parameters()) < 5_000_000


@pytest.mark.slow
def test_schedules_warm_up_and_decay(make_trainer) -> None:
    for schedule in ("onecycle", "cosine"):
        module = LandmarkModule(**{**SMALL, "lr_schedule": schedule, "warmup_fraction": 0.1})
        trainer = make_trainer(max_steps=20)
        trainer.fit(module, _loader(make_batches(1, batch_size=2, seed=2)))
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        assert scheduler.get_last_lr()[0] < 0.05 * SMALL["lr"], schedule  # decayed by the end


def test_segments_from_frame_ids_known_answer() -> None:
    segments = segments_from_frame_ids([1, 1, 5, 5, 5, 1])
    assert [(s.label, s.start, s.end) for s in segments] == [
        ("sil", 0.0, 2 / timebase.FPS),
        (VOCAB[5], 2 / timebase.FPS, 5 / timebase.FPS),
        ("sil", 5 / timebase.FPS, 6 / timebase.FPS),
    ]


@pytest.mark.slow
def test_text_only_timing_from_the_duration_predictor(trained: dict) -> None:
    module = trained["module"]  # its predictor learned the synthetic corpus' 2-6 frame phonemes
    text = "bin blue at f two now"
    timing = timing_from_durations(module, text)
    ids = timing.frame_ids()
    assert timing.source == "duration_predictor" and len(ids) == timing.num_frames > 0
    assert ids[0] == ids[-1] == SIL_ID
    assert [s.label for s in timing.phonemes] == text_phonemes(text)  # every phoneme placed, in order
    assert timing_from_durations(module, text, num_frames=90).num_frames == 90
    with pytest.raises(ValueError, match="empty transcript"):
        timing_from_durations(module, "   ")
    prediction = module.predict(
        mouth_reference=torch.zeros(1, 20, 2), phoneme_ids=torch.from_numpy(ids)[None]
    )
    assert prediction.mouth.shape == (1, timing.num_frames, 20, 2)


def test_text_only_timing_from_tts_matches_its_speech() -> None:
    timing, speech = timing_from_tts("bin blue at f two now")
    assert timing.source == "tts"
    assert timing.num_frames == timebase.num_frames_for(round(speech.duration * timebase.SAMPLE_RATE))
    ids = timing.frame_ids()
    assert len(ids) == timing.num_frames and (ids != SIL_ID).mean() > 0.5


def test_audio_and_text_timing_from_the_forced_aligner() -> None:
    import librosa

    text = "bin blue at f two now"
    tts_timing, speech = timing_from_tts(text)
    audio = librosa.resample(speech.audio, orig_sr=speech.sample_rate, target_sr=timebase.SAMPLE_RATE)
    timing = timing_from_audio(audio, timebase.SAMPLE_RATE, text)
    assert timing.source == "forced_aligner" and timing.score is not None
    assert abs(timing.num_frames - tts_timing.num_frames) <= 1
    spoken = [s.label for s in timing.phonemes if s.label != "sil"]
    assert spoken == [p for p in text_phonemes(text) if p != "sil"]
