"""Face2Vid over time without Lightning: the generator's named outputs of every frame, history carried.

    rollout = FrameRollout.from_module(face2vid_module)     # or FrameRollout(generator, image_size=128)
    rollout.start(reference, reference_landmarks)            # [B, 3, S, S] in [0, 1], [B, 68, 2] crop pixels
    out = rollout.unroll(landmarks)                          # [B, T, 68, 2] -> GeneratorOutput of [B, T, ...]
    for out in rollout.run(more_landmarks): ...              # or frame by frame: [B, C, S, S] each

Frame t sees frames t-K .. t-1, and before the first frame of a video those are the reference frame, so a
video starts from the photo. ``run`` and ``unroll`` continue from the last frame made, so consecutive
chunks give the frames of one call on the whole sequence; ``continue_from`` starts from given frames
instead. With ``use_landmark_prior`` both warps start from the flow the landmarks imply
(``networks.warp.landmark_flow``). Training (``Face2VidModule``), the product, the media callback, the
evaluation and the notebooks all drive the generator through this one class; only torch and the plain
networks are used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from einops import rearrange
from torch import Tensor

from talking_face.datamodules.faces.landmark_scheme import NUM_LANDMARKS
from talking_face.lightning_modules.eval_mode import eval_mode
from talking_face.lightning_modules.networks.generator import Face2VidGenerator, GeneratorOutput
from talking_face.lightning_modules.networks.rasterise import SKETCH_CHANNELS, rasterise_landmarks
from talking_face.lightning_modules.networks.warp import landmark_flow
from talking_face.shapes import check_shape

__all__ = ["FrameRollout", "build_generator", "fold", "generate_video", "windows"]


def fold(x: Tensor) -> Tensor:
    """[B, T, ...] -> [B*T, ...]."""
    return rearrange(x, "b t ... -> (b t) ...")


def windows(frames: Tensor, length: int) -> Tensor:
    """All runs of ``length`` consecutive frames: [B, T, ...] -> [B, T - length + 1, length, ...]."""
    count = frames.shape[1] - length + 1
    return torch.stack([frames[:, j : j + count] for j in range(length)], dim=2)


def build_generator(hp: Mapping) -> Face2VidGenerator:
    """An untrained generator shaped by a ``Face2VidModule``'s hyperparameters (a checkpoint's, say)."""
    return Face2VidGenerator(
        SKETCH_CHANNELS,
        hp["num_previous"],
        hp["channels"],
        hp["bottleneck_blocks"],
        hp["attention_heads"],
        hp["use_flow"],
        hp["use_attention"],
        hp["use_reference_warp"],
    )


class FrameRollout:
    """Autoregressive Face2Vid over driving landmarks, for a batch of videos.

    Args:
        generator: a ``Face2VidGenerator``, left in the mode it is in (``generate_video`` uses eval mode).
        image_size: S, the crop side it was trained at.
        sketch_sigma: half-width of the sketch lines in pixels (None: the rasteriser's default, S / 128).
        prior_sigma: reach of each landmark in the landmark prior (None: S / 64).
        use_landmark_prior: give the generator the flows the landmarks imply (as in training).
        max_temporal_mask: cap on the share of each frame warped from the previous one
            (``TalkingFacePipeline`` says why); 1 = as trained.
    """

    def __init__(
        self,
        generator: Face2VidGenerator,
        image_size: int,
        sketch_sigma: float | None = None,
        prior_sigma: float | None = None,
        use_landmark_prior: bool = True,
        max_temporal_mask: float = 1.0,
    ) -> None:
        self.generator = generator
        self.size = int(image_size)
        self.sketch_sigma = sketch_sigma
        self.prior_sigma = prior_sigma
        self.use_landmark_prior = use_landmark_prior
        self.max_temporal_mask = max_temporal_mask
        self._reference: tuple[Tensor, Tensor, Tensor] | None = None
        self._frames: Tensor | None = None  # the K previous frames [B, K, 3, S, S], oldest first
        self._sketches: Tensor | None = None  # ... and their sketches [B, K, Cs, S, S]
        self._last: Tensor | None = None  # landmarks [B, 68, 2] of the last of them

    @classmethod
    def from_module(cls, module, max_temporal_mask: float = 1.0) -> FrameRollout:
        """The rollout of a ``Face2VidModule`` (its generator and hyperparameters)."""
        return cls.from_hparams(module.generator, module.hparams, max_temporal_mask)

    @classmethod
    def from_hparams(
        cls, generator: Face2VidGenerator, hp: Mapping, max_temporal_mask: float = 1.0
    ) -> FrameRollout:
        """The rollout of ``generator`` as a ``Face2VidModule`` with hyperparameters ``hp`` trained it."""
        sigmas = hp["sketch_sigma"], hp["prior_sigma"]
        return cls(generator, hp["image_size"], *sigmas, hp["use_landmark_prior"], max_temporal_mask)

    def capped(self, max_temporal_mask: float) -> FrameRollout:
        """A new rollout of the same generator with another cap on the temporal mask."""
        sigmas = self.sketch_sigma, self.prior_sigma
        return FrameRollout(self.generator, self.size, *sigmas, self.use_landmark_prior, max_temporal_mask)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def sketch(self, landmarks: Tensor) -> Tensor:
        """Landmarks [..., 68, 2] (crop pixels) -> sketches [..., Cs, S, S]."""
        flat = rasterise_landmarks(landmarks.reshape(-1, NUM_LANDMARKS, 2), self.size, self.sketch_sigma)
        return flat.reshape(*landmarks.shape[:-2], *flat.shape[1:])

    def start(self, reference: Tensor, reference_landmarks: Tensor) -> FrameRollout:
        """Begin videos from ``reference`` [B, 3, S, S] in [0, 1] with ``reference_landmarks`` [B, 68, 2]:
        before the first frame, the K previous frames are the reference."""
        s = self.size
        dims = check_shape(reference, f"B 3 {s} {s}", f"reference (of a {s}-px model)")
        check_shape(reference_landmarks, f"B {NUM_LANDMARKS} 2", "reference_landmarks", dims)
        device = self.device
        image = reference.to(device, torch.float32)
        points = reference_landmarks.to(device, torch.float32)
        sketch = self.sketch(points)
        k = self.generator.num_previous
        self._reference = (image, sketch, points)
        self._frames = image[:, None].expand(-1, k, -1, -1, -1)
        self._sketches = sketch[:, None].expand(-1, k, -1, -1, -1)
        self._last = points
        return self

    def continue_from(self, previous: Tensor, previous_landmarks: Tensor) -> FrameRollout:
        """Carry on after ``previous`` [B, k, 3, S, S] (landmarks [B, k, 68, 2]), frames just made: the last K
        become the history; with fewer than K, the reference stays in front, as at the start of a video."""
        frames = self._started()[0]
        dims = check_shape(previous, "B k 3 S S", "previous", {"B": len(frames), "S": self.size})
        check_shape(previous_landmarks, f"B k {NUM_LANDMARKS} 2", "previous_landmarks", dims)
        k = self.generator.num_previous
        previous, previous_landmarks = previous[:, -k:].to(frames), previous_landmarks[:, -k:].to(frames)
        keep = k - previous.shape[1]
        self._frames = torch.cat([self._frames[:, :keep], previous], 1)
        self._sketches = torch.cat([self._sketches[:, :keep], self.sketch(previous_landmarks)], 1)
        self._last = previous_landmarks[:, -1]
        return self

    def _started(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._reference is None:
            raise RuntimeError("FrameRollout: call start(reference, reference_landmarks) first")
        return self._reference

    def _priors(self, landmarks: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Landmark flows [B, T, 2, S, S] to every frame from the reference and from the frame before it;
        (None, None) without ``use_landmark_prior``."""
        if not self.use_landmark_prior:
            return None, None
        b, t = landmarks.shape[:2]
        reference_points = self._started()[2]
        before = torch.cat([self._last[:, None], landmarks[:, :-1]], 1)

        def flow_from(sources: Tensor) -> Tensor:
            flow = landmark_flow(fold(landmarks), fold(sources), self.size, self.prior_sigma)
            return rearrange(flow, "(b t) ... -> b t ...", b=b)

        reference_prior = flow_from(reference_points[:, None].expand(-1, t, -1, -1))
        return reference_prior, flow_from(before) if self.generator.use_flow else None

    def checked_landmarks(self, landmarks: Tensor) -> Tensor:
        """``landmarks`` [B, T >= 1, 68, 2] for this rollout's B videos, on its device."""
        dims = check_shape(landmarks, f"B T {NUM_LANDMARKS} 2", "landmarks", {"B": len(self._started()[0])})
        if dims["T"] < 1:
            raise ValueError(f"landmarks hold no frame: {list(landmarks.shape)}")
        return landmarks.to(self.device, torch.float32)

    def run(self, landmarks: Tensor, teacher: Tensor | None = None, teacher_mask: Tensor | None = None
            ) -> Iterator[GeneratorOutput]:  # fmt: skip
        """Make the frames of ``landmarks`` [B, T, 68, 2] one by one: a ``GeneratorOutput`` of [B, C, S, S]
        tensors per frame (``.frame`` is the video).

        ``teacher`` [B, T, 3, S, S] (real frames) and ``teacher_mask`` [B, T] bool: where the mask is True the
        real frame, not the one made, becomes a previous frame of the frames after it (training moves from
        real to own previous frames). Previous frames are detached: no gradient flows back through time."""
        landmarks = self.checked_landmarks(landmarks)
        reference, reference_sketch, _ = self._reference
        sketches = self.sketch(landmarks)
        reference_prior, previous_prior = self._priors(landmarks)
        use_flow = self.generator.use_flow
        for step in range(landmarks.shape[1]):
            out = self.generator(
                sketches[:, step],
                reference,
                reference_sketch,
                self._frames if use_flow else None,
                self._sketches if use_flow else None,
                None if reference_prior is None else reference_prior[:, step],
                None if previous_prior is None else previous_prior[:, step],
                self.max_temporal_mask,
            )
            shown = out.frame.detach()
            if teacher is not None:
                shown = torch.where(teacher_mask[:, step, None, None, None], teacher[:, step], shown)
            self._frames = torch.cat([self._frames[:, 1:], shown[:, None]], 1)
            self._sketches = torch.cat([self._sketches[:, 1:], sketches[:, step, None]], 1)
            self._last = landmarks[:, step]
            yield out

    def unroll(self, landmarks: Tensor, teacher: Tensor | None = None, teacher_mask: Tensor | None = None
               ) -> GeneratorOutput:  # fmt: skip
        """The frames of ``landmarks`` [B, T, 68, 2] as one ``GeneratorOutput`` of [B, T, ...] tensors.

        Frames that do not depend on each other are made in one batched call: every frame without temporal
        flow, and with real previous frames everywhere (teacher forcing: ``teacher_mask`` all True)."""
        if self.generator.use_flow and (teacher is None or not bool(teacher_mask.all())):
            return GeneratorOutput.stack(list(self.run(landmarks, teacher, teacher_mask)))
        landmarks = self.checked_landmarks(landmarks)
        reference, reference_sketch, _ = self._reference
        b, t = landmarks.shape[:2]
        sketches = self.sketch(landmarks)
        reference_prior, previous_prior = self._priors(landmarks)
        previous = previous_sketches = None
        if self.generator.use_flow:
            k = self.generator.num_previous
            frames, frame_sketches = (
                torch.cat([self._frames, teacher], 1),
                torch.cat([self._sketches, sketches], 1),
            )
            previous = fold(windows(frames, k)[:, :t])
            previous_sketches = fold(windows(frame_sketches, k)[:, :t])
            self._frames, self._sketches = frames[:, -k:], frame_sketches[:, -k:]
        self._last = landmarks[:, -1]
        out = self.generator(
            fold(sketches),
            fold(reference[:, None].expand(-1, t, -1, -1, -1)),
            fold(reference_sketch[:, None].expand(-1, t, -1, -1, -1)),
            previous,
            previous_sketches,
            None if reference_prior is None else fold(reference_prior),
            None if previous_prior is None else fold(previous_prior),
            self.max_temporal_mask,
        )
        return out.map(lambda x: rearrange(x, "(b t) ... -> b t ...", b=b))


@torch.no_grad()
def generate_video(
    rollout: FrameRollout,
    landmarks: Tensor,
    reference: Tensor,
    reference_landmarks: Tensor,
    chunk_frames: int = 64,
) -> Tensor:
    """Frames [T, 3, S, S] in [0, 1] of one video, autoregressive, in eval mode, on the generator's device.

    ``landmarks`` [T, 68, 2] crop pixels, ``reference`` [3, S, S], ``reference_landmarks`` [68, 2];
    ``chunk_frames`` bounds the memory of the intermediates (the frames are the same for any value)."""
    check_shape(landmarks, f"T {NUM_LANDMARKS} 2", "landmarks")
    with eval_mode(rollout.generator):
        rollout.start(reference[None], reference_landmarks[None])
        landmarks = rollout.checked_landmarks(landmarks[None])[0]
        return torch.cat([rollout.unroll(part[None]).frame[0] for part in landmarks.split(chunk_frames)])
