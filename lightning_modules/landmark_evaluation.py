"""Honest evaluation of stage 1 on cached records: each input mode gets only what it gets at inference.

Why this exists: in the built-in corpus the mouth is driven by the TTS's own phoneme timings, and a
record's ``phoneme_ids`` ARE those timings. Text evaluated on them (``LandmarkModule.predict_modes``'
``text`` and ``both``) is close to an answer key. Here each mode is fed as ``generate`` feeds it:

- ``audio``: the record's log-mel only;
- ``text``: the text's phonemes (g2p, ``text_timing.text_phonemes``) placed on frames by the module's
  duration predictor, stretched to the record's length (the one thing taken from the recording, so that
  frames can be compared one to one);
- ``both``: the record's log-mel plus the text's phonemes placed on its audio by the forced aligner
  (``text_timing.timing_from_audio``); where the aligner fails, the row falls back to audio only, as
  ``generate`` does;
- ``both_durations``: log-mel plus the text's phonemes placed by the duration predictor over the audio's
  length (no aligner: isolates what alignment errors cost);
- ``text_oracle`` / ``both_oracle``: the cached TTS timings (an upper bound, never a result);
- ``reference`` / ``mean_mouth``: the neutral mouth, and it plus the training set's mean displacement.

The aligner is slow (about 0.3-3 s an utterance) and does not depend on the model, so ``text_inputs`` runs
it once per record and ``evaluate_records`` reuses the result for every model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from talking_face.datamodules.datasets import LandmarkSequenceDataset, collate_sequences
from talking_face.datamodules.phonemes import PAD_ID

if TYPE_CHECKING:
    from talking_face.datamodules.cache import CachedUtterance
    from talking_face.lightning_modules.landmark_module import LandmarkModule

__all__ = [
    "BASELINES",
    "HONEST_MODES",
    "ORACLE_MODES",
    "TextInputs",
    "evaluate_records",
    "honest_batch",
    "predict_honest",
    "text_inputs",
]

HONEST_MODES = ("audio", "text", "both", "both_durations")
"""Modes fed only what inference gets (see the module docstring)."""

ORACLE_MODES = ("text_oracle", "both_oracle")
"""Modes fed the corpus' own TTS timings: upper bounds, reported apart."""

BASELINES = ("reference", "mean_mouth")
"""Constant predictions: the neutral mouth, and it plus the training set's mean displacement."""

_WHERE = "lightning_modules/landmark_evaluation.py"


@dataclass(frozen=True)
class TextInputs:
    """Model-independent text inputs of one record.

    tokens: int64 [N] ``VOCAB`` ids of the text's phonemes (``["sil", ..., "sil"]``, untimed);
    aligned_ids: int64 [T] forced-aligned phoneme id per frame, None where the aligner failed;
    align_score: the aligner's confidence in [0, 1] (None where it failed).
    """

    tokens: np.ndarray
    aligned_ids: np.ndarray | None
    align_score: float | None


def text_inputs(record: CachedUtterance) -> TextInputs:
    """g2p tokens of the record's text and its phonemes force-aligned to the record's audio."""
    from talking_face.datamodules import timebase
    from talking_face.datamodules.phonemes import phoneme_id
    from talking_face.lightning_modules.text_timing import text_phonemes, timing_from_audio

    text = record.meta["text"]
    tokens = np.array([phoneme_id(label) for label in text_phonemes(text)], dtype=np.int64)
    try:
        timing = timing_from_audio(np.asarray(record.array("audio")), timebase.SAMPLE_RATE, text)
    except ValueError:
        return TextInputs(tokens, None, None)
    if timing.num_frames != record.num_frames:
        raise ValueError(
            f"{_WHERE}: {record.path}: the aligner's {timing.num_frames} frames differ from the record's "
            f"{record.num_frames}: audio.npy does not hold num_frames frames of audio"
        )
    return TextInputs(tokens, timing.frame_ids(), timing.score)


