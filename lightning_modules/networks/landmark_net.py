"""Stage-1 networks: audio and/or frame phonemes -> 20 mouth landmarks per video frame, plus durations.

Plain ``nn.Module``s (no Lightning). Conventions shared by everything here:

- T video frames at ``timebase.FPS``; the audio features have ``STEPS_PER_FRAME`` (4) log-mel steps per
  frame, so ``audio_features`` is [B, 4T, 80] and frame f owns steps 4f .. 4f+3.
- Mouth landmarks are the 68-point scheme's points 48-67 in the FACE-NORMALISED frame (origin = template
  mouth centre, unit = template inter-ocular distance), as (x, y): [B, T, 20, 2].
- Sequences are padded at the end; ``lengths`` [B] counts real frames. Padding never changes the output on
  real frames: every layer re-zeroes padded positions before a convolution, the GRU is packed and
  attention masks padded keys. Padded outputs are the reference mouth.
- Phoneme ids are ``datamodules.phonemes`` VOCAB ids: 0 = <pad>, 1 = sil.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from talking_face.datamodules import timebase
from talking_face.datamodules.faces.landmark_scheme import NUM_MOUTH
from talking_face.datamodules.phonemes import PAD_ID, VOCAB

__all__ = [
    "DurationPredictor",
    "LandmarkNet",
    "augment_log_mel",
    "length_regulate",
    "lengths_to_mask",
    "normalise_log_mel",
    "run_length_encode",
    "run_progress",
]

_WHERE = "lightning_modules/networks/landmark_net.py"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"{_WHERE}: {message}")


def lengths_to_mask(lengths: Tensor, max_length: int) -> Tensor:
    """Bool [B, max_length], True on the first ``lengths[b]`` positions."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def normalise_log_mel(features: Tensor, step_mask: Tensor, eps: float = 1e-3) -> Tensor:
    """Per-utterance, per-mel-bin mean/variance normalisation over real steps (CMVN).

    Why: a real microphone, room or recording level adds a constant per bin to a log-mel spectrum; removing
    each bin's utterance mean and scale makes the model carry from the corpus' voices to real recordings.
    features [B, S, F] log-mel, step_mask [B, S] bool -> [B, S, F], zero on padded steps.
    """
    weight = step_mask[..., None].to(features.dtype)
    count = weight.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (features * weight).sum(dim=1, keepdim=True) / count
    var = ((features - mean) ** 2 * weight).sum(dim=1, keepdim=True) / count
    return (features - mean) / torch.sqrt(var + eps) * weight


def augment_log_mel(
    features: Tensor,
    step_mask: Tensor,
    gain_db: float = 12.0,
    snr_db_range: tuple[float, float] = (10.0, 40.0),
    tilt: float = 0.5,
) -> Tensor:
    """Make clean synthetic log-mel look like a real recording: level, microphone colour and background noise.

    Per utterance: a random gain in [-gain_db, gain_db], a random linear spectral tilt of up to ``tilt``
    nats across the mel bins (microphone / room colour), and stationary coloured noise at an SNR drawn
    from ``snr_db_range`` (relative to the utterance's mean speech power). Works in the power domain of
    ``log(power + LOG_FLOOR)`` features, so digital silence gets a realistic noise floor.
    features [B, S, F] natural-log mel power, step_mask [B, S] -> [B, S, F] (zero on padded steps).
    """
    from talking_face.datamodules.audio_features import LOG_FLOOR

    batch, _, bins = features.shape
    weight = step_mask[..., None].to(features.dtype)
    power = (features.exp() - LOG_FLOOR).clamp_min(0.0)
    gain = torch.empty(batch, 1, 1, device=features.device).uniform_(-gain_db, gain_db)
    ramp = torch.linspace(-1.0, 1.0, bins, device=features.device)
    colour = torch.empty(batch, 1, 1, device=features.device).uniform_(-tilt, tilt) * ramp
    power = power * torch.exp(colour) * 10.0 ** (gain / 10.0)
    mean_power = (power * weight).sum(dim=(1, 2), keepdim=True) / (
        weight.sum(dim=(1, 2), keepdim=True) * bins
    )
    snr_db = torch.empty(batch, 1, 1, device=features.device).uniform_(*snr_db_range)
    noise_colour = torch.exp(torch.empty(batch, 1, 1, device=features.device).uniform_(-tilt, tilt) * ramp)
    noise = mean_power * 10.0 ** (-snr_db / 10.0) * noise_colour
    noise = noise * torch.empty_like(power).exponential_()  # power of Gaussian noise in a bin ~ exponential
    return torch.log(power + noise + LOG_FLOOR) * weight


