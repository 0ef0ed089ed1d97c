"""LightningCLI configs, shipped as package data, so ``-c landmarks_tiny.yaml`` works from any folder."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["config_path", "shipped_configs"]


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
