"""Stage-1 metrics: known answers in crop pixels, masking, batching, DDP-style state merging."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from talking_face.lightning_modules.metrics import LandmarkVelocityError, MouthLandmarkDistance


def _landmarks(batch: int = 2, frames: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, frames, 20, 2, generator=torch.Generator().manual_seed(seed))


def test_lmd_known_answer_shift_3_4_is_5_units_in_pixels() -> None:
    target = _landmarks()
    preds = target + torch.tensor([3.0, 4.0])
    mask = torch.ones(2, 5, dtype=torch.bool)
    metric = MouthLandmarkDistance()
    metric.update(preds, target, mask, torch.tensor([10.0, 10.0]))
    assert metric.compute().item() == pytest.approx(50.0, rel=1e-6)


def test_lmd_weighs_every_real_frame_equally_across_pixel_scales() -> None:
    target = _landmarks(frames=4)
    preds = target + torch.tensor([3.0, 4.0])
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    metric = MouthLandmarkDistance()
    metric.update(preds, target, mask, torch.tensor([10.0, 2.0]))
    # 3 frames at 5 * 10 px and 1 frame at 5 * 2 px
    assert metric.compute().item() == pytest.approx((3 * 50.0 + 10.0) / 4, rel=1e-6)


@pytest.mark.parametrize("metric_class", [MouthLandmarkDistance, LandmarkVelocityError])
def test_padding_never_changes_the_value(metric_class: type) -> None:
    target, preds = _landmarks(seed=1), _landmarks(seed=2)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    garbage_preds, garbage_target = preds.clone(), target.clone()
    garbage_preds[1, 3:] = 1e4
    garbage_target[1, 3:] = -1e4
    clean, dirty = metric_class(), metric_class()
    clean.update(preds, target, mask, torch.tensor([7.0, 9.0]))
    dirty.update(garbage_preds, garbage_target, mask, torch.tensor([7.0, 9.0]))
    assert dirty.compute().item() == pytest.approx(clean.compute().item(), rel=1e-6)


@pytest.mark.parametrize("metric_class", [MouthLandmarkDistance, LandmarkVelocityError])
def test_batching_does_not_change_the_value(metric_class: type) -> None:
    target, preds = _landmarks(batch=4, seed=3), _landmarks(batch=4, seed=4)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[2, 2:] = False
    ppu = torch.tensor([5.0, 6.0, 7.0, 8.0])
    whole, parts = metric_class(), metric_class()
    whole.update(preds, target, mask, ppu)
    for rows in (slice(0, 1), slice(1, 4)):
        parts.update(preds[rows], target[rows], mask[rows], ppu[rows])
    assert parts.compute().item() == pytest.approx(whole.compute().item(), rel=1e-6)


@pytest.mark.parametrize("metric_class", [MouthLandmarkDistance, LandmarkVelocityError])
def test_states_merged_across_processes_equal_one_process(metric_class: type) -> None:
    """Sum states (dist_reduce_fx="sum") give the exact global mean, as DDP's all-reduce would."""
    target, preds = _landmarks(batch=3, seed=5), _landmarks(batch=3, seed=6)
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3, [True] * 4 + [False]])
    ppu = torch.tensor([3.0, 4.0, 5.0])
    rank0, rank1, single = metric_class(), metric_class(), metric_class()
    rank0.update(preds[:1], target[:1], mask[:1], ppu[:1])
    rank1.update(preds[1:], target[1:], mask[1:], ppu[1:])
    single.update(preds, target, mask, ppu)
    assert all(reduce is dim_zero_sum for reduce in rank0._reductions.values())
    rank0.merge_state(rank1)
    assert rank0.compute().item() == pytest.approx(single.compute().item(), rel=1e-6)


def test_velocity_error_ignores_constant_offset_and_measures_motion() -> None:
    target = _landmarks(batch=1, frames=6)
    mask = torch.ones(1, 6, dtype=torch.bool)
    metric = LandmarkVelocityError()
    metric.update(target + 5.0, target, mask, torch.tensor([10.0]))
    assert metric.compute().item() == pytest.approx(0.0, abs=1e-4)  # float32 rounding of x + 5 - x

    static = torch.zeros(1, 6, 20, 2)
    moving = torch.arange(6.0)[None, :, None, None] * torch.tensor([3.0, 4.0])  # (3, 4) units per frame
    metric = LandmarkVelocityError()
    metric.update(moving.expand(1, 6, 20, 2), static, mask, torch.tensor([2.0]))
    assert metric.compute().item() == pytest.approx(10.0, rel=1e-6)


def test_velocity_error_counts_only_pairs_of_real_frames() -> None:
    static = torch.zeros(1, 4, 20, 2)
    jump = static.clone()
    jump[0, 3] = 100.0  # a jump into a padded frame must not count
    mask = torch.tensor([[True, True, True, False]])
    metric = LandmarkVelocityError()
    metric.update(jump, static, mask, torch.tensor([1.0]))
    assert metric.compute().item() == pytest.approx(0.0, abs=1e-6)
    assert metric.count.item() == 2


def test_bad_shapes_raise_clear_errors() -> None:
    preds = _landmarks()
    with pytest.raises(ValueError, match=r"target must be \[B, T, P, 2\] with B=2, T=5, P=20"):
        MouthLandmarkDistance().update(preds, preds[:, :4], torch.ones(2, 5, dtype=torch.bool), torch.ones(2))
    with pytest.raises(ValueError, match="mask must be"):
        MouthLandmarkDistance().update(preds, preds, torch.ones(2, 4, dtype=torch.bool), torch.ones(2))
    with pytest.raises(ValueError, match="pixels_per_unit must be"):
        LandmarkVelocityError().update(preds, preds, torch.ones(2, 5, dtype=torch.bool), torch.ones(3))
