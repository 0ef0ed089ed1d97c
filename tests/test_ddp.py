"""Multi-process training through the CLI: two CPU processes (gloo) exactly as on several GPUs.

Run as a subprocess of the real `talking-face` entry point, because DDP re-launches the command
line it was started from.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
STRATEGY = {"landmarks": "ddp", "face2vid": "ddp_find_unused_parameters_true"}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["landmarks", "face2vid"])
def test_two_process_ddp_trains_a_few_steps(stage, tiny_cache, tmp_path):
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "talking_face.cli", "fit", "-c", f"{stage}.yaml", "-c", f"{stage}_tiny.yaml",
        f"--data.cache_dir={tiny_cache}", "--data.batch_size=1", "--trainer.accelerator=cpu",
        "--trainer.devices=2", f"--trainer.strategy={STRATEGY[stage]}", "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert list(tmp_path.rglob("last.ckpt")), "rank zero saved the checkpoint"


def test_plain_ddp_is_refused_for_face2vid_with_the_strategy_that_works(tiny_cache, tmp_path):
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    command = [  # the configs by their names: the ones shipped with the package
        sys.executable, "-m", "talking_face.cli", "fit", "-c", "face2vid.yaml", "-c", "face2vid_tiny.yaml",
        f"--data.cache_dir={tiny_cache}", "--trainer.accelerator=cpu", "--trainer.devices=1",
        "--trainer.strategy=ddp", "--trainer.max_steps=1",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "--trainer.strategy: " in result.stderr and "ddp_find_unused_parameters_true" in result.stderr
    assert "Traceback" not in result.stderr
