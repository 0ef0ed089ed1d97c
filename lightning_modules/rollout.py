"""Face2Vid frame by frame without Lightning: the generator's named outputs of every frame, history carried.

    rollout = FrameRollout.from_module(face2vid_module)        # or FrameRollout(generator, image_size=128)
    rollout.start(reference_crop, reference_landmarks)          # [3, S, S] in [0, 1], [68, 2] crop pixels
    for out in rollout.run(landmarks):                           # [T, 68, 2] crop pixels, any T
        out.frame, out.hallucinated, out.reference_flow, out.mask, ...   # each [1, C, S, S]

The same autoregression as ``Face2VidModule.rollout`` (K previous frames, the reference in front of the
first; landmark priors for both warps when the model was trained with them), but one frame at a time and
resumable: ``run`` called on consecutive chunks gives the frames of one call on the whole sequence, with
memory bounded by one frame's outputs. Only ``torch`` and the plain networks are used, so a product, a
notebook or an export can drive a trained generator without a Trainer.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from talking_face.lightning_modules.networks.generator import Face2VidGenerator, GeneratorOutput
from talking_face.lightning_modules.networks.rasterise import rasterise_landmarks
from talking_face.lightning_modules.networks.warp import landmark_flow

__all__ = ["FrameRollout"]

_WHERE = "lightning_modules/rollout.py"


class FrameRollout:
    """Autoregressive Face2Vid over a sequence of driving landmarks, one ``GeneratorOutput`` per frame.

    Args:
        generator: a trained ``Face2VidGenerator`` (left in the mode it is in; use ``eval()`` for inference).
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
        self.max_temporal_mask = max_temporal_mask
        self.size = int(image_size)
        self.sketch_sigma = sketch_sigma
        self.prior_sigma = prior_sigma
        self.use_landmark_prior = use_landmark_prior
        self._reference: tuple[Tensor, Tensor, Tensor] | None = None
        self._frames: Tensor | None = None
        self._sketches: Tensor | None = None
        self._last: Tensor | None = None

    @classmethod
    def from_module(cls, module, max_temporal_mask: float = 1.0) -> FrameRollout:
        """The rollout of a ``Face2VidModule`` (its generator and hyperparameters)."""
        hp = module.hparams
        return cls(module.generator, hp.image_size, hp.sketch_sigma, hp.prior_sigma, hp.use_landmark_prior,
                   max_temporal_mask)  # fmt: skip

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def _sketch(self, landmarks: Tensor) -> Tensor:
        """[N, 68, 2] -> [N, Cs, S, S]."""
        return rasterise_landmarks(landmarks, self.size, self.sketch_sigma)

    def start(self, reference: Tensor, reference_landmarks: Tensor) -> FrameRollout:
        """Begin a video: ``reference`` [3, S, S] in [0, 1], ``reference_landmarks`` [68, 2] crop pixels.

        Before the first frame the K previous frames are the reference, as in training."""
        s = self.size
        if tuple(reference.shape) != (3, s, s) or tuple(reference_landmarks.shape) != (68, 2):
            raise ValueError(
                f"{_WHERE}: want reference [3, {s}, {s}] and reference_landmarks [68, 2], got "
                f"{tuple(reference.shape)} and {tuple(reference_landmarks.shape)}"
            )
        device = self.device
        image = reference.to(device, torch.float32)[None]
        points = reference_landmarks.to(device, torch.float32)[None]
        sketch = self._sketch(points)
        k = self.generator.num_previous
        self._reference = (image, sketch, points)
        self._frames = image[:, None].expand(-1, k, -1, -1, -1)
        self._sketches = sketch[:, None].expand(-1, k, -1, -1, -1)
        self._last = points
        return self

    @torch.no_grad()
    def run(self, landmarks: Tensor) -> Iterator[GeneratorOutput]:
        """Make the frames of ``landmarks`` [T, 68, 2] (crop pixels), continuing from the last call.

        Yields one ``GeneratorOutput`` of [1, C, S, S] tensors per frame (``.frame`` is the video)."""
        if self._reference is None:
            raise RuntimeError(f"{_WHERE}: call start(reference, reference_landmarks) before run()")
        if landmarks.ndim != 3 or tuple(landmarks.shape[1:]) != (68, 2):
            raise ValueError(f"{_WHERE}: landmarks must be [T, 68, 2], got {tuple(landmarks.shape)}")
        reference, reference_sketch, reference_points = self._reference
        landmarks = landmarks.to(self.device, torch.float32)
        use_flow = self.generator.use_flow
        for points in landmarks:
            points = points[None]
            sketch = self._sketch(points)
            reference_prior = previous_prior = None
            if self.use_landmark_prior:
                reference_prior = landmark_flow(points, reference_points, self.size, self.prior_sigma)
                if use_flow:
                    previous_prior = landmark_flow(points, self._last, self.size, self.prior_sigma)
            out = self.generator(
                sketch,
                reference,
                reference_sketch,
                self._frames if use_flow else None,
                self._sketches if use_flow else None,
                reference_prior,
                previous_prior,
                self.max_temporal_mask,
            )
            self._frames = torch.cat([self._frames[:, 1:], out.frame[:, None]], 1)
            self._sketches = torch.cat([self._sketches[:, 1:], sketch[:, None]], 1)
            self._last = points
            yield out
