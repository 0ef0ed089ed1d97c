"""``talking-face export``: a trained checkpoint and its run's CSV test log -> a slim checkpoint whose header
carries the card with the measured test metrics, and that ``load_stage`` loads with the same weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from generation_media import save_checkpoint
from lightning.pytorch.loggers import CSVLogger

from talking_face.cli import main
from talking_face.generation.checkpoints import load_stage

TEST_METRICS = {"test/lmd_both": 1.25, "test/psnr": 27.5}
CONFIG = "seed_everything: 0\nmodel:\n  class_path: talking_face.lightning_modules.Face2VidModule\n"

pytestmark = pytest.mark.usefixtures("one_thread")


def _log_run(log_dir: Path) -> Path:
    """A log as ``talking-face fit`` then ``test`` leave it: the saved config, validation rows, then the test
    row."""
    logger = CSVLogger(save_dir=str(log_dir), name="logs")
    logger.log_metrics({"val/loss": 0.5, "epoch": 0}, step=10)
    logger.log_metrics(TEST_METRICS, step=20)
    logger.save()
    (Path(logger.log_dir) / "config.yaml").write_text(CONFIG)
    return log_dir


@pytest.fixture(params=["landmarks", "face2vid"])
def trained(request, tiny_landmarks, tiny_face2vid, tmp_path: Path) -> tuple[str, torch.nn.Module, Path]:
    """(stage, module, its checkpoint as ``fit`` saves it) of a tiny model with random weights."""
    stage = request.param
    module = tiny_landmarks(seed=1) if stage == "landmarks" else tiny_face2vid(seed=1)
    return stage, module, save_checkpoint(module, tmp_path / f"{stage}_last.ckpt")


def test_export_writes_a_slim_checkpoint_with_its_card_and_it_loads(trained, tmp_path: Path, capsys) -> None:
    stage, module, checkpoint = trained
    log_dir = _log_run(tmp_path / "run")
    out = tmp_path / "shipped" / f"{stage}.ckpt"  # the folder does not exist yet
    main(["export", "--stage", stage, "--checkpoint", str(checkpoint), "--log_dir", str(log_dir),
          "--out", str(out)])  # fmt: skip
    assert str(out) in capsys.readouterr().out

    exported = torch.load(out, map_location="cpu", weights_only=False)
    header = exported["talking_face"]
    assert header["stage"] == stage
    card = header["card"]
    assert card["test_metrics"] == TEST_METRICS  # the logged test row, not the validation row
    assert card["config_text"] == CONFIG and card["config"].startswith(str(log_dir))
    assert "licence" in card and "data" in card
    training_state = set(torch.load(checkpoint, map_location="cpu", weights_only=False)) - set(exported)
    assert {"optimizer_states", "loops", "callbacks"} <= training_state  # slim: weights and card only

    loaded = load_stage(out, stage)
    expected = module.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in expected.items())


def test_export_refuses_a_run_without_test_metrics_and_the_wrong_stage(trained, tmp_path, capsys) -> None:
    stage, _, checkpoint = trained
    untested = tmp_path / "untested"
    logger = CSVLogger(save_dir=str(untested), name="logs")
    logger.log_metrics({"val/loss": 0.5}, step=10)
    logger.save()
    out = tmp_path / "out.ckpt"
    common = ["--checkpoint", str(checkpoint), "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--stage", stage, "--log_dir", str(untested), *common])
    assert exit_info.value.code == 1 and "no config.yaml" in capsys.readouterr().err
    (Path(logger.log_dir) / "config.yaml").write_text(CONFIG)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--stage", stage, "--log_dir", str(untested), *common])
    assert exit_info.value.code == 1 and "run `talking-face test` first" in capsys.readouterr().err

    other = "face2vid" if stage == "landmarks" else "landmarks"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--stage", other, "--log_dir", str(_log_run(tmp_path / "run")), *common])
    assert exit_info.value.code == 1 and f"is a {stage} checkpoint, not {other}" in capsys.readouterr().err
    assert not out.exists()
