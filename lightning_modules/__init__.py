"""LightningModules of the two stages and their networks (``lightning_modules.networks``).

Exports resolve lazily (PEP 562), so ``import talking_face.cli`` for a tool command such as
``talking-face synth`` does not pay for importing Lightning; ``lightning_modules.LandmarkModule`` (as
in a config's ``class_path``) imports it on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talking_face.lightning_modules.face2vid_module import Face2VidModule
    from talking_face.lightning_modules.landmark_module import LandmarkModule

__all__ = ["Face2VidModule", "LandmarkModule"]

_EXPORTS = {
    "Face2VidModule": "talking_face.lightning_modules.face2vid_module",
    "LandmarkModule": "talking_face.lightning_modules.landmark_module",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lightning_modules' has no attribute {name!r}")
