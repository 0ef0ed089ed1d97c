"""The `talking-face` command: every config instantiates, tools run, fit works through LightningCLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from talking_face.cli import cli_main, main

CONFIGS = sorted(Path(__file__).parents[1].glob("configs/*.yaml"))
BASES = ("landmarks", "face2vid")


def _composed(config: Path) -> list[str]:
    """A base config alone; any other after the base of its stage, as the README composes them."""
    base = next(stage for stage in BASES if stage in config.stem)
    return ["-c", f"{base}.yaml"] + ([] if config.stem == base else ["-c", str(config)])


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_instantiates(config, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cli = cli_main([*_composed(config), f"--trainer.default_root_dir={tmp_path}"], run=False)
    expected = "LandmarkModule" if "landmarks" in config.stem else "Face2VidModule"
    assert cli.model.__class__.__name__ == expected
    assert cli.datamodule.hparams.stage in config.stem


def test_an_override_config_only_overrides(monkeypatch, tmp_path):
    """The tiny config changes what it names and keeps the base's other values (one source for each)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    base = cli_main(["-c", "face2vid.yaml"], run=False)
    tiny = cli_main(["-c", "face2vid.yaml", "-c", "face2vid_tiny.yaml"], run=False)
    assert (base.model.hparams.image_size, tiny.model.hparams.image_size) == (128, 64)
    assert tiny.model.hparams.num_previous == base.model.hparams.num_previous
    assert tiny.datamodule.hparams.val_utterances == base.datamodule.hparams.val_utterances
    assert [type(logger) for logger in tiny.trainer.loggers] == [CSVLogger]


@pytest.mark.parametrize("config", ["landmarks.yaml", "face2vid.yaml"])
def test_the_config_chooses_the_loggers_wandb_offline_and_a_csv(monkeypatch, tmp_path, config):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    loggers = cli_main(["-c", config, f"--trainer.default_root_dir={tmp_path}"], run=False).trainer.loggers
    assert [type(logger) for logger in loggers] == [WandbLogger, CSVLogger]
    assert loggers[0]._offline  # no account, no network: runs are synced later


def test_fit_through_the_cli_learns_and_logs_media(tiny_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)  # the config's relative outputs/ paths land here
    root = tmp_path / "outputs" / "landmarks_tiny"
    cli_main(
        [
            "fit",
            "-c",
            "landmarks.yaml",
            "-c",
            "landmarks_tiny.yaml",
            f"--data.cache_dir={tiny_cache}",
            "--data.batch_size=2",
            "--trainer.max_epochs=1",
        ]
    )
    assert (root / "checkpoints" / "last.ckpt").is_file()
    media = sorted(root.rglob("media/*"))
    assert {p.suffix for p in media} == {".mp4", ".png"}, media
    metrics = (next(root.rglob("metrics.csv"))).read_text()
    assert "val/lmd_both" in metrics and "val/lmd_mean_mouth" in metrics


def test_tools_are_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["preprocess", "--help"])
    assert exit_info.value.code == 0
    assert "--cache_dir" in capsys.readouterr().out


def test_predict_through_the_cli_runs_the_checkpoint_on_the_held_out_speakers(
    tiny_cache, tmp_path, monkeypatch
):
    import torch
    from generation_media import save_checkpoint

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)  # the config's relative outputs/ paths land here
    config = ["-c", "landmarks.yaml", "-c", "landmarks_tiny.yaml"]
    config += [f"--data.cache_dir={tiny_cache}", "--data.batch_size=2"]
    module = cli_main(config, run=False).model  # the config's model, as the CLI builds it (same seed)
    with torch.no_grad():  # weights that only the checkpoint has
        generator = torch.Generator().manual_seed(1)
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    checkpoint = save_checkpoint(module, tmp_path / "landmarks.ckpt")

    cli = cli_main(["predict", *config, f"--ckpt_path={checkpoint}"])
    predictions = cli.trainer.predict_loop.predictions
    held_out = cli.datamodule.splits["test_speakers"]
    assert sorted(u for p in predictions for u in p["utterance"]) == sorted(r.utterance for r in held_out)
    module.eval()
    with torch.no_grad():
        for index, (batch, predicted) in enumerate(
            zip(cli.datamodule.predict_dataloader(), predictions, strict=True)
        ):
            expected = module.predict_step(batch, index)
            for mode in ("audio", "text", "both"):
                assert predicted[mode].shape == (len(batch["speaker"]), int(batch["lengths"].max()), 20, 2)
                torch.testing.assert_close(predicted[mode], expected[mode])
