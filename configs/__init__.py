"""LightningCLI configs, shipped as package data, so ``-c landmarks.yaml`` works from any folder.

``landmarks.yaml`` and ``face2vid.yaml`` are the bases; ``*_tiny.yaml`` and ``shipped_*.yaml`` hold only what
differs from them and are composed after them (``-c face2vid.yaml -c face2vid_tiny.yaml``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["config_path", "model_arguments", "shipped_configs"]


def shipped_configs() -> list[str]:
    """Names of the configs that ship with the package (``landmarks.yaml``, ``face2vid_tiny.yaml``, ...)."""
    return sorted(entry.name for entry in files(__name__).iterdir() if entry.name.endswith(".yaml"))


def config_path(name: str | Path) -> Path:
    """``name`` itself when it is a file; else the shipped config of that name (with or without .yaml)."""
    if Path(name).is_file():
        return Path(name)
    stem = Path(name).name.removesuffix(".yaml")
    shipped = Path(str(files(__name__) / f"{stem}.yaml"))
    if not shipped.is_file():
        known = ", ".join(shipped_configs())
        raise FileNotFoundError(f"{name}: no such config file, nor a shipped one ({known})")
    return shipped


def model_arguments(*names: str) -> dict:
    """Every argument of the model that LightningCLI builds from the configs ``names``, composed in order
    (``model_arguments("face2vid.yaml", "face2vid_tiny.yaml")``): what a script needs without a Trainer."""
    from talking_face.cli import cli_main

    args = [arg for name in names for arg in ("-c", name)]
    hparams = cli_main([*args, "--trainer.logger=false"], run=False).model.hparams
    return {name: value for name, value in hparams.items() if not name.startswith("_")}  # not _class_path