def honest_batch(items: Sequence[dict], inputs: Sequence[TextInputs]) -> dict:
    """A stage-1 batch (``collate_sequences``) plus the honest text inputs.

    Adds ``text_tokens`` int64 [B, N] (PAD_ID beyond each row), ``token_lengths`` int64 [B],
    ``aligned_ids`` int64 [B, T] (PAD_ID beyond each length; all PAD_ID where the aligner failed) and
    ``aligned`` bool [B] (False where it failed).
    """
    if len(items) != len(inputs):
        raise ValueError(f"{_WHERE}: {len(items)} items but {len(inputs)} text inputs")
    batch = collate_sequences(list(items))
    lengths = batch["lengths"]
    token_lengths = torch.tensor([len(x.tokens) for x in inputs])
    tokens = torch.full((len(inputs), int(token_lengths.max())), PAD_ID, dtype=torch.long)
    aligned_ids = torch.full_like(batch["phoneme_ids"], PAD_ID)
    for row, (x, length) in enumerate(zip(inputs, lengths.tolist(), strict=True)):
        tokens[row, : len(x.tokens)] = torch.from_numpy(x.tokens)
        if x.aligned_ids is not None:
            if len(x.aligned_ids) != length:
                raise ValueError(
                    f"{_WHERE}: row {row}: {len(x.aligned_ids)} aligned frames for a {length}-frame record"
                )
            aligned_ids[row, :length] = torch.from_numpy(x.aligned_ids)
    aligned = torch.tensor([x.aligned_ids is not None for x in inputs])
    return batch | {
        "text_tokens": tokens,
        "token_lengths": token_lengths,
        "aligned_ids": aligned_ids,
        "aligned": aligned,
    }


@torch.no_grad()
def predict_honest(
    module: LandmarkModule, batch: dict, modes: Iterable[str] = (*HONEST_MODES, *ORACLE_MODES, *BASELINES)
) -> dict[str, Tensor]:
    """Mouth [B, T, 20, 2] (face-normalised) for each requested mode of an ``honest_batch``.

    Every mode goes through ``LandmarkModule.predict``, the inference entry point ``generate`` uses.
    """
    modes = list(modes)
    unknown = set(modes) - {*HONEST_MODES, *ORACLE_MODES, *BASELINES}
    if unknown:
        raise ValueError(f"{_WHERE}: unknown modes {sorted(unknown)}")
    batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    reference, lengths = batch["mouth_reference"], batch["lengths"]
    features = batch["audio_features"]
    common = {"mouth_reference": reference, "lengths": lengths}
    tokens = {"phoneme_tokens": batch["text_tokens"], "token_lengths": batch["token_lengths"]}
    constant = reference[:, None].expand(-1, batch["phoneme_ids"].shape[1], -1, -1)
    out: dict[str, Tensor] = {}
    for mode in modes:
        if mode == "audio":
            out[mode] = module.predict(**common, audio_features=features).mouth
        elif mode == "text":
            out[mode] = module.predict(**common, **tokens).mouth
        elif mode == "both":
            both = module.predict(**common, audio_features=features, phoneme_ids=batch["aligned_ids"]).mouth
            if not bool(batch["aligned"].all()):
                audio = out.get("audio")
                if audio is None:
                    audio = module.predict(**common, audio_features=features).mouth
                both = torch.where(batch["aligned"][:, None, None, None], both, audio)
            out[mode] = both
        elif mode == "both_durations":
            out[mode] = module.predict(**common, audio_features=features, **tokens).mouth
        elif mode == "text_oracle":
            out[mode] = module.predict(**common, phoneme_ids=batch["phoneme_ids"]).mouth
        elif mode == "both_oracle":
            out[mode] = module.predict(
                **common, audio_features=features, phoneme_ids=batch["phoneme_ids"]
            ).mouth
        elif mode == "reference":
            out[mode] = constant
        else:  # mean_mouth
            out[mode] = constant + module.mean_displacement
    return out


def evaluate_records(
    module: LandmarkModule,
    records: Sequence[CachedUtterance],
    inputs: Sequence[TextInputs],
    modes: Iterable[str] = (*HONEST_MODES, *ORACLE_MODES, *BASELINES),
    batch_size: int = 16,
) -> dict[str, dict[str, float]]:
    """LMD and velocity error (crop pixels, means over real frames) of each mode on whole records.

    ``inputs[i]`` belongs to ``records[i]`` (``text_inputs``). Returns {mode: {"lmd": px, "velocity": px}}.
    """
    from talking_face.lightning_modules.metrics import LandmarkVelocityError, MouthLandmarkDistance

    if len(records) != len(inputs) or not records:
        raise ValueError(f"{_WHERE}: need one TextInputs per record, got {len(records)} and {len(inputs)}")
    modes = list(modes)
    metrics = {mode: (MouthLandmarkDistance(), LandmarkVelocityError()) for mode in modes}
    dataset = LandmarkSequenceDataset(records)
    for start in range(0, len(records), batch_size):
        rows = range(start, min(start + batch_size, len(records)))
        batch = honest_batch([dataset[i] for i in rows], [inputs[i] for i in rows])
        preds = predict_honest(module, batch, modes)
        for mode, pred in preds.items():
            for metric in metrics[mode]:
                metric.update(pred.cpu(), batch["mouth"], batch["mask"], batch["pixels_per_unit"])
    return {
        mode: {"lmd": float(lmd.compute()), "velocity": float(vel.compute())}
        for mode, (lmd, vel) in metrics.items()
    }
