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

import inspect
import io
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from talking_face.datamodules.atomic import atomic_path
from talking_face.errors import InputError

if TYPE_CHECKING:
    from talking_face.lightning_modules.landmark_inference import MouthPredictor
    from talking_face.lightning_modules.rollout import FrameRollout

__all__ = [
    "FORMAT_VERSION",
    "SHIPPED_DIR",
    "CheckpointError",
    "checkpoint_stage",
    "export_checkpoint",
    "load_frame_rollout",
    "load_mouth_predictor",
    "load_stage",
    "shipped_checkpoint",
]

Stage = Literal["landmarks", "face2vid"]
FORMAT_VERSION = 1
"""Raised when the meaning of a checkpoint's contents changes (a new input, a renamed hyperparameter)."""

SHIPPED_DIR = Path(__file__).parent / "shipped"
_STAGE_PREFIX: dict[str, Stage] = {"net.": "landmarks", "generator.": "face2vid"}


class CheckpointError(InputError, ValueError):
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


def _read_stage(path: Path, stage: Stage) -> dict:
    checkpoint = _read(path)
    found = checkpoint_stage(checkpoint, path)
    if found != stage:
        raise CheckpointError(f"{path}: is a {found} checkpoint, but a {stage} checkpoint is needed here")
    return checkpoint


def load_stage(path: str | Path, stage: Stage, device: str | torch.device = "cpu"):
    """Load the ``LandmarkModule`` or ``Face2VidModule`` in ``path`` (to train it on), in eval mode on
    ``device``; inference needs only the networks (``load_mouth_predictor``, ``load_frame_rollout``)."""
    path = Path(path)
    checkpoint = _read_stage(path, stage)
    module_class = _module_class(stage)
    # LightningCLI records the class path it trained (``lightning_modules.X`` before the talking_face root):
    # the stage is known, so build that class from the hyperparameters whatever path was recorded
    for key in ("_class_path", "_instantiator"):
        checkpoint.get("hyper_parameters", {}).pop(key, None)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    try:
        module = module_class.load_from_checkpoint(buffer, map_location="cpu", weights_only=False)
    except (RuntimeError, TypeError, KeyError) as error:
        raise CheckpointError(
            f"{path}: does not fit this version's {module_class.__name__} (trained with another version?): "
            f"{str(error).splitlines()[0]}"
        ) from error
    return module.to(device).eval()


def _load_weights(networks: dict[str, torch.nn.Module], checkpoint: dict, path: Path, device) -> None:
    """Load each network's weights (``prefix.*`` in the state dict) in place, then move it to ``device``."""
    state = checkpoint["state_dict"]
    for prefix, network in networks.items():
        weights = {
            key[len(prefix) + 1 :]: value for key, value in state.items() if key.startswith(prefix + ".")
        }
        try:
            network.load_state_dict(weights)
        except RuntimeError as error:
            raise CheckpointError(
                f"{path}: its {prefix} weights do not fit this version's network (trained with another "
                f"version?): {str(error).splitlines()[0]}"
            ) from error
        network.to(device).eval()


def load_mouth_predictor(path: str | Path, device: str | torch.device = "cpu") -> MouthPredictor:
    """Stage 1's networks from a landmarks checkpoint, in eval mode on ``device``."""
    from talking_face.lightning_modules.landmark_inference import MouthPredictor

    path = Path(path)
    checkpoint = _read_stage(path, "landmarks")
    predictor = MouthPredictor.from_hparams(_hyperparameters(checkpoint, "landmarks"))
    _load_weights({"net": predictor.net, "durations": predictor.durations}, checkpoint, path, device)
    return predictor


def load_frame_rollout(path: str | Path, device: str | torch.device = "cpu") -> FrameRollout:
    """Stage 2's generator from a face2vid checkpoint, driven over time (``rollout.FrameRollout``, as
    trained: ``capped`` sets a cap on the temporal mask), in eval mode on ``device``; the critics and the
    training state are not loaded."""
    from talking_face.lightning_modules.rollout import FrameRollout, build_generator

    path = Path(path)
    checkpoint = _read_stage(path, "face2vid")
    hp = _hyperparameters(checkpoint, "face2vid")
    generator = build_generator(hp)
    _load_weights({"generator": generator}, checkpoint, path, device)
    return FrameRollout.from_hparams(generator, hp)


def _module_class(stage: Stage):
    from talking_face.lightning_modules import Face2VidModule, LandmarkModule

    return LandmarkModule if stage == "landmarks" else Face2VidModule


def _hyperparameters(checkpoint: dict, stage: Stage) -> dict:
    """The ``stage`` module's hyperparameters with its defaults for any the checkpoint predates."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(_module_class(stage).__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    return defaults | dict(checkpoint.get("hyper_parameters", {}))


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
