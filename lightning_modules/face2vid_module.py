"""Stage 2 as a LightningModule: the Face2Vid GAN's training (manual optimisation), evaluation and optimisers.

Around it, one job a file: the networks in ``networks/`` (generator, critics, attention, rasteriser, warp);
the generator over time in ``rollout.FrameRollout`` (shared with the product and the callbacks); batches made
ready in ``face2vid_clips``; losses and their weights in ``face2vid_losses``; metrics in ``face2vid_scores``.

**Previous frames.** Training starts with the *real* previous frames (teacher forcing: every frame of a clip
is made in one batched call) and moves to the generator's *own* previous frames, made one after the other
and detached, as at inference: at step s (batches), each clip frame is replaced by its generated version
with probability
``own_previous_max * clamp((s - own_previous_start) / (own_previous_end - own_previous_start), 0, 1)``.
The draws come from a generator seeded by (``seed``, step), so a resumed run makes the same draws.
Validation, test and prediction are always autoregressive.

**Safety.** A NaN in a batch, or a non-finite loss or gradient, raises ``FloatingPointError`` naming the
batch's utterances before the optimiser step that would use it. Since the generator loss contains the
critics' outputs on real and generated frames, a finite generator loss also vouches for the critic's
loss: a broken batch stops before any step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from einops import rearrange
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from talking_face.datamodules.datamodule import TEST_SPLITS
from talking_face.errors import UsageError
from talking_face.lightning_modules import face2vid_losses
from talking_face.lightning_modules.face2vid_clips import Clip, prepare_clip
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
)
from talking_face.lightning_modules.face2vid_scores import Face2VidScores
from talking_face.lightning_modules.networks.discriminator import MultiScaleDiscriminator
from talking_face.lightning_modules.networks.generator import GeneratorOutput
from talking_face.lightning_modules.networks.rasterise import SKETCH_CHANNELS
from talking_face.lightning_modules.networks.warp import warp
from talking_face.lightning_modules.rollout import FrameRollout, build_generator, fold, windows

__all__ = ["Face2VidModule"]


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
        loss_weights: weights by loss name over ``face2vid_losses.DEFAULT_LOSS_WEIGHTS`` (0 switches one off).
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
        weights = face2vid_losses.loss_weights(loss_weights)
        if image_size % 8 or image_size < 16:
            raise ValueError(f"image_size must be a multiple of 8 and >= 16, got {image_size}")
        if not 0.0 <= own_previous_max <= 1.0:
            raise ValueError(f"own_previous_max must lie in [0, 1], got {own_previous_max}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = build_generator(self.hparams)
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
        self.metrics = nn.ModuleDict({split: Face2VidScores() for split in ("val", *TEST_SPLITS)})
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _load_perceptual(path: str | None, weight: float) -> VGGFeatures | None:
        if weight == 0:
            return None
        if path is None or not Path(path).is_file():
            return None  # said when training starts (``setup``): loading for inference needs no notice
        return VGGFeatures(Path(path))

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

    def frame_rollout(self, max_temporal_mask: float = 1.0) -> FrameRollout:
        """This model's generator over time (``rollout.FrameRollout``), in the mode the module is in."""
        return FrameRollout.from_module(self, max_temporal_mask)

    def _prepare(self, batch: dict, flow: str | None = None, reference_flow: str | None = None) -> Clip:
        """The batch made ready (``face2vid_clips``), with classical flows at the DIS presets given."""
        sketch = self.frame_rollout().sketch
        return prepare_clip(batch, self.hparams.image_size, sketch, flow, reference_flow)

    def own_previous_probability(self, step: int) -> float:
        """Probability that a previous frame is the generator's own at training step ``step`` (batches)."""
        hp = self.hparams
        span = max(hp.own_previous_end - hp.own_previous_start, 1)
        return hp.own_previous_max * min(max((step - hp.own_previous_start) / span, 0.0), 1.0)

    @property
    def _batches_done(self) -> int:
        """Training batches done (the generator's scheduler steps once a batch; restored on resume)."""
        return self.lr_schedulers()[0].last_epoch

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

    def _generator_step(self, clip: Clip, optimizer) -> GeneratorOutput:
        probability = self.own_previous_probability(self._batches_done)
        draws = torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + self._batches_done)
        teacher_mask = (torch.rand(clip.frames.shape[:2], generator=draws) >= probability).to(self.device)
        with self.toggled_optimizer(optimizer):
            rollout = self.frame_rollout().start(clip.reference, clip.reference_landmarks)
            fake = rollout.unroll(clip.landmarks, clip.frames, teacher_mask)
            losses = self._generator_losses(clip, fake)
            total = sum(self.loss_weights[name] * value for name, value in losses.items())
            self._step(optimizer, total, losses, clip, "generator")
        self._log_losses("generator", total, losses, len(clip.names))
        self.log("train/own_previous_probability", probability, on_step=True, on_epoch=False)
        return fake.map(Tensor.detach)

    def _discriminator_step(self, clip: Clip, fake: GeneratorOutput, optimizer) -> None:
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

    def _step(self, optimizer, total: Tensor, losses: dict[str, Tensor], clip: Clip, what: str) -> None:
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

    def _image_scores(self, clip: Clip, real: Tensor, fake: Tensor) -> tuple[list, list]:
        """Image critic on (sketch, frame) pairs of every frame: scores of real and of generated frames."""
        sketches = fold(clip.sketches)
        return (
            self.image_discriminator(torch.cat([sketches, fold(real)], 1)),
            self.image_discriminator(torch.cat([sketches, fold(fake)], 1)),
        )

    def _temporal_scores(self, clip: Clip, real: Tensor, fake: Tensor) -> tuple[list, list]:
        """Temporal critic on every run of K+1 frames (with the real clip's flows when configured)."""
        length = self.hparams.num_previous + 1

        def clips(frames: Tensor) -> Tensor:
            x = rearrange(windows(frames, length), "b n k c h w -> (b n) (k c) h w")
            if self.hparams.temporal_with_flow:
                flow = clip.flow / (self.hparams.image_size / 32)  # about unit scale, as the generator's
                x = torch.cat([x, rearrange(windows(flow, length - 1), "b n k c h w -> (b n) (k c) h w")], 1)
            return x

        return self.temporal_discriminator(clips(real)), self.temporal_discriminator(clips(fake))

    def _generator_losses(self, clip: Clip, fake: GeneratorOutput) -> dict[str, Tensor]:
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
            losses["perceptual"] = self.perceptual(fold(fake.frame).float(), fold(real).float())
        if fake.flow is not None and clip.flow is not None:
            losses["flow"] = flow_loss(fake.flow[:, 1:], clip.flow, clip.flow_valid)
            losses["mask"] = (fake.mask[:, 1:] * (1 - clip.flow_valid)).mean()
        if fake.reference_flow is not None and clip.reference_flow is not None:
            losses["reference_flow"] = flow_loss(
                fake.reference_flow, clip.reference_flow, clip.reference_flow_valid
            )
        if fake.flow is not None:
            warped = warp(fold(real[:, :-1]), fold(fake.flow[:, 1:]))
            losses["warp"] = (warped - fold(real[:, 1:])).abs().mean()
        if fake.warped_reference is not None:
            losses["reference_warp"] = (fake.warped_reference - real).abs().mean()
        return {name: value for name, value in losses.items() if weights[name] > 0}

    # --- evaluation -----------------------------------------------------------------------------------

    def _evaluate(self, batch: dict, split: str) -> None:
        clip = self._prepare(batch, METRIC_FLOW_PRESET)
        rollout = self.frame_rollout().start(clip.reference, clip.reference_landmarks)
        every = self.hparams.lmd_every_n_epochs
        detector = split != "val" or (every > 0 and self.current_epoch % every == 0)
        self.metrics[split].score(clip, rollout.unroll(clip.landmarks).frame, detector)
        for name, metric in self.metrics[split].items():
            if metric.update_called:
                self.log(
                    f"{split}/{name}",
                    metric,
                    on_epoch=True,
                    batch_size=len(clip.names),
                    add_dataloader_idx=False,
                )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, list(TEST_SPLITS)[dataloader_idx])

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Autoregressive frames [B, L, 3, S, S] for a stage-2 batch, with the batch's names."""
        clip = self._prepare(batch)
        frames = (
            self.frame_rollout().start(clip.reference, clip.reference_landmarks).unroll(clip.landmarks).frame
        )
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
