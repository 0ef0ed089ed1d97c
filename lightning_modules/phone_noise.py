"""Recognition errors for the text branch in training (issue 13): wrong, missing and shifted phones.

At inference without a transcript, stage 1's text branch reads phones recognised from the speech
(``datamodules.speech_recognition``): about 12 % of them are wrong (measured on real read speech) and their
boundaries are off by a frame or two. In training it reads the corpus' exact phones. ``corrupt_phonemes``
makes training look like inference, so the fusion learns when to trust which input:

- substitution: a phone token becomes another phone (uniform over the 39; silence is left alone);
- deletion: a phone token vanishes, its frames taken over by the token before it (or after, at the start);
- jitter: every boundary between two tokens moves by a uniform integer in [-jitter, jitter] frames, no token
  shorter than one frame.

Measured (``benchmarks/articulation.py``, driving landmarks, 3 faces x 11 real utterances, the shipped recipe
retrained on a rebuilt cache): it did **not** help. With recognised phones the bilabial ratio was 0.29-0.44
without it (a retrain of the shipped recipe), 0.49-0.55 with ``text_noise_prob`` 0.5 at the default rates
and 0.42-0.59 with boundary jitter alone: taught that the text is unreliable, the fusion trusts its closures
less. Hence off by default (``LandmarkModule.text_noise_prob`` 0); confusable-phone substitutions or lower
rates are untried.

Frame phoneme ids are ``datamodules.phonemes.VOCAB`` indices, int64 [B, T] with ``lengths`` [B] valid frames.
"""

from __future__ import annotations

import torch
from torch import Tensor

from talking_face.datamodules.phonemes import SIL_ID, VOCAB
from talking_face.shapes import check_shape

__all__ = ["corrupt_phonemes"]

_FIRST_PHONE = SIL_ID + 1  # VOCAB: <pad>, sil, then the 39 phones


def _corrupt_row(
    ids: Tensor, substitution: float, deletion: float, jitter: int, generator: torch.Generator | None
) -> Tensor:
    """One utterance's frame ids [n] -> corrupted frame ids [n] (same length)."""
    tokens, counts = torch.unique_consecutive(ids, return_counts=True)
    n = len(tokens)
    if n == 0:
        return ids
    draw = torch.rand(n, 2, generator=generator)
    phone = tokens != SIL_ID
    replace = phone & (draw[:, 0] < substitution)
    random_phones = torch.randint(_FIRST_PHONE, len(VOCAB), (n,), generator=generator)
    tokens = torch.where(replace, random_phones, tokens)
    delete = phone & (draw[:, 1] < deletion)
    if delete.all():
        delete[0] = False
    # a deleted token's frames go to the nearest kept token before it (after it at the very start)
    keep = ~delete
    bounds = torch.cumsum(counts, 0)
    kept_tokens = tokens[keep]
    kept_ends = bounds[keep].clone()
    kept_ends[-1] = bounds[-1]  # the last kept token runs to the end
    if jitter > 0 and len(kept_ends) > 1:
        shifts = torch.randint(-jitter, jitter + 1, (len(kept_ends) - 1,), generator=generator)
        inner = kept_ends[:-1] + shifts
        # keep every token at least one frame long: clamp each boundary between its neighbours
        for i in range(len(inner)):
            low = (inner[i - 1] if i > 0 else 0) + 1
            high = kept_ends[i + 1] - 1
            inner[i] = inner[i].clamp(low, high)  # low <= high: the boundaries were strictly increasing
        kept_ends = torch.cat([inner, kept_ends[-1:]])
    durations = torch.diff(kept_ends, prepend=kept_ends.new_zeros(1))
    return torch.repeat_interleave(kept_tokens, durations)


def corrupt_phonemes(
    phoneme_ids: Tensor,
    lengths: Tensor,
    substitution: float = 0.07,
    deletion: float = 0.04,
    jitter: int = 2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Frame ids [B, T] with recognition-like errors in each row's first ``lengths[b]`` frames (padding kept).

    ``substitution`` and ``deletion`` are per-token probabilities for phone tokens (the defaults add up to
    the 11-12 % phone error measured on real speech); ``jitter`` is the largest boundary shift in frames.
    """
    check_shape(lengths, "B", "lengths", check_shape(phoneme_ids, "B T", "phoneme_ids"))
    if not (0.0 <= substitution <= 1.0 and 0.0 <= deletion <= 1.0 and jitter >= 0):
        raise ValueError(f"bad rates: substitution {substitution}, deletion {deletion}, jitter {jitter}")
    device = phoneme_ids.device
    out = phoneme_ids.detach().cpu().clone()
    for b, n in enumerate(lengths.tolist()):
        if n > 0:
            out[b, :n] = _corrupt_row(out[b, :n], substitution, deletion, jitter, generator)
    return out.to(device)