def run_progress(phoneme_ids: Tensor) -> Tensor:
    """Where each frame sits inside its run of equal phoneme ids: [B, T] -> [B, T, 2].

    Channel 0: progress through the run, (i + 0.5) / run_length in (0, 1); channel 1: log(run_length).
    Why: a phoneme spans several frames and the lips move through it (onset, target, release); the
    embedding alone cannot tell its first frame from its last. Runs end at the end of the tensor or at a
    change of id (padding ids differ from real ones), so padding does not change real frames' values.
    """
    batch, frames = phoneme_ids.shape
    index = torch.arange(frames, device=phoneme_ids.device).expand(batch, frames)
    change = phoneme_ids[:, 1:] != phoneme_ids[:, :-1]
    starts = torch.cat([torch.ones_like(change[:, :1]), change], dim=1)
    ends = torch.cat([change, torch.ones_like(change[:, :1])], dim=1)
    start = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    end_flipped = torch.where(ends, index, torch.full_like(index, frames)).flip(1).cummin(dim=1).values
    end = end_flipped.flip(1)
    run_length = (end - start + 1).float()
    progress = (index - start + 0.5).float() / run_length
    return torch.stack([progress, run_length.log()], dim=-1)


def run_length_encode(phoneme_ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Frame phoneme ids -> the token sequence and each token's duration in frames.

    phoneme_ids [B, T], lengths [B] -> tokens [B, N] (PAD_ID beyond each row's count), durations [B, N]
    (int64 frames, 0 on padding), token_lengths [B]; N = the longest row's token count. Adjacent equal ids
    merge into one token (the inverse of ``length_regulate``).
    """
    rows = [
        torch.unique_consecutive(ids[: int(n)], return_counts=True)
        for ids, n in zip(phoneme_ids, lengths, strict=True)
    ]
    token_lengths = torch.tensor([len(tokens) for tokens, _ in rows], device=phoneme_ids.device)
    width = max(int(token_lengths.max()), 1) if len(rows) else 1
    tokens = phoneme_ids.new_full((len(rows), width), PAD_ID)
    durations = torch.zeros_like(tokens)
    for b, (row_tokens, row_counts) in enumerate(rows):
        tokens[b, : len(row_tokens)] = row_tokens
        durations[b, : len(row_counts)] = row_counts
    return tokens, durations, token_lengths


def length_regulate(
    tokens: Tensor, durations: Tensor, token_lengths: Tensor, num_frames: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Expand a token sequence to frame phoneme ids using per-token durations.

    tokens [B, N] ids, durations [B, N] frames (float allowed: predicted), token_lengths [B];
    num_frames [B] optional: rescale each row's durations to exactly that many frames (e.g. to the length
    of given audio). Fractional durations are rounded on their cumulative sum, so the total is kept and a
    token shorter than half a frame may get none (as the frame-centre alignment of the corpus does).
    Returns frame_ids [B, T] (PAD_ID beyond each row's length) and lengths [B]; T = the longest row.
    """
    _check(
        tokens.ndim == 2 and durations.shape == tokens.shape,
        f"tokens {tuple(tokens.shape)} and durations {tuple(durations.shape)} must both be [B, N]",
    )
    token_mask = lengths_to_mask(token_lengths, tokens.shape[1])
    _check(bool((token_lengths > 0).all()), "empty phoneme sequence: every row needs at least one token")
    durations = durations.double().clamp_min(0.0) * token_mask
    if num_frames is not None:
        total = durations.sum(dim=1, keepdim=True)
        _check(bool((total > 0).all()), "cannot rescale durations that sum to zero")
        durations = durations * (num_frames[:, None].double() / total)
    ends = torch.round(durations.cumsum(dim=1)).long()
    frames = torch.diff(ends, dim=1, prepend=torch.zeros_like(ends[:, :1]))
    lengths = frames.sum(dim=1)
    _check(bool((lengths > 0).all()), "the durations give zero frames for a sequence")
    frame_ids = tokens.new_full((tokens.shape[0], int(lengths.max())), PAD_ID)
    for b in range(tokens.shape[0]):
        frame_ids[b, : int(lengths[b])] = torch.repeat_interleave(tokens[b], frames[b])
    return frame_ids, lengths


class ConvBlock(nn.Module):
    """Pre-norm residual 1-D convolution over time: x + Dropout(GELU(Conv(LayerNorm(x)))).

    x [B, T, C], mask [B, T] -> [B, T, C], zero on padded positions (so the next conv sees the same zeros
    as its own zero padding, whatever the padded length).
    """

    def __init__(self, channels: int, kernel_size: int = 5, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        weight = mask[..., None].to(x.dtype)
        y = rearrange(self.norm(x) * weight, "b t c -> b c t")
        y = rearrange(self.conv(y), "b c t -> b t c")
        return (x + self.dropout(F.gelu(y))) * weight


class SelfAttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over frames, then an MLP; padded keys are masked.

    x [B, T, C], mask [B, T] -> [B, T, C]. Needs at least one real frame per row.
    """

    def __init__(self, channels: int, heads: int = 4, dropout: float = 0.1, mlp_ratio: int = 2) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{_WHERE}: hidden size {channels} is not divisible by {heads} attention heads")
        self.heads = heads
        self.dropout = dropout
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        self.mlp = nn.Sequential(
            nn.LayerNorm(channels),
            nn.Linear(channels, mlp_ratio * channels),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * channels, channels),
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        q, k, v = rearrange(self.qkv(self.norm(x)), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        keys = rearrange(mask, "b t -> b 1 1 t")
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keys, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.out(rearrange(y, "b h t d -> b t (h d)"))
        x = x + self.mlp(x)
        return x * mask[..., None].to(x.dtype)


class AudioEncoder(nn.Module):
    """Log-mel [B, 4T, 80] -> frame features [B, T, C].

    CMVN per utterance, a conv at the step rate (10 ms), then the 4 steps of each frame are stacked
    ("b (t s) c -> b t (s c)") and projected, so frame f sees exactly its own steps plus the conv context.
    """

    def __init__(self, channels: int, blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        step_channels = channels // 2
        self.input = nn.Linear(timebase.N_MELS, step_channels)
        self.step_block = ConvBlock(step_channels, kernel_size=5, dropout=dropout)
        self.to_frames = nn.Linear(timebase.STEPS_PER_FRAME * step_channels, channels)
        self.blocks = nn.ModuleList(ConvBlock(channels, 5, dropout) for _ in range(blocks))

    def forward(self, audio_features: Tensor, mask: Tensor) -> Tensor:
        step_mask = mask.repeat_interleave(timebase.STEPS_PER_FRAME, dim=1)
        x = self.input(normalise_log_mel(audio_features, step_mask)) * step_mask[..., None]
        x = self.step_block(x, step_mask)
        x = self.to_frames(rearrange(x, "b (t s) c -> b t (s c)", s=timebase.STEPS_PER_FRAME))
        x = x * mask[..., None]
        for block in self.blocks:
            x = block(x, mask)
        return x


class TextEncoder(nn.Module):
    """Frame phoneme ids [B, T] -> frame features [B, T, C]: embedding + run progress + local conv context."""

    def __init__(self, num_phonemes: int, channels: int, blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_phonemes, channels, padding_idx=PAD_ID)
        self.progress = nn.Linear(2, channels)
        self.blocks = nn.ModuleList(ConvBlock(channels, 5, dropout) for _ in range(blocks))

    def forward(self, phoneme_ids: Tensor, mask: Tensor) -> Tensor:
        x = (self.embedding(phoneme_ids) + self.progress(run_progress(phoneme_ids))) * mask[..., None]
        for block in self.blocks:
            x = block(x, mask)
        return x


class LandmarkNet(nn.Module):
    """Audio and/or frame phonemes + the speaker's neutral mouth -> 20 mouth landmarks per frame.

    Either modality may be missing, for the whole batch (pass None) or per sample (``use_audio`` /
    ``use_text`` bool [B], for modality dropout): a missing one is replaced by a learned "missing"
    embedding, so one set of weights serves audio only, text only and both. The output is the neutral
    mouth plus a predicted displacement (the head starts at zero, so an untrained net predicts the neutral
    mouth, the mean-mouth baseline), which keeps a new person's mouth shape.
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
    ) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"{_WHERE}: hidden_size must be even (bi-GRU halves), got {hidden_size}")
        self.num_phonemes = num_phonemes
        self.audio = AudioEncoder(hidden_size, audio_blocks, dropout)
        self.text = TextEncoder(num_phonemes, hidden_size, text_blocks, dropout)
        self.missing_audio = nn.Parameter(torch.randn(hidden_size) * 0.02)
        self.missing_text = nn.Parameter(torch.randn(hidden_size) * 0.02)
        self.fuse = nn.Linear(2 * hidden_size, hidden_size)
        self.reference = nn.Linear(NUM_MOUTH * 2, hidden_size) if condition_on_reference else None
        self.gru = nn.GRU(
            hidden_size,
            hidden_size // 2,
            num_layers=gru_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if gru_layers > 1 else 0.0,
        )
        self.gru_norm = nn.LayerNorm(hidden_size)
        self.attention = nn.ModuleList(
            SelfAttentionBlock(hidden_size, attention_heads, dropout) for _ in range(attention_layers)
        )
        self.head = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, NUM_MOUTH * 2))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(
        self,
        mouth_reference: Tensor,
        lengths: Tensor,
        audio_features: Tensor | None = None,
        phoneme_ids: Tensor | None = None,
        use_audio: Tensor | None = None,
        use_text: Tensor | None = None,
    ) -> Tensor:
        """mouth_reference [B, 20, 2] normalised, lengths [B] frames, audio_features [B, 4T, 80] log-mel,
        phoneme_ids [B, T] int64 -> mouth [B, T, 20, 2] normalised (the reference on padded frames).

        ``use_audio`` / ``use_text`` bool [B] (default: all True where the input is given) drop a
        modality per sample.
        """
        frames = check_inputs(mouth_reference, lengths, audio_features, phoneme_ids, self.num_phonemes)
        batch = mouth_reference.shape[0]
        mask = lengths_to_mask(lengths, frames)
        weight = mask[..., None].to(mouth_reference.dtype)
        audio = self._modality(audio_features, use_audio, self.missing_audio, self.audio, mask, batch, frames)
        text = self._modality(phoneme_ids, use_text, self.missing_text, self.text, mask, batch, frames)
        x = self.fuse(torch.cat([audio, text], dim=-1))
        if self.reference is not None:
            x = x + self.reference(rearrange(mouth_reference, "b p xy -> b 1 (p xy)"))
        x = x * weight
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.gru(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=frames)
        x = self.gru_norm(x + y) * weight
        for block in self.attention:
            x = block(x, mask)
        displacement = rearrange(self.head(x), "b t (p xy) -> b t p xy", xy=2) * weight[..., None]
        return mouth_reference[:, None] + displacement

    @staticmethod
    def _modality(
        inputs: Tensor | None,
        use: Tensor | None,
        missing: Tensor,
        encoder: nn.Module,
        mask: Tensor,
        batch: int,
        frames: int,
    ) -> Tensor:
        """Encoded features [B, T, C]; the learned "missing" embedding where absent or dropped."""
        absent = missing.expand(batch, frames, -1)
        if inputs is None:
            return absent
        encoded = encoder(inputs, mask)
        if use is None:
            return encoded
        return torch.where(use[:, None, None], encoded, absent)


