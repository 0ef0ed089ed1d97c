"""The `talking-face` command: every config instantiates, tools run, fit works through LightningCLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from talking_face.cli import cli_main, main

CONFIGS = sorted(Path(__file__).parents[1].glob("configs/*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_instantiates(config, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cli = cli_main(["-c", str(config), f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.model.__class__.__name__ in {"LandmarkModule", "Face2VidModule"}
    assert cli.datamodule.hparams.stage in {"landmarks", "face2vid"}


def test_wandb_disabled_falls_back_to_csv(monkeypatch, tmp_path):
    config = Path(__file__).parents[1] / "configs" / "landmarks.yaml"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert isinstance(cli_main(["-c", str(config)], run=False).trainer.logger, WandbLogger)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert isinstance(cli_main(["-c", str(config)], run=False).trainer.logger, CSVLogger)


def test_fit_through_the_cli_learns_and_logs_media(tiny_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)  # the config's relative outputs/ paths land here
    root = tmp_path / "outputs" / "landmarks_tiny"
    cli_main(
        [
            "fit",
            "-c",
            str(Path(__file__).parents[1] / "configs" / "landmarks_tiny.yaml"),
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
