"""Stage 1 as a LightningModule: losses, modality dropout, per-mode metrics and optimiser.

The networks live in ``lightning_modules.networks.landmark_net`` and inference in ``landmark_inference``;
this file owns only training logic.
Batches follow the stage-1 contract of ``datamodules.datasets.collate_sequences``:
``audio_features`` [B, 4T, 80], ``phoneme_ids`` [B, T], ``mouth`` [B, T, 20, 2] (face-normalised),
``mouth_reference`` [B, 20, 2], ``mask`` [B, T], ``lengths`` [B], ``pixels_per_unit`` [B].

One checkpoint serves three input modes: ``audio`` only, ``text`` only (frame phonemes; from a duration
predictor trained here, from TTS timings or from a forced aligner, see ``text_timing``) and ``both``.
"""

from __future__ import annotations

import math
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from talking_face.datamodules import timebase
from talking_face.datamodules.datamodule import TEST_SPLITS
from talking_face.datamodules.faces.landmark_scheme import NUM_MOUTH
from talking_face.datamodules.phonemes import PAD_ID, VOCAB
from talking_face.lightning_modules.landmark_inference import LandmarkPrediction, MouthPredictor
from talking_face.lightning_modules.metrics import LandmarkVelocityError, MouthLandmarkDistance
from talking_face.lightning_modules.networks.landmark_net import (
    augment_log_mel,
    lengths_to_mask,
    run_length_encode,
)
from talking_face.lightning_modules.phone_noise import corrupt_phonemes

__all__ = ["EVAL_MODES", "INPUT_MODES", "LandmarkModule"]

INPUT_MODES = ("audio", "text", "both")
"""The model's input modes; all three are served by one checkpoint."""

EVAL_MODES = (*INPUT_MODES, "text_durations", "reference", "mean_mouth")
"""What validation/test measure: the three modes (text on the corpus' own alignment), text on frames placed
by the duration predictor (rescaled to the true length), and two baselines: the neutral mouth and the
neutral mouth plus the training set's mean displacement."""


def masked_position_loss(preds: Tensor, target: Tensor, mask: Tensor, kind: Literal["l1", "l2"]) -> Tensor:
    """Mean L1 or squared error over real frames, points and coordinates. preds/target [B, T, P, 2]."""
    error = (preds - target).abs() if kind == "l1" else (preds - target) ** 2
    weight = mask[..., None, None].to(error.dtype)
    return (error * weight).sum() / (weight.sum() * error.shape[-2] * error.shape[-1]).clamp_min(1.0)