def check_inputs(
    mouth_reference: Tensor,
    lengths: Tensor,
    audio_features: Tensor | None,
    phoneme_ids: Tensor | None,
    num_phonemes: int,
) -> int:
    """Validate the stage-1 inputs and return T (frames); raises ValueError naming the problem."""
    _check(
        audio_features is not None or phoneme_ids is not None,
        "no input modality: give audio_features and/or phoneme_ids",
    )
    _check(
        mouth_reference.ndim == 3 and tuple(mouth_reference.shape[1:]) == (NUM_MOUTH, 2),
        f"mouth_reference must be [B, {NUM_MOUTH}, 2], got {tuple(mouth_reference.shape)}",
    )
    batch = mouth_reference.shape[0]
    _check(lengths.shape == (batch,), f"lengths must be [B={batch}], got {tuple(lengths.shape)}")
    frames = None
    if audio_features is not None:
        _check(
            audio_features.ndim == 3
            and audio_features.shape[0] == batch
            and audio_features.shape[2] == timebase.N_MELS,
            f"audio_features must be [B={batch}, 4T, {timebase.N_MELS}], got {tuple(audio_features.shape)}",
        )
        steps = audio_features.shape[1]
        _check(steps > 0, "zero-length audio: audio_features has no time steps")
        _check(
            steps % timebase.STEPS_PER_FRAME == 0,
            f"audio_features has {steps} steps, not a multiple of {timebase.STEPS_PER_FRAME} steps per frame",
        )
        _check(bool(torch.isfinite(audio_features).all()), "audio_features contain NaN or inf")
        frames = steps // timebase.STEPS_PER_FRAME
    if phoneme_ids is not None:
        _check(
            phoneme_ids.ndim == 2 and phoneme_ids.shape[0] == batch,
            f"phoneme_ids must be [B={batch}, T], got {tuple(phoneme_ids.shape)}",
        )
        _check(phoneme_ids.shape[1] > 0, "empty phoneme sequence: phoneme_ids has no frames")
        _check(
            not phoneme_ids.is_floating_point(), f"phoneme_ids must be integer ids, got {phoneme_ids.dtype}"
        )
        low, high = int(phoneme_ids.min()), int(phoneme_ids.max())
        _check(
            low >= 0 and high < num_phonemes,
            f"phoneme ids must lie in [0, {num_phonemes}), got [{low}, {high}]",
        )
        if frames is not None:
            _check(
                frames == phoneme_ids.shape[1],
                f"audio/phoneme length mismatch: audio_features has {frames} frames "
                f"({frames * timebase.STEPS_PER_FRAME} steps) but phoneme_ids has {phoneme_ids.shape[1]}",
            )
        frames = phoneme_ids.shape[1]
    assert frames is not None
    _check(
        bool((lengths > 0).all()), f"every sequence needs at least one frame, got lengths {lengths.tolist()}"
    )
    _check(int(lengths.max()) <= frames, f"lengths {lengths.tolist()} exceed the {frames} frames given")
    _check(bool(torch.isfinite(mouth_reference).all()), "mouth_reference contains NaN or inf")
    return frames


