"""Checkpoints for generation: the small ones that ship with the package, and loading any with a clear error.

A Lightning checkpoint of either stage loads here (what ``talking-face fit`` writes, or a shipped one).
``export_checkpoint`` turns a training checkpoint into a shipped one: weights and hyperparameters only (no
optimiser state, so it is a few MB), with a ``talking_face`` header naming the stage and the format version,
and the model card's facts (data, command, metrics) beside it in ``SHIPPED_DIR``.

Which stage a checkpoint holds is read from its weights (stage 1 has ``net.*``, stage 2 ``generator.*``), so a
user's own checkpoints need no header; a checkpoint of the wrong stage, of a newer format or with weights
that do not fit the network fails before anything is generated, naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from talking_face.datamodules.atomic import atomic_path

__all__ = [
    "FORMAT_VERSION",
    "SHIPPED_DIR",
    "CheckpointError",
    "checkpoint_stage",
    "export_checkpoint",
    "load_stage",
    "shipped_checkpoint",
]

Stage = Literal["landmarks", "face2vid"]
FORMAT_VERSION = 1
"""Raised when the meaning of a checkpoint's contents changes (a new input, a renamed hyperparameter)."""

SHIPPED_DIR = Path(__file__).parent / "shipped"
_STAGE_PREFIX: dict[str, Stage] = {"net.": "landmarks", "generator.": "face2vid"}


class CheckpointError(ValueError):
    """A checkpoint cannot be used here; the message names the file and why."""


def shipped_checkpoint(stage: Stage) -> Path:
    """The checkpoint of ``stage`` that ships with the package (model cards: ``shipped/README.md``)."""
    path = SHIPPED_DIR / f"{stage}.ckpt"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: the shipped {stage} checkpoint is missing from this installation; reinstall "
            "the package or pass a checkpoint of your own"
        )
    return path


def _read(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def checkpoint_stage(checkpoint: dict, path: Path) -> Stage:
    """Which stage's weights ``checkpoint`` holds."""
    header = checkpoint.get("talking_face", {})
    version = header.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this installation reads ({FORMAT_VERSION}); "
            "upgrade talking-face"
        )
    keys = checkpoint["state_dict"].keys()
    stages = {stage for prefix, stage in _STAGE_PREFIX.items() if any(key.startswith(prefix) for key in keys)}
    if len(stages) != 1:
        raise CheckpointError(f"{path}: holds the weights of neither stage (landmarks nor face2vid)")
    return stages.pop()


def load_stage(path: str | Path, stage: Stage, device: str | torch.device = "cpu"):
    """Load the ``LandmarkModule`` or ``Face2VidModule`` in ``path``, in eval mode on ``device``."""
    from talking_face.lightning_modules import Face2VidModule, LandmarkModule

    path = Path(path)
    checkpoint = _read(path)
    found = checkpoint_stage(checkpoint, path)
    if found != stage:
        raise CheckpointError(f"{path}: is a {found} checkpoint, but a {stage} checkpoint is needed here")
    module_class = LandmarkModule if stage == "landmarks" else Face2VidModule
    try:
        module = module_class.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except (RuntimeError, TypeError, KeyError) as error:
        raise CheckpointError(
            f"{path}: does not fit this version's {module_class.__name__} (trained with another version?): "
            f"{str(error).splitlines()[0]}"
        ) from error
    return module.to(device).eval()


def export_checkpoint(
    source: str | Path, target: str | Path, card: dict | None = None, stage: Stage | None = None
) -> Path:
    """Write ``source``'s weights and hyperparameters to ``target`` with the stage header (atomic).

    ``card`` (data, command, metrics, licence) is stored in the header too, so the facts travel with the
    weights. ``stage``, when given, must be the checkpoint's.
    """
    source, target = Path(source), Path(target)
    checkpoint = _read(source)
    found = checkpoint_stage(checkpoint, source)
    if stage is not None and found != stage:
        raise CheckpointError(f"{source}: is a {found} checkpoint, not {stage}")
    stage = found
    slim = {
        key: checkpoint[key]
        for key in ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step")
        if key in checkpoint
    }
    slim["talking_face"] = {"stage": stage, "format_version": FORMAT_VERSION, "card": card or {}}
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(slim, tmp)
    return target
