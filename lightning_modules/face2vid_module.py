"""Stage 2 as a LightningModule: the Face2Vid GAN's training (manual optimisation), metrics and inference API.

The networks live in ``lightning_modules.networks`` (generator, discriminators, attention, rasteriser, warp);
this file owns the losses, the schedule of previous frames, the metrics and the optimisers. Batches follow
the stage-2 contract of ``datamodules.datasets.FaceClipDataset``: ``frames`` [B, L, 3, S, S] in [0, 1],
``landmarks`` [B, L, 68, 2] crop pixels, ``reference_frame`` [B, 3, S, S], ``reference_landmarks``
[B, 68, 2], ``speaker`` / ``utterance`` lists, ``start`` [B]. Clips at another size than ``image_size`` are
resized on entry (train at 64 px from a 128-px cache, say).

**Previous frames.** Frame t sees frames t-K .. t-1; before the first frame of a video those are the
reference frame (so a video starts from the photo, in training and at inference alike). Training starts
with the *real* previous frames (teacher forcing: every frame of a clip is made in one batched call) and
moves to the generator's *own* previous frames, made one after the other and detached, as at inference:
at step s (batches), each clip frame is replaced by its generated version with probability
``own_previous_max * clamp((s - own_previous_start) / (own_previous_end - own_previous_start), 0, 1)``.
The draws come from a generator seeded by (``seed``, step), so a resumed run makes the same draws.
Validation, test and ``generate_sequence`` are always autoregressive.

**Landmark priors** (``use_landmark_prior``). Both warps start from the flow the landmarks imply
(``networks.warp.landmark_flow``: from the reference's landmarks, and from the previous frame's, to frame t's)
and the generator predicts corrections: warping the reference by this prior alone already beats copying it,
for any face (``benchmarks/README.md``); the generator still has to learn the mouth's inside and what the
landmarks do not say.

**Losses**, by name with weights from the config (``DEFAULT_LOSS_WEIGHTS``; 0 switches one off):
``adversarial`` (image critic on (sketch, frame) pairs) and ``temporal_adversarial`` (clips of K+1
frames), hinge or LSGAN; ``feature_matching`` (L1 between critic features of real and generated);
``l1`` (``mouth_weight`` times more inside the mouth box of landmarks 48-67); ``hallucinated`` (the same
L1 on H alone, as vid2vid's loss on its raw image: H must be worth blending in before the masks can learn to
use it, otherwise the generator keeps copying warped frames whatever the landmarks say); ``perceptual`` (VGG19
features, only when ``perceptual_weights`` names a local file: nothing is ever downloaded); ``flow`` (L1 in
pixels against OpenCV DIS flow of the real frames, where that flow is forward-backward consistent);
``reference_flow`` (the same for the reference flow, against DIS flow from the reference to the real frame);
``warp`` (the real previous frame warped by the predicted flow against the real frame); ``reference_warp``
(the reference warped by the reference flow against the real frame); ``mask`` (the occlusion mask's mean
where the real flow fails its consistency check: do not trust the warp where the previous frame does not show
the pixel; elsewhere the reconstruction losses decide, so the mask may also drop where an own previous frame
went wrong).

**Safety.** A NaN in a batch, or a non-finite loss or gradient, raises ``FloatingPointError`` naming the
batch's utterances before the optimiser step that would use it. Since the generator loss contains the
critics' outputs on real and generated frames, a finite generator loss also vouches for the critic's
loss: a broken batch stops before any step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from einops import rearrange
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from talking_face.datamodules.datamodule import TEST_SPLITS
from talking_face.datamodules.faces.landmark_scheme import NUM_LANDMARKS
from talking_face.errors import UsageError
from talking_face.lightning_modules.eval_mode import eval_mode
from talking_face.lightning_modules.face2vid_losses import (
    VGGFeatures,
    discriminator_loss,
    feature_matching_loss,
    flow_loss,
    generator_adversarial_loss,
)
from talking_face.lightning_modules.face2vid_metrics import (
    METRIC_FLOW_PRESET,
    TRAINING_FLOW_PRESET,
    PSNRFromMSE,
    estimate_flow,
    face_region,
    frame_difference_energy,
    mouth_box,
    mouth_lmd_on_frames,
    resize_clip,
    temporal_warping_error,
)
from talking_face.lightning_modules.networks.discriminator import MultiScaleDiscriminator
from talking_face.lightning_modules.networks.generator import Face2VidGenerator, GeneratorOutput
from talking_face.lightning_modules.networks.rasterise import SKETCH_CHANNELS, rasterise_landmarks
from talking_face.lightning_modules.networks.warp import landmark_flow, warp
from talking_face.shapes import check_shape

__all__ = ["DEFAULT_LOSS_WEIGHTS", "Face2VidModule"]

DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "adversarial": 1.0,
    "temporal_adversarial": 1.0,
    "feature_matching": 10.0,
    "l1": 10.0,
    "hallucinated": 5.0,
    "perceptual": 10.0,
    "flow": 1.0,
    "reference_flow": 1.0,
    "warp": 10.0,
    "reference_warp": 2.0,
    "mask": 1.0,
}
"""The losses known by name and their default weights (the config's ``loss_weights`` overrides some)."""


# --- the module ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clip:
    """A prepared batch: frames [B, L, 3, S, S], landmarks [B, L, 68, 2], sketches [B, L, Cs, S, S],
    reference [B, 3, S, S], reference_sketch [B, Cs, S, S], mouth_box [B, L, 1, S, S] bool,
    flow / flow_valid [B, L-1, ., S, S] (classical, real pair t-1 -> t), reference_flow /
    reference_flow_valid [B, L, ., S, S] (classical, reference -> real frame t); None when not needed."""

    frames: Tensor
    landmarks: Tensor
    sketches: Tensor
    reference: Tensor
    reference_landmarks: Tensor
    reference_sketch: Tensor
    mouth_box: Tensor
    flow: Tensor | None
    flow_valid: Tensor | None
    reference_flow: Tensor | None
    reference_flow_valid: Tensor | None
    names: list[str]


@dataclass(frozen=True)
class _History:
    """What frame t sees of the past: frames [B, K, 3, S, S] and sketches [B, K, Cs, S, S] (oldest first)
    and the landmarks [B, 68, 2] of the last of them (for its landmark prior)."""

    frames: Tensor
    sketches: Tensor
    last_landmarks: Tensor


def _fold(x: Tensor) -> Tensor:
    return rearrange(x, "b t ... -> (b t) ...")


def _clip_flow(targets: Tensor, sources: Tensor, preset: str) -> tuple[Tensor, Tensor]:
    """``estimate_flow`` over clips: [B, T, 3, S, S] twice -> flow [B, T, 2, S, S], valid [B, T, 1, S, S]."""
    flow, valid = estimate_flow(_fold(targets), _fold(sources), preset)
    return tuple(rearrange(x, "(b t) ... -> b t ...", b=len(targets)) for x in (flow, valid))


def _windows(frames: Tensor, length: int) -> Tensor:
    """All runs of ``length`` consecutive frames: [B, T, ...] -> [B, T - length + 1, length, ...]."""
    count = frames.shape[1] - length + 1
    return torch.stack([frames[:, j : j + count] for j in range(length)], dim=2)


class Face2VidModule(L.LightningModule):
    """Face2Vid (stage 2): landmarks + a reference frame of a person -> video frames, trained as a GAN.

    Args:
        image_size: side S of the frames the generator makes (clips of another size are resized).
        num_previous: K, previous frames the generator sees.
        channels: generator width at S/2.
        bottleneck_blocks: generator residual blocks at S/8.
        attention_heads: heads of every self-attention block (generator and critics).
        use_flow: temporal flow + occlusion mask (False: frames made independently, the paper's baseline).
        use_attention: self-attention in the generator and the image critic.
        use_reference_warp: the reference-warp appearance path (keeps unseen identities).
        use_landmark_prior: start both warps from the flow the landmarks imply (``warp.landmark_flow``); the
            generator predicts corrections.
        prior_sigma: reach of each landmark in that flow, in pixels (default S / 64).
        sketch_sigma: half-width in pixels of the sketch lines (default S / 128).
        discriminator_channels: width of the critics' first layer.
        discriminator_layers: stride-2 layers per critic scale.
        discriminator_scales: scales of the image critic.
        temporal_scales: scales of the temporal critic.
        temporal_with_flow: the temporal critic also sees the real clip's classical flow.
        gan_loss: ``hinge`` or ``lsgan``.
        loss_weights: weights by loss name, overriding ``DEFAULT_LOSS_WEIGHTS`` (0 switches a loss off).
        mouth_weight: L1 weight inside the mouth box relative to outside.
        perceptual_weights: a LOCAL torchvision VGG19 state dict; None or missing: perceptual loss off.
        own_previous_start: training step (batches) where the switch to own previous frames begins.
        own_previous_end: step where it reaches ``own_previous_max``.
        own_previous_max: final probability that a previous frame is the generator's own.
        lr_generator: Adam learning rate of the generator.
        lr_discriminator: Adam learning rate of the critics.
        beta1: Adam beta1 (0.5, as pix2pixHD / vid2vid); beta2 is 0.999.
        lr_schedule: ``constant``, or ``linear_decay`` to 0 from ``decay_start_fraction`` of the run.
        decay_start_fraction: where the linear decay starts.
        gradient_clip_val: max gradient norm per optimiser step (None: no clipping).
        channels_last: keep weights in channels_last memory format (faster convolutions on GPUs).
        lmd_every_n_epochs: run the (slow) detector LMD in validation every n epochs (0: only in test).
        seed: seed of the own-previous-frame draws.
    """

    def __init__(
        self,
        image_size: int = 128,
        num_previous: int = 2,
        channels: int = 32,
        bottleneck_blocks: int = 2,
        attention_heads: int = 4,
        use_flow: bool = True,
        use_attention: bool = True,
        use_reference_warp: bool = True,
        use_landmark_prior: bool = True,
        prior_sigma: float | None = None,
        sketch_sigma: float | None = None,
        discriminator_channels: int = 64,
        discriminator_layers: int = 3,
        discriminator_scales: int = 2,
        temporal_scales: int = 1,
        temporal_with_flow: bool = True,
        gan_loss: Literal["hinge", "lsgan"] = "hinge",
        loss_weights: dict[str, float] | None = None,
        mouth_weight: float = 4.0,
        perceptual_weights: str | None = None,
        own_previous_start: int = 0,
        own_previous_end: int = 2000,
        own_previous_max: float = 1.0,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        beta1: float = 0.5,
        lr_schedule: Literal["constant", "linear_decay"] = "constant",
        decay_start_fraction: float = 0.5,
        gradient_clip_val: float | None = 1.0,
        channels_last: bool = False,
        lmd_every_n_epochs: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(
                f"unknown loss names {sorted(unknown)} in loss_weights; known: {sorted(DEFAULT_LOSS_WEIGHTS)}"
            )
        weights = DEFAULT_LOSS_WEIGHTS | dict(loss_weights or {})
        bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"loss weights must be finite and >= 0, got {bad}")
        if image_size % 8 or image_size < 16:
            raise ValueError(f"image_size must be a multiple of 8 and >= 16, got {image_size}")
        if not 0.0 <= own_previous_max <= 1.0:
            raise ValueError(f"own_previous_max must lie in [0, 1], got {own_previous_max}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Face2VidGenerator(
            SKETCH_CHANNELS,
            num_previous,
            channels,
            bottleneck_blocks,
            attention_heads,
            use_flow,
            use_attention,
            use_reference_warp,
        )
        self.image_discriminator = MultiScaleDiscriminator(
            SKETCH_CHANNELS + 3,
            discriminator_scales,
            discriminator_channels,
            discriminator_layers,
            use_attention,
            attention_heads,
        )
        temporal_inputs = 3 * (num_previous + 1) + (2 * num_previous if temporal_with_flow else 0)
        self.temporal_discriminator = MultiScaleDiscriminator(
            temporal_inputs, temporal_scales, discriminator_channels, discriminator_layers, False
        )
        self.perceptual = self._load_perceptual(perceptual_weights, weights["perceptual"])
        if self.perceptual is None:
            weights["perceptual"] = 0.0
        if not use_flow:  # nothing to supervise without a temporal flow and mask
            weights["flow"] = weights["warp"] = weights["mask"] = 0.0
        if not use_reference_warp:
            weights["reference_warp"] = weights["reference_flow"] = 0.0
        self.loss_weights = weights
        self.metrics = nn.ModuleDict({split: self._split_metrics() for split in ("val", *TEST_SPLITS)})
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _load_perceptual(path: str | None, weight: float) -> VGGFeatures | None:
        if weight == 0:
            return None
        if path is None or not Path(path).is_file():
            return None  # said when training starts (``setup``): loading for inference needs no notice
        return VGGFeatures(Path(path))

    @staticmethod
    def _split_metrics() -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
                "psnr_reference": PeakSignalNoiseRatio(data_range=1.0),
                "ssim_reference": StructuralSimilarityIndexMeasure(data_range=1.0),
                "psnr_face": PSNRFromMSE(),
                "psnr_face_reference": PSNRFromMSE(),
                "psnr_mouth": PSNRFromMSE(),
                "psnr_mouth_reference": PSNRFromMSE(),
                "l1": MeanMetric(),
                "warp_error": MeanMetric(),
                "warp_error_real": MeanMetric(),
                "flicker": MeanMetric(),
                "lmd": MeanMetric(nan_strategy="ignore"),
                "lmd_real": MeanMetric(nan_strategy="ignore"),
                "face_found": MeanMetric(),
            }
        )

    def setup(self, stage: str) -> None:
        """Say whether the perceptual loss is on, and refuse plain DDP, which cannot train this module: the
        generator and the critics step with separate backward passes, each leaving the other's parameters
        unused (``--trainer.strategy ddp_find_unused_parameters_true`` can)."""
        from lightning.pytorch.strategies import DDPStrategy

        if stage == "fit":
            weights_path = self.hparams.perceptual_weights
            rank_zero_info(
                f"Face2Vid: perceptual loss on, VGG19 weights from {weights_path}"
                if self.perceptual is not None
                else "Face2Vid: perceptual loss is OFF (no local VGG19 weights; set model.perceptual_weights "
                "to a torchvision VGG19 state dict on disk to use it; nothing is downloaded)"
            )
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters"):
            raise UsageError(
                "trainer.strategy",
                "Face2Vid trains two optimisers with separate backward passes: use "
                "ddp_find_unused_parameters_true (not ddp) for several devices",
            )

    # --- inputs ---------------------------------------------------------------------------------------

    def sketch(self, landmarks: Tensor) -> Tensor:
        """Landmarks [..., 68, 2] (pixels at ``image_size``) -> sketches [..., Cs, S, S]."""
        hp = self.hparams
        flat = rasterise_landmarks(landmarks.reshape(-1, NUM_LANDMARKS, 2), hp.image_size, hp.sketch_sigma)
        return flat.reshape(*landmarks.shape[:-2], *flat.shape[1:])

    def _prepare(
        self, batch: dict, flow_preset: str | None = None, reference_flow_preset: str | None = None
    ) -> _Clip:
        """Check, resize and draw a batch; with a DIS preset, also the classical flows the losses need."""
        hp = self.hparams
        names = [
            f"{s}/{u}@{int(t)}"
            for s, u, t in zip(batch["speaker"], batch["utterance"], batch["start"], strict=True)
        ]
        frames, landmarks = batch["frames"], batch["landmarks"]
        dims = check_shape(frames, "B L 3 S S", f"frames (batch {names})")
        check_shape(landmarks, f"B L {NUM_LANDMARKS} 2", f"landmarks (batch {names})", dims)
        for key in ("frames", "landmarks", "reference_frame", "reference_landmarks"):
            if not torch.isfinite(batch[key]).all():
                raise FloatingPointError(f"{key} holds NaN or inf values in the batch of {names}")
        frames, landmarks = resize_clip(frames, landmarks, hp.image_size)
        reference, reference_landmarks = resize_clip(
            batch["reference_frame"], batch["reference_landmarks"], hp.image_size
        )
        flows: dict[str, Tensor | None] = dict.fromkeys(
            ("flow", "flow_valid", "reference_flow", "reference_flow_valid")
        )
        if flow_preset is not None and frames.shape[1] > 1:
            flows["flow"], flows["flow_valid"] = _clip_flow(frames[:, 1:], frames[:, :-1], flow_preset)
        if reference_flow_preset is not None:
            sources = reference[:, None].expand_as(frames)
            flows["reference_flow"], flows["reference_flow_valid"] = _clip_flow(
                frames, sources, reference_flow_preset
            )
        return _Clip(
            frames=frames,
            landmarks=landmarks,
            sketches=self.sketch(landmarks),
            reference=reference,
            reference_landmarks=reference_landmarks,
            reference_sketch=self.sketch(reference_landmarks),
            mouth_box=mouth_box(landmarks, hp.image_size),
            names=names,
            **flows,
        )

    # --- the generator over time -----------------------------------------------------------------------

    def _start_history(
        self, reference: Tensor, reference_sketch: Tensor, reference_landmarks: Tensor
    ) -> _History:
        """Before the first frame of a video, the K previous frames are the reference."""
        k = self.hparams.num_previous
        return _History(
            reference[:, None].expand(-1, k, -1, -1, -1),
            reference_sketch[:, None].expand(-1, k, -1, -1, -1),
            reference_landmarks,
        )

    def _priors(
        self, landmarks: Tensor, reference_landmarks: Tensor, last_landmarks: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        """Landmark flows [B, T, 2, S, S] to every frame from the reference and from the frame before it
        (``last_landmarks`` [B, 68, 2] before the first); (None, None) without ``use_landmark_prior``."""
        hp = self.hparams
        if not hp.use_landmark_prior:
            return None, None
        b, size = len(landmarks), hp.image_size
        before = torch.cat([last_landmarks[:, None], landmarks[:, :-1]], 1)
        targets = _fold(landmarks)

        def flow_from(sources: Tensor) -> Tensor:
            flow = landmark_flow(targets, _fold(sources), size, hp.prior_sigma)
            return rearrange(flow, "(b t) ... -> b t ...", b=b)

        reference_prior = flow_from(reference_landmarks[:, None].expand_as(landmarks))
        return reference_prior, flow_from(before) if hp.use_flow else None

    def _unroll(
        self,
        sketches: Tensor,
        landmarks: Tensor,
        reference: Tensor,
        reference_sketch: Tensor,
        reference_landmarks: Tensor,
        history: _History,
        teacher: Tensor | None = None,
        teacher_mask: Tensor | None = None,
    ) -> GeneratorOutput:
        """Run the generator over T frames -> ``GeneratorOutput`` of [B, T, ...] tensors.

        Args:
            sketches, landmarks: [B, T, Cs, S, S], [B, T, 68, 2] of the frames to make.
            reference, reference_sketch, reference_landmarks: [B, 3, S, S], [B, Cs, S, S], [B, 68, 2].
            history: the frames before the first.
            teacher: [B, T, 3, S, S] real frames, or None (autoregressive: own frames only).
            teacher_mask: [B, T] bool, True where the real frame (not the generated one) becomes the previous
                frame of the frames after it. All True: teacher forcing, every frame in one batched call.
        """
        generator = self.generator
        b, t = sketches.shape[:2]
        reference_prior, previous_prior = self._priors(landmarks, reference_landmarks, history.last_landmarks)
        if not generator.use_flow or (teacher is not None and bool(teacher_mask.all())):
            previous = previous_sketches = None
            if generator.use_flow:
                k = self.hparams.num_previous
                previous = _fold(_windows(torch.cat([history.frames, teacher], 1), k)[:, :t])
                previous_sketches = _fold(_windows(torch.cat([history.sketches, sketches], 1), k)[:, :t])
            out = generator(
                _fold(sketches),
                _fold(reference[:, None].expand(-1, t, -1, -1, -1)),
                _fold(reference_sketch[:, None].expand(-1, t, -1, -1, -1)),
                previous,
                previous_sketches,
                None if reference_prior is None else _fold(reference_prior),
                None if previous_prior is None else _fold(previous_prior),
            )
            return out.map(lambda x: rearrange(x, "(b t) ... -> b t ...", b=b))
        outputs = []
        frames, frame_sketches = history.frames, history.sketches
        for step in range(t):
            out = generator(
                sketches[:, step],
                reference,
                reference_sketch,
                frames,
                frame_sketches,
                None if reference_prior is None else reference_prior[:, step],
                None if previous_prior is None else previous_prior[:, step],
            )
            outputs.append(out)
            shown = out.frame.detach()
            if teacher is not None:
                shown = torch.where(teacher_mask[:, step, None, None, None], teacher[:, step], shown)
            frames = torch.cat([frames[:, 1:], shown[:, None]], 1)
            frame_sketches = torch.cat([frame_sketches[:, 1:], sketches[:, step : step + 1]], 1)
        return GeneratorOutput.stack(outputs)

    def own_previous_probability(self, step: int) -> float:
        """Probability that a previous frame is the generator's own at training step ``step`` (batches)."""
        hp = self.hparams
        span = max(hp.own_previous_end - hp.own_previous_start, 1)
        return hp.own_previous_max * min(max((step - hp.own_previous_start) / span, 0.0), 1.0)

    @property
    def _batches_done(self) -> int:
        """Training batches done (the generator's scheduler steps once a batch; restored on resume)."""
        return self.lr_schedulers()[0].last_epoch

    @torch.no_grad()
    def rollout(
        self,
        landmarks: Tensor,
        reference_frame: Tensor,
        reference_landmarks: Tensor,
        previous: Tensor | None = None,
        previous_landmarks: Tensor | None = None,
    ) -> GeneratorOutput:
        """Autoregressive generation of a batch of videos, with every intermediate (flows, masks, ...).

        Args:
            landmarks: [B, T, 68, 2] driving landmarks, crop pixels at ``image_size``.
            reference_frame: [B, 3, S, S] in [0, 1], S = ``image_size``; reference_landmarks: [B, 68, 2].
            previous: [B, k, 3, S, S] frames just before the first (e.g. the end of the last chunk), oldest
                first; only the last K are used, and fewer than K are preceded by the reference frame, as at
                the start of a video, so generating in chunks gives the same frames as in one go.
            previous_landmarks: [B, k, 68, 2] their landmarks (required with ``previous``).
        Returns:
            ``GeneratorOutput`` of [B, T, ...] tensors; ``.frame`` is the video.
        """
        hp = self.hparams
        dims = check_shape(landmarks, f"B T {NUM_LANDMARKS} 2", "landmarks")
        if dims["T"] < 1:
            raise ValueError(f"landmarks hold no frame: {list(landmarks.shape)}")
        size = hp.image_size  # this model makes crops of that size: crop or resize the face to it
        check_shape(reference_frame, f"B 3 {size} {size}", f"reference_frame (of a {size}-px model)", dims)
        check_shape(reference_landmarks, f"B {NUM_LANDMARKS} 2", "reference_landmarks", dims)
        device = self.device
        reference = reference_frame.to(device, torch.float32)
        reference_landmarks, landmarks = reference_landmarks.to(device), landmarks.to(device)
        reference_sketch = self.sketch(reference_landmarks)
        history = self._start_history(reference, reference_sketch, reference_landmarks)
        if previous is not None:
            history = self._continue_history(history, previous, previous_landmarks)
        with eval_mode(self):
            return self._unroll(
                self.sketch(landmarks), landmarks, reference, reference_sketch, reference_landmarks, history
            )

    def _continue_history(
        self, history: _History, previous: Tensor, previous_landmarks: Tensor | None
    ) -> _History:
        """The last K of ``previous`` [B, k, 3, S, S] (landmarks [B, k, 68, 2]) become the history; with fewer
        than K, the reference stays in front, as at the start of a video."""
        k = self.hparams.num_previous
        frames = history.frames
        if previous_landmarks is None:
            raise ValueError("previous frames need their previous_landmarks [B, k, 68, 2]")
        dims = check_shape(previous, "B k 3 S S", "previous", {"B": len(frames), "S": frames.shape[-1]})
        check_shape(previous_landmarks, f"B k {NUM_LANDMARKS} 2", "previous_landmarks", dims)
        previous, previous_landmarks = previous[:, -k:].to(frames), previous_landmarks[:, -k:].to(frames)
        keep = k - previous.shape[1]
        return _History(
            torch.cat([frames[:, :keep], previous], 1),
            torch.cat([history.sketches[:, :keep], self.sketch(previous_landmarks)], 1),
            previous_landmarks[:, -1],
        )

    @torch.no_grad()
    def generate_sequence(
        self,
        landmarks: Tensor,
        reference_frame: Tensor,
        reference_landmarks: Tensor,
        previous: Tensor | None = None,
        previous_landmarks: Tensor | None = None,
        chunk_frames: int = 64,
    ) -> Tensor:
        """Frames of one video, autoregressive, on the module's device, in eval mode.

        Args:
            landmarks: [T, 68, 2] driving landmarks (crop pixels at ``image_size``).
            reference_frame: [3, S, S] in [0, 1]; reference_landmarks: [68, 2].
            previous / previous_landmarks: [k, 3, S, S] / [k, 68, 2] the frames before the first (to continue
                across chunk borders: pass the last K frames made and their landmarks), or None.
            chunk_frames: frames per internal chunk (bounds the memory of intermediates).
        Returns:
            frames [T, 3, S, S] in [0, 1], float32 on the module's device.
        """
        if check_shape(landmarks, f"T {NUM_LANDMARKS} 2", "landmarks")["T"] < 1:
            raise ValueError(f"landmarks hold no frame: {list(landmarks.shape)}")
        check_shape(reference_frame, "3 S S", "reference_frame")
        check_shape(reference_landmarks, f"{NUM_LANDMARKS} 2", "reference_landmarks")
        if previous is not None:
            if previous_landmarks is None:
                raise ValueError("previous frames need their previous_landmarks [k, 68, 2]")
            previous, previous_landmarks = previous[None], previous_landmarks[None]
        k = self.hparams.num_previous
        chunks = []
        for start in range(0, len(landmarks), chunk_frames):
            part = landmarks[None, start : start + chunk_frames]
            out = self.rollout(
                part, reference_frame[None], reference_landmarks[None], previous, previous_landmarks
            )
            chunks.append(out.frame[0])
            previous = out.frame if previous is None else torch.cat([previous.to(out.frame), out.frame], 1)
            previous_landmarks = (
                part if previous_landmarks is None else torch.cat([previous_landmarks.to(part), part], 1)
            )
            previous, previous_landmarks = previous[:, -k:], previous_landmarks[:, -k:]
        return torch.cat(chunks)

    def forward(self, *args, **kwargs) -> GeneratorOutput:
        """The generator for one frame (see ``Face2VidGenerator.forward``)."""
        return self.generator(*args, **kwargs)

    # --- training -------------------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp, weights = self.hparams, self.loss_weights
        need_flow = (weights["flow"] + weights["mask"] > 0) or (
            hp.temporal_with_flow and weights["temporal_adversarial"] > 0
        )
        clip = self._prepare(
            batch,
            TRAINING_FLOW_PRESET if need_flow else None,
            TRAINING_FLOW_PRESET if weights["reference_flow"] > 0 else None,
        )
        if clip.frames.shape[1] < hp.num_previous + 1:
            raise ValueError(
                f"training clips have {clip.frames.shape[1]} frames, fewer than K+1 = "
                f"{hp.num_previous + 1} (the temporal critic judges K+1 frames): set data.clip_length >= "
                f"{hp.num_previous + 1}"
            )
        generator_optimizer, discriminator_optimizer = self.optimizers()
        fake = self._generator_step(clip, generator_optimizer)
        if weights["adversarial"] + weights["temporal_adversarial"] > 0:
            self._discriminator_step(clip, fake, discriminator_optimizer)
        for scheduler in self.lr_schedulers():
            scheduler.step()

    def _generator_step(self, clip: _Clip, optimizer) -> GeneratorOutput:
        probability = self.own_previous_probability(self._batches_done)
        draws = torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + self._batches_done)
        teacher_mask = (torch.rand(clip.frames.shape[:2], generator=draws) >= probability).to(self.device)
        with self.toggled_optimizer(optimizer):
            fake = self._unroll(
                clip.sketches,
                clip.landmarks,
                clip.reference,
                clip.reference_sketch,
                clip.reference_landmarks,
                self._start_history(clip.reference, clip.reference_sketch, clip.reference_landmarks),
                clip.frames,
                teacher_mask,
            )
            losses = self._generator_losses(clip, fake)
            total = sum(self.loss_weights[name] * value for name, value in losses.items())
            self._step(optimizer, total, losses, clip, "generator")
        self._log_losses("generator", total, losses, len(clip.names))
        self.log("train/own_previous_probability", probability, on_step=True, on_epoch=False)
        return fake.map(Tensor.detach)

    def _discriminator_step(self, clip: _Clip, fake: GeneratorOutput, optimizer) -> None:
        weights, kind = self.loss_weights, self.hparams.gan_loss
        losses = {}
        with self.toggled_optimizer(optimizer):
            if weights["adversarial"] > 0:
                real_scores, fake_scores = self._image_scores(clip, clip.frames, fake.frame)
                losses["adversarial"] = discriminator_loss(real_scores, fake_scores, kind)
            if weights["temporal_adversarial"] > 0:
                real_scores, fake_scores = self._temporal_scores(clip, clip.frames, fake.frame)
                losses["temporal_adversarial"] = discriminator_loss(real_scores, fake_scores, kind)
            total = sum(weights[name] * value for name, value in losses.items())
            self._step(optimizer, total, losses, clip, "discriminator")
        self._log_losses("discriminator", total, losses, len(clip.names))

    def _step(self, optimizer, total: Tensor, losses: dict[str, Tensor], clip: _Clip, what: str) -> None:
        """Backward, check, clip and step; raise before the step if anything is not finite."""
        if not torch.isfinite(total):
            values = ", ".join(f"{name}={float(value.detach()):.4g}" for name, value in losses.items())
            raise FloatingPointError(
                f"non-finite {what} loss at step {self._batches_done} ({values}) in the batch of "
                f"{clip.names}; stopped before the optimiser step, the weights are untouched by it"
            )
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if not str(self.trainer.precision).startswith(
            "16"
        ):  # fp16's GradScaler skips overflowing steps itself
            grads = [
                p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
            ]
            if grads and not torch.isfinite(torch.stack([torch.linalg.vector_norm(g) for g in grads]).sum()):
                raise FloatingPointError(
                    f"non-finite {what} gradient at step {self._batches_done} in the batch of "
                    f"{clip.names}; stopped before the optimiser step"
                )
        if self.hparams.gradient_clip_val:
            self.clip_gradients(optimizer, self.hparams.gradient_clip_val, "norm")
        optimizer.step()

    def _log_losses(self, what: str, total: Tensor, losses: dict[str, Tensor], size: int) -> None:
        self.log(f"train/{what}_loss", total, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        for name, value in losses.items():
            self.log(f"train/{what}_{name}", value, on_step=True, on_epoch=True, batch_size=size)

    def _image_scores(self, clip: _Clip, real: Tensor, fake: Tensor) -> tuple[list, list]:
        """Image critic on (sketch, frame) pairs of every frame: scores of real and of generated frames."""
        sketches = _fold(clip.sketches)
        return (
            self.image_discriminator(torch.cat([sketches, _fold(real)], 1)),
            self.image_discriminator(torch.cat([sketches, _fold(fake)], 1)),
        )

    def _temporal_scores(self, clip: _Clip, real: Tensor, fake: Tensor) -> tuple[list, list]:
        """Temporal critic on every run of K+1 frames (with the real clip's flows when configured)."""
        length = self.hparams.num_previous + 1

        def clips(frames: Tensor) -> Tensor:
            x = rearrange(_windows(frames, length), "b n k c h w -> (b n) (k c) h w")
            if self.hparams.temporal_with_flow:
                flow = clip.flow / (self.hparams.image_size / 32)  # about unit scale, as the generator's
                x = torch.cat([x, rearrange(_windows(flow, length - 1), "b n k c h w -> (b n) (k c) h w")], 1)
            return x

        return self.temporal_discriminator(clips(real)), self.temporal_discriminator(clips(fake))

    def _generator_losses(self, clip: _Clip, fake: GeneratorOutput) -> dict[str, Tensor]:
        """Every loss with a positive weight, by name (see the module docstring)."""
        weights, kind, real = self.loss_weights, self.hparams.gan_loss, clip.frames
        losses: dict[str, Tensor] = {}
        matching = []
        if weights["adversarial"] > 0 or weights["feature_matching"] > 0:
            real_scores, fake_scores = self._image_scores(clip, real, fake.frame)
            losses["adversarial"] = generator_adversarial_loss(fake_scores, kind)
            matching.append(feature_matching_loss(fake_scores, real_scores))
        if weights["temporal_adversarial"] > 0 or weights["feature_matching"] > 0:
            real_scores, fake_scores = self._temporal_scores(clip, real, fake.frame)
            losses["temporal_adversarial"] = generator_adversarial_loss(fake_scores, kind)
            matching.append(feature_matching_loss(fake_scores, real_scores))
        if matching:
            losses["feature_matching"] = torch.stack(matching).mean()
        weight = 1.0 + (self.hparams.mouth_weight - 1.0) * clip.mouth_box.float()
        losses["l1"] = (weight * (fake.frame - real).abs()).mean()
        losses["hallucinated"] = (weight * (fake.hallucinated - real).abs()).mean()
        if self.perceptual is not None:
            losses["perceptual"] = self.perceptual(_fold(fake.frame).float(), _fold(real).float())
        if fake.flow is not None and clip.flow is not None:
            losses["flow"] = flow_loss(fake.flow[:, 1:], clip.flow, clip.flow_valid)
            losses["mask"] = (fake.mask[:, 1:] * (1 - clip.flow_valid)).mean()
        if fake.reference_flow is not None and clip.reference_flow is not None:
            losses["reference_flow"] = flow_loss(
                fake.reference_flow, clip.reference_flow, clip.reference_flow_valid
            )
        if fake.flow is not None:
            warped = warp(_fold(real[:, :-1]), _fold(fake.flow[:, 1:]))
            losses["warp"] = (warped - _fold(real[:, 1:])).abs().mean()
        if fake.warped_reference is not None:
            losses["reference_warp"] = (fake.warped_reference - real).abs().mean()
        return {name: value for name, value in losses.items() if weights[name] > 0}

    # --- evaluation -----------------------------------------------------------------------------------

    def _evaluate(self, batch: dict, split: str) -> None:
        clip = self._prepare(batch, METRIC_FLOW_PRESET)
        generated = self._unroll(
            clip.sketches,
            clip.landmarks,
            clip.reference,
            clip.reference_sketch,
            clip.reference_landmarks,
            self._start_history(clip.reference, clip.reference_sketch, clip.reference_landmarks),
        ).frame.float()
        real, size = clip.frames.float(), len(clip.names)
        metrics = self.metrics[split]
        copied = clip.reference[:, None].expand_as(real).float()
        metrics["psnr"].update(_fold(generated), _fold(real))
        metrics["ssim"].update(_fold(generated), _fold(real))
        metrics["psnr_reference"].update(_fold(copied), _fold(real))
        metrics["ssim_reference"].update(_fold(copied), _fold(real))
        metrics["l1"].update((generated - real).abs().mean(dim=(1, 2, 3, 4)))
        for region, inside in (
            ("face", face_region(clip.landmarks, self.hparams.image_size)),
            ("mouth", clip.mouth_box),
        ):
            inside = inside.expand_as(real)
            count = inside.sum(dim=(2, 3, 4))
            for name, frames in ((f"psnr_{region}", generated), (f"psnr_{region}_reference", copied)):
                error = ((frames - real).square() * inside).sum(dim=(2, 3, 4))
                metrics[name].update(error / count.clamp_min(1), count)
        if clip.flow is not None:
            error, count = temporal_warping_error(generated, clip.flow, clip.flow_valid)
            metrics["warp_error"].update(error, count)
            error, count = temporal_warping_error(real, clip.flow, clip.flow_valid)
            metrics["warp_error_real"].update(error, count)
            metrics["flicker"].update(frame_difference_energy(generated) - frame_difference_energy(real))
        every = self.hparams.lmd_every_n_epochs
        if split != "val" or (every > 0 and self.current_epoch % every == 0):
            lmd = mouth_lmd_on_frames(_fold(generated), _fold(clip.landmarks))
            metrics["lmd"].update(lmd)
            metrics["face_found"].update(torch.isfinite(lmd).float())
            metrics["lmd_real"].update(mouth_lmd_on_frames(_fold(real), _fold(clip.landmarks)))
        for name, metric in metrics.items():
            if metric.update_called:
                self.log(f"{split}/{name}", metric, on_epoch=True, batch_size=size, add_dataloader_idx=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, list(TEST_SPLITS)[dataloader_idx])

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Autoregressive frames [B, L, 3, S, S] for a stage-2 batch, with the batch's names."""
        clip = self._prepare(batch, None)
        frames = self.rollout(clip.landmarks, clip.reference, clip.reference_landmarks).frame
        return {"frames": frames, "speaker": batch["speaker"], "utterance": batch["utterance"]}

    # --- optimisation ---------------------------------------------------------------------------------

    def configure_optimizers(self):
        hp = self.hparams
        betas = (hp.beta1, 0.999)
        generator = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_generator, betas=betas)
        critics = [*self.image_discriminator.parameters(), *self.temporal_discriminator.parameters()]
        discriminator = torch.optim.Adam(critics, lr=hp.lr_discriminator, betas=betas)
        total = self.trainer.estimated_stepping_batches
        if hp.lr_schedule == "linear_decay" and not math.isfinite(total):
            raise ValueError("lr_schedule linear_decay needs a finite run (trainer.max_epochs or max_steps)")
        decay_start = hp.decay_start_fraction * total if hp.lr_schedule == "linear_decay" else math.inf

        def factor(step: int) -> float:  # constant, then linear to 0 from decay_start
            if step < decay_start:
                return 1.0
            return max(0.0, 1.0 - (step - decay_start) / max(total - decay_start, 1.0))

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (generator, discriminator)]
        return [generator, discriminator], [{"scheduler": s, "interval": "step"} for s in schedulers]
