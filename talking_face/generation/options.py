"""How a video is made beyond its inputs: every knob of ``generate``, ``TalkingFacePipeline`` and the demo,
each with its one default and its one description (the CLI's ``--help`` reads them from here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from talking_face.datamodules.media import DEFAULT_CRF, DEFAULT_PRESET, PRESETS
from talking_face.errors import UsageError
from talking_face.generation.checks import check_knobs
from talking_face.generation.speech_input import RECOGNISE, Recognise

__all__ = ["GenerationOptions", "RENDERERS"]

RENDERERS = ("full", "paste")


@dataclass(frozen=True)
class GenerationOptions:
    """The knobs of one generated video, checked when made (``UsageError`` naming the knob).

    Args:
        voice: TTS voice for text only (e.g. kal_diphone, cmu_us_slt_arctic_hts, en-us+f2).
        face_index: which face when there are several (0 = the largest, the default).
        head_motion: head-motion amplitude for a photo, 0 (still) to 3.
        blinks: blinks per second for a photo, 0 (none) to 2.
        mouth_scale: scales the mouth's motion, 0 to 3 (1 = as predicted).
        smoothing: landmark smoothing window for a video, in frames at 25 fps (as long at any rate), 1 (none)
            to 51.
        seed: the random head motion and blinks follow from it.
        recognise: audio without text: words (recognise its words offline and let their phones drive the
            mouth beside the sound; when they fit poorly, the sound alone), phones (the phones heard in it
            without words: for clean speech the English dictionary does not know) or off (the sound alone).
        fps: frames per second of the video, 1 to 120 (default: a clip's own rate, 25 for a photo). Speech
            is analysed at 25 frames a second whatever the video's rate; the mouth's motion is interpolated.
        max_side: scale the face input down so that its longer side is at most this many pixels (default:
            the video keeps the input's resolution, 4K included).
        crf: the video encoder's quality, 0 to 51 (x264's constant rate factor): lower is sharper and larger;
            each 6 down about doubles the file.
        preset: the video encoder's speed, x264's preset: ultrafast, superfast, veryfast, faster, fast,
            medium, slow, slower or veryslow. A faster one spends less time encoding each frame, for a
            somewhat larger file a little further from the rendered frames.
        renderer: full: the source's own pixels warped at its resolution, the network's only inside the
            lips; paste: the network's whole face crop pasted back (the former renderer, for comparison).
        chunk_frames: frames generated at a time, >= 1 (memory is bounded by it, not by the length).
        max_temporal_mask: cap on the share of each frame warped from the previous one, 0 to 1: lower is
            sharper, higher smoother, 1 = as trained (see ``TalkingFacePipeline``).
    """

    voice: str | None = None
    face_index: int | None = None
    head_motion: float = 1.0
    blinks: float = 0.3
    mouth_scale: float = 1.0
    smoothing: int = 5
    seed: int = 0
    recognise: Recognise = "words"
    fps: float | None = None
    max_side: int | None = None
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    renderer: Literal["full", "paste"] = "full"
    chunk_frames: int = 50
    max_temporal_mask: float = 0.6

    def __post_init__(self) -> None:
        check_knobs(
            face_index=self.face_index, head_motion=self.head_motion, blinks=self.blinks,
            mouth_scale=self.mouth_scale, smoothing=self.smoothing, chunk_frames=self.chunk_frames,
            max_temporal_mask=self.max_temporal_mask, max_side=self.max_side, crf=self.crf, fps=self.fps,
        )  # fmt: skip
        if self.preset not in PRESETS:
            raise UsageError("preset", f"give one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.recognise not in RECOGNISE:
            raise UsageError("recognise", f"give {', '.join(RECOGNISE)}, got {self.recognise!r}")
        if self.renderer not in RENDERERS:
            raise UsageError("renderer", f"give {' or '.join(RENDERERS)}, got {self.renderer!r}")
