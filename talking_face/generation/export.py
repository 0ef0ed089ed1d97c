"""``talking-face export``: a training run -> a shipped checkpoint whose header carries its model card facts.

The card (data, config, command, corpus seed, test metrics, licence) is read from the run itself: the config
file it was trained with and the ``test/*`` rows that ``talking-face test`` logged to CSV, so the numbers in
the header are the ones measured, never typed in.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal

from talking_face.generation.checkpoints import SHIPPED_DIR, export_checkpoint

__all__ = ["export", "test_metrics"]


def test_metrics(log_dir: str | Path) -> dict[str, float]:
    """The ``test/*`` metrics of the newest CSV log under ``log_dir`` (``talking-face test`` writes them)."""
    files = sorted(Path(log_dir).rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
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
    raise FileNotFoundError(f"{log_dir}: no metrics.csv with test/* metrics; run `talking-face test` first")


def export(
    checkpoint: str,
    stage: Literal["landmarks", "face2vid"],
    config_file: str,
    log_dir: str,
    data: str = "built-in corpus: talking-face synth --speakers 12 --utterances 24 --seed 0",
    out: str | None = None,
) -> Path:
    """Write ``checkpoint`` as the shipped ``stage`` checkpoint with its card in the header.

    Args:
        checkpoint: the training checkpoint (e.g. ``outputs/shipped/face2vid/checkpoints/last.ckpt``).
        stage: ``landmarks`` or ``face2vid``.
        config_file: the config the run was trained with (its text is stored).
        log_dir: where the run's test metrics were logged (CSV).
        data: what it was trained on.
        out: target file (default: the package's ``shipped/<stage>.ckpt``).
    """
    card = {
        "stage": stage,
        "data": data,
        "config": config_file,
        "config_text": Path(config_file).read_text(),
        "command": f"talking-face fit -c {config_file}",
        "test_metrics": test_metrics(log_dir),
        "licence": "MIT; trained by the project on its own synthetic corpus (public-domain and MIT photos)",
    }
    target = Path(out) if out else SHIPPED_DIR / f"{stage}.ckpt"
    export_checkpoint(checkpoint, target, card, stage)
    print(json.dumps({"wrote": str(target), "test_metrics": card["test_metrics"]}, indent=2))
    return target