def masked_velocity_loss(preds: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean L1 error of frame-to-frame velocity where both frames are real. preds/target [B, T, P, 2]."""
    pair = mask[:, 1:] & mask[:, :-1]
    return masked_position_loss(preds.diff(dim=1), target.diff(dim=1), pair, "l1")


def sample_modes(
    batch: int, audio_only_prob: float, text_only_prob: float, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Modality dropout: per sample, audio only / text only / both with the given probabilities.

    Returns use_audio, use_text bool [B]; never both False.
    """
    draw = torch.rand(batch, device=device)
    audio_only = draw < audio_only_prob
    text_only = (draw >= audio_only_prob) & (draw < audio_only_prob + text_only_prob)
    return ~text_only, ~audio_only


class LandmarkModule(L.LightningModule):
    """Multimodal mouth-landmark prediction (stage 1).

    Args:
        num_phonemes: phoneme vocabulary size (``datamodules.phonemes.VOCAB``).
        hidden_size: width of encoders, fusion and temporal model.
        audio_blocks: residual conv blocks of the audio encoder at the frame rate.
        text_blocks: residual conv blocks of the text encoder.
        gru_layers: bidirectional GRU layers of the temporal model.
        attention_layers: self-attention blocks after the GRU (0: recurrent only).
        attention_heads: heads per attention block.
        dropout: dropout inside the networks.
        condition_on_reference: let the net see the speaker's neutral mouth (shape and size).
        duration_hidden_size: width of the duration predictor.
        duration_blocks: conv blocks of the duration predictor.
        audio_only_prob: modality dropout, fraction of training samples that see audio only.
        text_only_prob: modality dropout, fraction of training samples that see text only.
        position_loss: ``l1`` or ``l2`` on landmark positions.
        velocity_weight: weight of the L1 loss on frame-to-frame velocity (temporal smoothness).
        duration_weight: weight of the duration predictor's loss (MSE of log(1 + frames)).
        augment_prob: fraction of training utterances given a random level, microphone colour and
            background noise (``augment_log_mel``), so the model carries to real recordings.
        text_noise_prob: fraction of the training utterances that see audio and text whose phones get
            recognition-like errors (``phone_noise.corrupt_phonemes``): inference without a transcript reads
            recognised phones, about 12 % of them wrong. 0 = exact phones always (measured better on real
            speech, see ``phone_noise``).
        phone_substitution: per-phone probability of a wrong phone in those utterances.
        phone_deletion: per-phone probability of a missing phone in those utterances.
        boundary_jitter: largest shift of a phone boundary in those utterances, in frames.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not on biases, norms, embeddings).
        lr_schedule: ``onecycle``, ``cosine`` (linear warm-up, cosine decay, per step) or ``constant``.
        warmup_fraction: fraction of the steps spent warming up.
    """

    def __init__(
        self,
        num_phonemes: int = len(VOCAB),
        hidden_size: int = 128,
        audio_blocks: int = 2,
        text_blocks: int = 2,
        gru_layers: int = 1,
        attention_layers: int = 2,
        attention_heads: int = 4,
        dropout: float = 0.1,
        condition_on_reference: bool = True,
        duration_hidden_size: int = 64,
        duration_blocks: int = 3,
        audio_only_prob: float = 0.3,
        text_only_prob: float = 0.3,
        position_loss: Literal["l1", "l2"] = "l1",
        velocity_weight: float = 1.0,
        duration_weight: float = 0.1,
        augment_prob: float = 0.5,
        text_noise_prob: float = 0.0,
        phone_substitution: float = 0.07,
        phone_deletion: float = 0.04,
        boundary_jitter: int = 2,
        lr: float = 2e-3,
        weight_decay: float = 0.01,
        lr_schedule: Literal["onecycle", "cosine", "constant"] = "onecycle",
        warmup_fraction: float = 0.05,
    ) -> None:
        super().__init__()
        for name, value in (
            ("audio_only_prob", audio_only_prob),
            ("text_only_prob", text_only_prob),
            ("augment_prob", augment_prob),
            ("text_noise_prob", text_noise_prob),
            ("phone_substitution", phone_substitution),
            ("phone_deletion", phone_deletion),
            ("warmup_fraction", warmup_fraction),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if audio_only_prob + text_only_prob > 1.0:
            raise ValueError(
                f"audio_only_prob + text_only_prob must be <= 1, got {audio_only_prob} + {text_only_prob}"
            )
        self.save_hyperparameters()
        networks = MouthPredictor.from_hparams(self.hparams)
        self.net, self.durations = networks.net, networks.durations
        # running mean of (mouth - mouth_reference) over training frames: the "mean mouth" baseline
        self.register_buffer("mean_displacement", torch.zeros(NUM_MOUTH, 2))
        self.register_buffer("displacement_count", torch.zeros(()))
        self.metrics = nn.ModuleDict(
            {
                split: nn.ModuleDict(
                    {
                        f"{kind}_{mode}": metric()
                        for mode in EVAL_MODES
                        for kind, metric in (
                            ("lmd", MouthLandmarkDistance),
                            ("velocity", LandmarkVelocityError),
                        )
                    }
                )
                for split in ("val", *TEST_SPLITS)
            }
        )

    # --- the model ------------------------------------------------------------------------------

    def forward(
        self,
        mouth_reference: Tensor,
        lengths: Tensor,
        audio_features: Tensor | None = None,
        phoneme_ids: Tensor | None = None,
        use_audio: Tensor | None = None,
        use_text: Tensor | None = None,
    ) -> Tensor:
        """Mouth landmarks [B, T, 20, 2]; see ``LandmarkNet.forward`` for the inputs."""
        return self.net(mouth_reference, lengths, audio_features, phoneme_ids, use_audio, use_text)

    def predictor(self) -> MouthPredictor:
        """This model's networks for inference (``landmark_inference.MouthPredictor``)."""
        return MouthPredictor(self.net, self.durations)

    def place_phonemes(self, tokens: Tensor, token_lengths: Tensor, num_frames: Tensor | None = None):
        """See ``MouthPredictor.place_phonemes``."""
        return self.predictor().place_phonemes(tokens, token_lengths, num_frames)

    def predict(self, **inputs) -> LandmarkPrediction:
        """See ``MouthPredictor.predict``."""
        return self.predictor().predict(**inputs)

    # --- training -------------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        hp = self.hparams
        features, mask, lengths = batch["audio_features"], batch["mask"], batch["lengths"]
        size = len(lengths)
        if hp.augment_prob > 0:
            step_mask = mask.repeat_interleave(timebase.STEPS_PER_FRAME, dim=1)
            chosen = torch.rand(size, device=self.device) < hp.augment_prob
            features = torch.where(chosen[:, None, None], augment_log_mel(features, step_mask), features)
        use_audio, use_text = sample_modes(size, hp.audio_only_prob, hp.text_only_prob, self.device)
        phoneme_ids = batch["phoneme_ids"]
        if hp.text_noise_prob > 0:
            noisy = corrupt_phonemes(
                phoneme_ids, lengths, hp.phone_substitution, hp.phone_deletion, hp.boundary_jitter
            )
            chosen = (torch.rand(size, device=self.device) < hp.text_noise_prob) & use_audio & use_text
            phoneme_ids = torch.where(chosen[:, None], noisy, phoneme_ids)
        preds = self(batch["mouth_reference"], lengths, features, phoneme_ids, use_audio, use_text)
        losses = self._losses(preds, batch)
        losses["duration"] = self._duration_loss(batch["phoneme_ids"], lengths)
        losses["loss"] = losses["loss"] + hp.duration_weight * losses["duration"]
        self._update_mean_displacement(batch)
        for name, value in losses.items():
            self.log(
                f"train/{name}",
                value,
                on_step=True,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=size,
                sync_dist=True,
            )
        return losses["loss"]

    def _losses(self, preds: Tensor, batch: dict) -> dict[str, Tensor]:
        hp = self.hparams
        position = masked_position_loss(preds, batch["mouth"], batch["mask"], hp.position_loss)
        velocity = masked_velocity_loss(preds, batch["mouth"], batch["mask"])
        return {"loss": position + hp.velocity_weight * velocity, "position": position, "velocity": velocity}

    def _duration_loss(self, phoneme_ids: Tensor, lengths: Tensor) -> Tensor:
        tokens, durations, token_lengths = run_length_encode(phoneme_ids, lengths)
        token_mask = lengths_to_mask(token_lengths, tokens.shape[1])
        error = (self.durations(tokens, token_lengths) - torch.log1p(durations.float())) ** 2
        return (error * token_mask).sum() / token_mask.sum().clamp_min(1)

    @torch.no_grad()
    def _update_mean_displacement(self, batch: dict) -> None:
        weight = batch["mask"][..., None, None].float()
        displacement = (batch["mouth"] - batch["mouth_reference"][:, None]) * weight
        count = weight.sum()
        if count > 0:
            self.displacement_count += count
            batch_mean = displacement.sum(dim=(0, 1)) / count
            self.mean_displacement += (batch_mean - self.mean_displacement) * (
                count / self.displacement_count
            )

    # --- evaluation -----------------------------------------------------------------------------

    def predict_modes(self, batch: dict) -> dict[str, Tensor]:
        """Mouth [B, T, 20, 2] for every entry of ``EVAL_MODES`` on a stage-1 batch."""
        reference, lengths = batch["mouth_reference"], batch["lengths"]
        features, phoneme_ids = batch["audio_features"], batch["phoneme_ids"]
        frames = phoneme_ids.shape[1]
        tokens, _, token_lengths = run_length_encode(phoneme_ids, lengths)
        placed, _ = self.place_phonemes(tokens, token_lengths, num_frames=lengths)
        placed = F.pad(placed, (0, frames - placed.shape[1]), value=PAD_ID)
        constant = reference[:, None].expand(-1, frames, -1, -1)
        return {
            "audio": self(reference, lengths, audio_features=features),
            "text": self(reference, lengths, phoneme_ids=phoneme_ids),
            "both": self(reference, lengths, features, phoneme_ids),
            "text_durations": self(reference, lengths, phoneme_ids=placed),
            "reference": constant,
            "mean_mouth": constant + self.mean_displacement,
        }

    def _evaluate(self, batch: dict, split: str) -> None:
        preds = self.predict_modes(batch)
        size = len(batch["lengths"])
        losses = self._losses(preds["both"], batch)
        self.log(f"{split}/loss", losses["loss"], batch_size=size, sync_dist=True, add_dataloader_idx=False)
        tokens, durations, token_lengths = run_length_encode(batch["phoneme_ids"], batch["lengths"])
        token_mask = lengths_to_mask(token_lengths, tokens.shape[1])
        duration_error = (self.durations.frames(tokens, token_lengths) - durations).abs()
        self.log(
            f"{split}/duration_mae_frames",
            (duration_error * token_mask).sum() / token_mask.sum(),
            batch_size=size,
            sync_dist=True,
            add_dataloader_idx=False,
        )
        metrics = self.metrics[split]
        for mode, pred in preds.items():
            for kind in ("lmd", "velocity"):
                metric = metrics[f"{kind}_{mode}"]
                metric.update(pred, batch["mouth"], batch["mask"], batch["pixels_per_unit"])
                self.log(
                    f"{split}/{kind}_{mode}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    batch_size=size,
                    add_dataloader_idx=False,
                )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, list(TEST_SPLITS)[dataloader_idx])

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """The three input modes on a stage-1 batch: {mode: mouth [B, T, 20, 2]} plus lengths and names."""
        preds = self.predict_modes(batch)
        return {
            **{mode: preds[mode] for mode in INPUT_MODES},
            "lengths": batch["lengths"],
            "speaker": batch["speaker"],
            "utterance": batch["utterance"],
        }

    # --- optimisation ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "embedding" not in n]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2 or "embedding" in n]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.lr,
        )
        if hp.lr_schedule == "constant":
            return {"optimizer": optimizer}
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                f"lr_schedule {hp.lr_schedule!r} needs a finite run (set trainer.max_epochs "
                "or max_steps), or use lr_schedule: constant"
            )
        total = max(int(total), 1)
        if hp.lr_schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=hp.lr, total_steps=total, pct_start=max(hp.warmup_fraction, 1e-3)
            )
        else:
            warmup = max(int(hp.warmup_fraction * total), 1)

            def warmup_cosine(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                return 0.5 * (
                    1.0 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1))
                )

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
