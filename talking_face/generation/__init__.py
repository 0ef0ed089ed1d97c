"""Generation, the product: speech and/or text + a face photo or clip -> a lip-synced video.

``TalkingFacePipeline`` (``pipeline.py``) is the Python API that ``talking-face generate``, the notebook
and the demo share; the other files are its steps, one job each.
"""

from talking_face.generation.pipeline import Plan, Result, TalkingFacePipeline

__all__ = ["Plan", "Result", "TalkingFacePipeline"]
