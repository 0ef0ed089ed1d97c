"""``talking-face export``: a training run -> a shipped checkpoint whose header carries its model card facts.

The card (data, config, command, corpus seed, test metrics, licence) is read from the run itself: the config
LightningCLI resolved and saved for it (every value, whatever files composed it) and the ``test/*`` rows that
``talking-face test`` logged to CSV, so the numbers in the header are the ones measured, never typed in.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal

from talking_face.errors import InputError
from talking_face.generation.checkpoints import export_checkpoint

__all__ = ["export", "run_config", "test_metrics"]


def _newest(log_dir: str | Path, name: str) -> list[Path]:
    return sorted(Path(log_dir).rglob(name), key=lambda p: p.stat().st_mtime, reverse=True)


def run_config(log_dir: str | Path) -> Path:
    """The newest ``config.yaml`` under ``log_dir``: the whole config LightningCLI saved for the run."""
    found = _newest(log_dir, "config.yaml")
    if not found:
        raise InputError(f"{log_dir}: no config.yaml (talking-face fit and test save one beside their logs)")
    return found[0]


def test_metrics(log_dir: str | Path) -> dict[str, float]:
    """The ``test/*`` metrics of the newest CSV log under ``log_dir`` (``talking-face test`` writes them)."""
    for path in _newest(log_dir, "metrics.csv"):
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        found = {
            key: float(value)
            for row in rows
            for key, value in row.items()
            if key and key.startswith("test") and value not in ("", None)
        }
        if found:
            return found
    raise InputError(f"{log_dir}: no metrics.csv with test/* metrics; run `talking-face test` first")


def export(
    checkpoint: str,
    stage: Literal["landmarks", "face2vid"],
    log_dir: str,
    out: str,
    data: str = "built-in corpus: talking-face synth --speakers 12 --utterances 24 --seed 0",
) -> Path:
    """Write ``checkpoint`` as a slim ``stage`` checkpoint with its card in the header, to ``out``.

    Args:
        checkpoint: the training checkpoint (e.g. ``outputs/shipped/face2vid/checkpoints/last.ckpt``).
        stage: ``landmarks`` or ``face2vid``.
        log_dir: the run's log folder: its saved config and its test metrics (CSV) are read from there.
        out: the checkpoint to write (``make checkpoints`` writes the package's ``shipped/<stage>.ckpt``).
        data: what it was trained on.
    """
    from talking_face.generation.checks import check_input_file

    check_input_file("checkpoint", checkpoint)
    config = run_config(log_dir)
    card = {
        "stage": stage,
        "data": data,
        "config": str(config),
        "config_text": config.read_text(),
        "command": "talking-face fit -c config.yaml  # config.yaml: this card's config_text",
        "test_metrics": test_metrics(log_dir),
        "licence": "MIT; trained by the project on its own synthetic corpus (public-domain and MIT photos)",
    }
    target = Path(out)
    export_checkpoint(checkpoint, target, card, stage)
    print(json.dumps({"wrote": str(target), "test_metrics": card["test_metrics"]}, indent=2))
    return target
