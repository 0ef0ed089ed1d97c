"""Stage 1 at inference, without Lightning: mouth landmarks from audio and/or text with the trained networks.

    predictor = MouthPredictor(landmark_net, duration_predictor)   # or LandmarkModule(...).predictor()
    prediction = predictor.predict(mouth_reference=..., audio_features=..., phoneme_tokens=...)

Any input mode: audio, text (timed per frame, or untimed tokens placed by the duration predictor) or both.
Long inputs run in overlapping, cross-faded windows, so memory stays bounded for minutes of speech.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from talking_face.datamodules import timebase
from talking_face.datamodules.phonemes import PAD_ID
from talking_face.lightning_modules.eval_mode import eval_mode
from talking_face.lightning_modules.networks.landmark_net import (
    DurationPredictor,
    LandmarkNet,
    length_regulate,
    lengths_to_mask,
)

__all__ = ["LandmarkPrediction", "MouthPredictor"]


@dataclass(frozen=True)
class LandmarkPrediction:
    """Result of ``MouthPredictor.predict``.

    mouth [B, T, 20, 2] face-normalised (the reference beyond each length); lengths [B] frames;
    phoneme_ids [B, T] the frame phonemes used (placed by the duration predictor when tokens were given),
    None in audio mode; mode: "audio", "text" or "both".
    """

    mouth: Tensor
    lengths: Tensor
    phoneme_ids: Tensor | None
    mode: str


@dataclass(frozen=True)
class MouthPredictor:
    """Stage 1's networks: the landmark network and the duration predictor that places untimed phonemes."""

    net: LandmarkNet
    durations: DurationPredictor

    @classmethod
    def from_hparams(cls, hp: Mapping) -> MouthPredictor:
        """Untrained networks shaped by a ``LandmarkModule``'s hyperparameters (a checkpoint's, say)."""
        net = LandmarkNet(
            hp["num_phonemes"],
            hp["hidden_size"],
            hp["audio_blocks"],
            hp["text_blocks"],
            hp["gru_layers"],
            hp["attention_layers"],
            hp["attention_heads"],
            hp["dropout"],
            hp["condition_on_reference"],
        )
        durations = DurationPredictor(
            hp["num_phonemes"], hp["duration_hidden_size"], hp["duration_blocks"], hp["dropout"]
        )
        return cls(net, durations)

    def to(self, device: str | torch.device) -> MouthPredictor:
        return MouthPredictor(self.net.to(device), self.durations.to(device))

    def place_phonemes(
        self, tokens: Tensor, token_lengths: Tensor, num_frames: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Phoneme tokens [B, N] -> frame ids [B, T] and lengths [B] with the duration predictor.

        ``num_frames`` [B] rescales each row to that length (e.g. the length of given audio).
        """
        frames = self.durations.frames(tokens, token_lengths)
        return length_regulate(tokens, frames, token_lengths, num_frames)

    @torch.no_grad()
    def predict(
        self,
        *,
        mouth_reference: Tensor,
        audio_features: Tensor | None = None,
        phoneme_ids: Tensor | None = None,
        phoneme_tokens: Tensor | None = None,
        token_lengths: Tensor | None = None,
        lengths: Tensor | None = None,
        window_frames: int | None = 300,
        overlap_frames: int = 50,
    ) -> LandmarkPrediction:
        """Inference in any input mode, in eval mode, on the networks' device.

        Long inputs run in overlapping windows of ``window_frames`` (None: in one pass), cross-faded over
        ``overlap_frames``: memory stays bounded for minutes of speech (attention is quadratic in length)
        and each window is about as long as the training crops.

        Args:
            mouth_reference: [B, 20, 2] the person's neutral mouth, face-normalised.
            audio_features: [B, 4T, 80] log-mel (``datamodules.audio_features.log_mel``), or None.
            phoneme_ids: [B, T] phoneme id per frame (from TTS timings or a forced aligner), or None.
            phoneme_tokens: [B, N] phoneme sequence without timing (instead of ``phoneme_ids``): placed on
                frames by the duration predictor, rescaled to the audio's length when audio is given.
            token_lengths: [B] tokens per row (default: the non-pad tokens).
            lengths: [B] real frames per row (default: all frames given).
            window_frames: frames per window for long inputs, None for one pass.
            overlap_frames: frames shared by consecutive windows (linear cross-fade).
        Returns:
            ``LandmarkPrediction`` with mouth [B, T, 20, 2].
        """
        if phoneme_ids is not None and phoneme_tokens is not None:
            raise ValueError("give phoneme_ids (timed, per frame) or phoneme_tokens (untimed), not both")
        device = next(self.net.parameters()).device
        audio_features, phoneme_ids, phoneme_tokens, token_lengths, lengths = (
            None if x is None else x.to(device)
            for x in (audio_features, phoneme_ids, phoneme_tokens, token_lengths, lengths)
        )
        audio_frames = None if audio_features is None else audio_features.shape[1] // timebase.STEPS_PER_FRAME
        if audio_frames == 0:
            raise ValueError(f"zero-length audio: audio_features has shape {tuple(audio_features.shape)}")
        if lengths is None and audio_frames is not None:
            lengths = torch.full((audio_features.shape[0],), audio_frames, device=device)
        with eval_mode(self.net), eval_mode(self.durations):
            if phoneme_tokens is not None:
                if phoneme_tokens.ndim != 2 or phoneme_tokens.shape[1] == 0:
                    raise ValueError(
                        f"empty phoneme sequence: phoneme_tokens has shape "
                        f"{tuple(phoneme_tokens.shape)}, expected [B, N > 0]"
                    )
                if token_lengths is None:
                    token_lengths = (phoneme_tokens != PAD_ID).sum(dim=1)
                phoneme_ids, placed = self.place_phonemes(phoneme_tokens, token_lengths, lengths)
                lengths = placed if lengths is None else lengths
                if audio_frames is not None:
                    phoneme_ids = F.pad(phoneme_ids, (0, audio_frames - phoneme_ids.shape[1]), value=PAD_ID)
            if lengths is None and phoneme_ids is not None:
                lengths = torch.full((phoneme_ids.shape[0],), phoneme_ids.shape[1], device=device)
            if lengths is None:
                raise ValueError("no input modality: give audio_features and/or phoneme ids/tokens")
            mouth = self._forward_in_windows(
                mouth_reference.to(device),
                lengths,
                audio_features,
                phoneme_ids,
                window_frames,
                overlap_frames,
            )
        mode = "text" if audio_features is None else "audio" if phoneme_ids is None else "both"
        return LandmarkPrediction(mouth, lengths, phoneme_ids, mode)

    def _forward_in_windows(
        self,
        reference: Tensor,
        lengths: Tensor,
        audio_features: Tensor | None,
        phoneme_ids: Tensor | None,
        window: int | None,
        overlap: int,
    ) -> Tensor:
        """The network over windows [s, s + window) every ``window - overlap`` frames, cross-faded.

        Each frame's output is the ramp-weighted mean of the windows covering it; rows are run only in the
        windows holding some of their frames, and padded frames are the reference mouth.
        """
        frames = (
            phoneme_ids.shape[1]
            if phoneme_ids is not None
            else audio_features.shape[1] // timebase.STEPS_PER_FRAME
        )
        if window is None or frames <= window:
            return self.net(reference, lengths, audio_features, phoneme_ids)
        if not 0 <= overlap < window:
            raise ValueError(f"need 0 <= overlap_frames < window_frames, got {overlap}, {window}")
        steps = timebase.STEPS_PER_FRAME
        total = reference[:, None].new_zeros(len(lengths), frames, *reference.shape[1:])
        weight = total.new_zeros(len(lengths), frames)
        for start in range(0, frames - overlap, window - overlap):
            stop = min(start + window, frames)
            inside = (lengths - start).clamp(0, stop - start)
            rows = inside > 0
            if not rows.any():
                break
            out = self.net(
                reference[rows],
                inside[rows],
                None if audio_features is None else audio_features[rows, start * steps : stop * steps],
                None if phoneme_ids is None else phoneme_ids[rows, start:stop],
            )
            ramp = total.new_ones(stop - start)
            fade = torch.linspace(0.0, 1.0, overlap + 2, device=ramp.device)[1:-1]
            if overlap and start > 0:
                ramp[:overlap] = fade
            if overlap and stop < frames:
                ramp[-overlap:] = fade.flip(0)
            total[rows, start:stop] += out * ramp[:, None, None]
            weight[rows, start:stop] += ramp
        mask = lengths_to_mask(lengths, frames)[..., None, None]
        mean = total / weight.clamp_min(1e-12)[..., None, None]
        return torch.where(mask, mean, reference[:, None].expand_as(mean))
