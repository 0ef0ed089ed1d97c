"""Generation, the product: speech and/or text + a face photo or clip -> a lip-synced video.

``TalkingFacePipeline`` (``pipeline.py``) is the Python API that ``talking-face generate``, the notebook
and the demo share; the other files are its steps, one job each. The exports load on first use (PEP 562),
so ``talking-face generate --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talking_face.generation.pipeline import Plan, Result, TalkingFacePipeline

__all__ = ["Plan", "Result", "TalkingFacePipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("talking_face.generation.pipeline"), name)
    raise AttributeError(f"module 'talking_face.generation' has no attribute {name!r}")
