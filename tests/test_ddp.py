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


@pytest.mark.slow
@pytest.mark.parametrize("config", ["landmarks_tiny", "face2vid_tiny"])
def test_two_process_ddp_trains_a_few_steps(config, tiny_cache, tmp_path):
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "talking_face.cli", "fit", "-c", str(ROOT / "configs" / f"{config}.yaml"),
        f"--data.cache_dir={tiny_cache}", "--data.batch_size=1", "--trainer.accelerator=cpu",
        "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert list(tmp_path.rglob("last.ckpt")), "rank zero saved the checkpoint"