class DurationPredictor(nn.Module):
    """Phoneme tokens -> frames per token, for text-only inference (where no audio gives the timing).

    tokens [B, N] ids (PAD_ID on padding), token_lengths [B] -> log(1 + frames) [B, N] (0 on padding).
    Trained on the run-length encoding of the corpus' frame phoneme ids; ``frames(...)`` gives durations.
    """

    def __init__(
        self, num_phonemes: int = len(VOCAB), hidden_size: int = 64, blocks: int = 3, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.num_phonemes = num_phonemes
        self.embedding = nn.Embedding(num_phonemes, hidden_size, padding_idx=PAD_ID)
        self.blocks = nn.ModuleList(ConvBlock(hidden_size, 3, dropout) for _ in range(blocks))
        self.head = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, 1))
        nn.init.constant_(self.head[-1].bias, math.log1p(3.0))  # ~ a typical phoneme of 3 frames

    def forward(self, tokens: Tensor, token_lengths: Tensor) -> Tensor:
        _check(tokens.ndim == 2, f"phoneme tokens must be [B, N], got {tuple(tokens.shape)}")
        _check(tokens.shape[1] > 0 and bool((token_lengths > 0).all()), "empty phoneme sequence")
        _check(
            token_lengths.shape == tokens.shape[:1] and int(token_lengths.max()) <= tokens.shape[1],
            f"token_lengths {token_lengths.tolist()} do not fit tokens {tuple(tokens.shape)}",
        )
        _check(
            bool(((tokens >= 0) & (tokens < self.num_phonemes)).all()),
            f"phoneme ids must lie in [0, {self.num_phonemes})",
        )
        mask = lengths_to_mask(token_lengths, tokens.shape[1])
        x = self.embedding(tokens) * mask[..., None]
        for block in self.blocks:
            x = block(x, mask)
        return self.head(x).squeeze(-1) * mask

    def frames(self, tokens: Tensor, token_lengths: Tensor) -> Tensor:
        """Predicted durations in frames (float, >= 0) [B, N]."""
        return torch.expm1(self(tokens, token_lengths)).clamp_min(0.0)
