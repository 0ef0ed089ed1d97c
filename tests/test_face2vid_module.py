"""Face2VidModule: learning, checkpoints and resume, NaN guard, inference API, metrics, CLI and configs."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from talking_face.datamodules.datamodule import TalkingFaceDataModule
from talking_face.datamodules.faces.landmark_scheme import MOUTH
from talking_face.lightning_modules.face2vid_losses import DEFAULT_LOSS_WEIGHTS
from talking_face.lightning_modules.face2vid_metrics import (
    PSNRFromMSE,
    estimate_flow,
    face_region,
    frame_difference_energy,
    mouth_box,
    mouth_lmd_on_frames,
    resize_clip,
    temporal_warping_error,
)
from talking_face.lightning_modules.face2vid_module import Face2VidModule
from talking_face.lightning_modules.networks.warp import warp
from talking_face.lightning_modules.rollout import generate_video

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = {"image_size": 32, "lr_generator": 1e-3, "lr_discriminator": 1e-3}
"""On top of the shared tiny Face2Vid (``tiny_face2vid``): smaller frames and a faster pace."""
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tiny_cache: Path) -> TalkingFaceDataModule:
    module = TalkingFaceDataModule(
        str(tiny_cache), stage="face2vid", batch_size=4, clip_length=4, clip_stride=4
    )
    module.setup()
    return module


@pytest.fixture(scope="module")
def fixed_batches(data: TalkingFaceDataModule) -> list[dict]:
    """Three batches of two validation clips (a fixed reference each: no randomness in the data)."""
    items = [data.dataset("val")[i] for i in range(6)]
    return [default_collate(items[i : i + 2]) for i in range(0, 6, 2)]


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = trainer.callback_metrics
        self.losses.append(
            (float(metrics["train/generator_loss_step"]), float(metrics["train/discriminator_loss_step"]))
        )


# --- learning, checkpoints, resume ------------------------------------------------------------------------


def _face_crop(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A real packaged photo (skimage's astronaut) cropped around its face: [3, S, S], landmarks [68, 2]."""
    import cv2
    from skimage.data import astronaut

    from talking_face.datamodules.faces.detector import make_detector

    image = astronaut()
    points = make_detector("dlib").detect(image)[0].landmarks
    low, high = points.min(0), points.max(0)
    scale = 0.7 * size / (high - low).max()
    shift = size / 2 - scale * (low + high) / 2
    affine = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]])
    crop = cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_AREA)
    return torch.from_numpy(crop).permute(2, 0, 1).float() / 255, torch.from_numpy(
        points * scale + shift
    ).float()


def moving_face_batches(count: int, seed: int, size: int = 32, batch: int = 4, length: int = 4) -> list[dict]:
    """Stage-2 batches of a real face that moves (drifting by up to ~3 px) and opens its mouth (the chin and
    lower lip pulled down), made by warping the photo; the landmarks move with it, and the reference is the
    still photo. Everything that changes is told by the landmarks, so a model that follows them beats
    copying the reference by a wide margin; one that does not, cannot."""
    photo, base = _face_crop(size)
    rng = np.random.default_rng(seed)
    ys, xs = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    mouth = base[MOUTH.start : MOUTH.stop].mean(0)
    radius = 0.15 * size
    below = torch.exp(-((xs - mouth[0]) ** 2 + (ys - mouth[1] - radius) ** 2) / (2 * radius**2))
    below = below * (ys > mouth[1] - 1)  # a bump under the mouth: the chin and lower lip
    lower = [*range(5, 12), *range(55, 60), *range(64, 68)]  # jaw around the chin, lower lip outside/inside
    at = base[lower].round().long().clamp(0, size - 1)
    pulled = below[at[:, 1], at[:, 0]]
    batches = []
    for index in range(count):
        items = []
        for row in range(batch):
            start, velocity = rng.uniform(-2.5, 2.5, 2), rng.uniform(-0.8, 0.8, 2)
            opening = rng.uniform(0, 2.5) * np.abs(np.sin(rng.uniform(0, np.pi) + 0.8 * np.arange(length)))
            frames, landmarks = [], []
            for t in range(length):
                shift = torch.tensor(start + velocity * t, dtype=torch.float32)
                flow = -shift.view(1, 2, 1, 1).expand(1, 2, size, size).clone()
                flow[:, 1] -= float(opening[t]) * below  # backward warp: content moves down by opening * bump
                frames.append(warp(photo[None], flow)[0])
                points = base + shift
                points[lower, 1] += float(opening[t]) * pulled
                landmarks.append(points)
            items.append(
                {
                    "frames": torch.stack(frames),
                    "landmarks": torch.stack(landmarks),
                    "reference_frame": photo,
                    "reference_landmarks": base,
                    "start": torch.tensor(0),
                    "speaker": "astronaut",
                    "utterance": f"moving{seed}_{index}_{row}",
                }
            )
        batches.append(default_collate(items))
    return batches


@pytest.fixture(scope="module")
def trained(make_trainer, tiny_face2vid) -> dict:
    L.seed_everything(0)
    module = tiny_face2vid(**FAST, own_previous_start=30, own_previous_end=60)
    recorder = LossRecorder()
    held_out = DataLoader(moving_face_batches(2, seed=1), batch_size=None)
    before = make_trainer().validate(module, held_out, verbose=False)[0]
    trainer = make_trainer(max_epochs=12, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(module, DataLoader(moving_face_batches(6, seed=0), batch_size=None, shuffle=True))
    after = make_trainer().validate(module, held_out, verbose=False)[0]
    return {"module": module, "trainer": trainer, "losses": recorder.losses, "before": before, "val": after}


@pytest.mark.slow
def test_training_lowers_the_loss_and_beats_copying_the_reference(trained: dict) -> None:
    assert len(trained["losses"]) == 72 and np.isfinite(trained["losses"]).all()
    before, after = trained["before"], trained["val"]
    # untrained, the landmark priors already move the reference's face where the landmarks say
    assert before["val/psnr"] > before["val/psnr_reference"] + 1.0, before
    # training improves on that (autoregressive, on held-out motions), everywhere and in the mouth
    assert after["val/l1"] < before["val/l1"]
    assert after["val/psnr"] > before["val/psnr"] + 0.5, (before, after)
    assert (
        after["val/psnr_mouth"] > before["val/psnr_mouth"] and after["val/ssim"] > after["val/ssim_reference"]
    )
    assert np.isfinite(after["val/warp_error"]) and np.isfinite(after["val/flicker"])


@pytest.mark.slow
def test_without_landmark_priors_the_generator_learns_the_motion_itself(make_trainer, tiny_face2vid) -> None:
    L.seed_everything(0)
    module = tiny_face2vid(**FAST, own_previous_start=30, own_previous_end=60, use_landmark_prior=False)
    held_out = DataLoader(moving_face_batches(2, seed=1), batch_size=None)
    before = make_trainer().validate(module, held_out, verbose=False)[0]
    train = DataLoader(moving_face_batches(6, seed=0), batch_size=None, shuffle=True)
    make_trainer(max_epochs=12, limit_val_batches=0).fit(module, train)
    after = make_trainer().validate(module, held_out, verbose=False)[0]
    assert before["val/psnr"] < before["val/psnr_reference"] + 0.5  # it starts by copying
    assert after["val/psnr"] > after["val/psnr_reference"] + 1.0, after
    assert after["val/l1"] < 0.9 * before["val/l1"]


@pytest.mark.slow
def test_checkpoint_round_trip_gives_identical_frames(trained: dict, data, tmp_path: Path) -> None:
    module, trainer = trained["module"], trained["trainer"]
    path = tmp_path / "face2vid.ckpt"
    trainer.save_checkpoint(path)
    loaded = Face2VidModule.load_from_checkpoint(path, map_location="cpu")
    item = data.dataset("test_speakers")[0]  # a person never seen in training
    frames, landmarks = resize_clip(item["frames"], item["landmarks"], 32)
    reference, reference_landmarks = resize_clip(item["reference_frame"], item["reference_landmarks"], 32)
    expected = generate_video(module.frame_rollout(), landmarks, reference, reference_landmarks)
    assert expected.shape == frames.shape
    reloaded = generate_video(loaded.frame_rollout(), landmarks, reference, reference_landmarks)
    assert torch.equal(reloaded, expected)


@pytest.mark.slow
def test_resume_gives_the_same_next_losses(
    make_trainer, tiny_face2vid, fixed_batches: list[dict], tmp_path: Path
) -> None:
    """Two epochs in one go == one epoch, a checkpoint, and a resumed second epoch (optimisers, schedulers,
    spectral-norm state and the own-previous-frame draws all restored)."""
    options = FAST | {"own_previous_start": 0, "own_previous_end": 4, "lr_schedule": "linear_decay"}

    def fit(callbacks: list, ckpt_path: Path | None = None) -> L.Trainer:
        trainer = make_trainer(max_epochs=2, limit_val_batches=0, callbacks=callbacks)
        trainer.fit(tiny_face2vid(**options), DataLoader(fixed_batches, batch_size=None), ckpt_path=ckpt_path)
        return trainer

    class StopAfterFirstEpoch(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            trainer.should_stop = True

    L.seed_everything(0)
    straight = LossRecorder()
    fit([straight])
    L.seed_everything(0)
    first = LossRecorder()
    interrupted = fit([first, StopAfterFirstEpoch()])
    interrupted.save_checkpoint(tmp_path / "epoch0.ckpt")
    L.seed_everything(1234)  # nothing may depend on the global random state
    second = LossRecorder()
    fit([second], ckpt_path=tmp_path / "epoch0.ckpt")
    assert len(straight.losses) == 6 and len(first.losses) == 3 and len(second.losses) == 3
    np.testing.assert_allclose(first.losses, straight.losses[:3], rtol=1e-6)
    np.testing.assert_allclose(second.losses, straight.losses[3:], rtol=1e-6)


# --- the NaN guard ----------------------------------------------------------------------------------------


def test_non_finite_loss_stops_before_any_step_and_names_the_batch(
    make_trainer, tiny_face2vid, fixed_batches, monkeypatch
) -> None:
    L.seed_everything(0)
    module = tiny_face2vid(**FAST)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    real_losses = module._generator_losses

    def poisoned(clip, fake):
        losses = real_losses(clip, fake)
        return losses | {"l1": losses["l1"] * float("nan")}

    monkeypatch.setattr(module, "_generator_losses", poisoned)
    trainer = make_trainer(max_epochs=1, limit_val_batches=0)
    names = f"{fixed_batches[0]['speaker'][0]}/{fixed_batches[0]['utterance'][0]}"
    with pytest.raises(FloatingPointError, match=names) as error:
        trainer.fit(module, DataLoader(fixed_batches, batch_size=None))
    assert "generator loss" in str(error.value) and "l1=nan" in str(error.value)
    after = dict(module.named_parameters())  # (the critics' spectral-norm power iterations may advance)
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(not optimizer.state for optimizer in trainer.optimizers)


def test_nan_in_a_batch_is_reported_with_its_utterances(make_trainer, tiny_face2vid, fixed_batches) -> None:
    batch = copy.deepcopy(fixed_batches[0])
    batch["landmarks"][1, 2, 30] = float("nan")
    with pytest.raises(FloatingPointError, match=f"landmarks .*{batch['utterance'][1]}"):
        make_trainer(fast_dev_run=1).fit(tiny_face2vid(**FAST), DataLoader([batch], batch_size=None))


def test_clips_shorter_than_k_plus_one_are_refused(make_trainer, tiny_face2vid, fixed_batches) -> None:
    batch = {k: v[:, :2] if k in ("frames", "landmarks") else v for k, v in fixed_batches[0].items()}
    with pytest.raises(ValueError, match="fewer than K\\+1 = 3"):
        make_trainer(fast_dev_run=1).fit(tiny_face2vid(**FAST), DataLoader([batch], batch_size=None))


# --- switches, precision, memory format -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("use_flow", "use_attention", "use_reference_warp"),
    [(True, True, True), (False, True, True), (True, False, False), (False, False, False)],
)
def test_every_switch_combination_trains_and_validates(
    make_trainer, tiny_face2vid, fixed_batches, use_flow: bool, use_attention: bool, use_reference_warp: bool
) -> None:
    module = tiny_face2vid(
        **FAST, use_flow=use_flow, use_attention=use_attention, use_reference_warp=use_reference_warp
    )
    loader = DataLoader(fixed_batches[:1], batch_size=None)
    make_trainer(fast_dev_run=1).fit(module, loader, loader)
    landmarks = resize_clip(fixed_batches[0]["frames"], fixed_batches[0]["landmarks"], 32)[1]
    reference = resize_clip(fixed_batches[0]["reference_frame"], fixed_batches[0]["reference_landmarks"], 32)
    with torch.no_grad():
        out = module.frame_rollout().start(*reference).unroll(landmarks)
    assert out.frame.shape == (2, 4, 3, 32, 32)
    assert (out.flow is None) != use_flow and (out.warped_reference is None) != use_reference_warp


def test_channels_last_gives_the_same_frames_and_trains(make_trainer, tiny_face2vid, fixed_batches) -> None:
    L.seed_everything(0)
    plain = tiny_face2vid(**FAST)
    fast = tiny_face2vid(**FAST, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    conv = fast.generator.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    item = {k: v[0] for k, v in fixed_batches[0].items() if torch.is_tensor(v)}
    _, landmarks = resize_clip(item["frames"], item["landmarks"], 32)
    reference, reference_landmarks = resize_clip(item["reference_frame"], item["reference_landmarks"], 32)
    torch.testing.assert_close(
        generate_video(fast.frame_rollout(), landmarks, reference, reference_landmarks),
        generate_video(plain.frame_rollout(), landmarks, reference, reference_landmarks),
        atol=1e-5,
        rtol=1e-4,
    )
    make_trainer(fast_dev_run=1).fit(fast, DataLoader(fixed_batches[:1], batch_size=None))


def test_bf16_mixed_precision_trains(make_trainer, tiny_face2vid, fixed_batches) -> None:
    recorder = LossRecorder()
    trainer = make_trainer(max_steps=4, precision="bf16-mixed", limit_val_batches=0, callbacks=[recorder])
    trainer.fit(tiny_face2vid(**FAST), DataLoader(fixed_batches[:2], batch_size=None))
    assert len(recorder.losses) == 2 and np.isfinite(recorder.losses).all()


# --- inference API ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sequence(data) -> dict:
    record = data.splits["test_speakers"][0]
    frames = torch.from_numpy(np.array(record.array("frames")[:9])).permute(0, 3, 1, 2).float() / 255
    landmarks = torch.from_numpy(np.array(record.array("landmarks")[:9], np.float32))
    frames, landmarks = resize_clip(frames, landmarks, 32)
    return {"landmarks": landmarks, "reference": frames[4], "reference_landmarks": landmarks[4]}


def test_generation_in_chunks_equals_one_go(tiny_face2vid, sequence: dict) -> None:
    L.seed_everything(0)
    module = tiny_face2vid(**FAST)
    with torch.no_grad():  # open the motion heads so that the previous frames matter
        torch.nn.init.normal_(module.generator.motion_head.weight, std=0.2)
    whole = generate_video(module.frame_rollout(), **sequence)
    assert whole.shape == (9, 3, 32, 32) and whole.min() >= 0 and whole.max() <= 1
    for chunk_frames in (1, 4):
        chunked = generate_video(module.frame_rollout(), **sequence, chunk_frames=chunk_frames)
        torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    head, tail = sequence["landmarks"][None, :5], sequence["landmarks"][None, 5:]
    start = (sequence["reference"][None], sequence["reference_landmarks"][None])

    def continued(previous: int) -> torch.Tensor:
        """The tail made by a new rollout that continues from the last ``previous`` frames of the head."""
        rollout = module.frame_rollout().start(*start)
        rollout.continue_from(whole[None, 5 - previous : 5], head[:, -previous:])
        return rollout.unroll(tail).frame[0]

    with torch.no_grad():
        torch.testing.assert_close(continued(2), whole[5:], rtol=0, atol=1e-6)
        # fewer than K previous frames: the reference fills in, as at the start
        assert not torch.allclose(continued(1), whole[5:])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"reference": torch.rand(3, 48, 48)},
            r"reference \(of a 32-px model\) must be \[B, 3, 32, 32\]",
        ),
        ({"landmarks": torch.full((3, 68, 2), float("nan"))}, "NaN"),
        ({"landmarks": torch.zeros(0, 68, 2)}, "no frame"),
        ({"landmarks": torch.zeros(3, 20, 2)}, r"landmarks must be \[T, 68, 2\], got \[3, 20, 2\]"),
    ],
)
def test_generation_rejects_bad_inputs(tiny_face2vid, sequence: dict, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_video(tiny_face2vid(**FAST).frame_rollout(), **(sequence | change))


# --- metrics ----------------------------------------------------------------------------------------------


def _real_clip(data, frames: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    record = data.splits["train"][0]
    images = torch.from_numpy(np.array(record.array("frames")[:frames])).permute(0, 3, 1, 2).float() / 255
    return images, torch.from_numpy(np.array(record.array("landmarks")[:frames], np.float32))


def test_classical_flow_finds_a_known_shift_on_a_real_face(data) -> None:
    frames, _ = _real_clip(data, 1)
    moved = torch.roll(frames, shifts=2, dims=-1)  # content 2 px to the right: the flow reads 2 px left
    flow, valid = estimate_flow(moved, frames)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert torch.median(flow[inner][:, 0]) == pytest.approx(-2.0, abs=0.2)
    assert torch.median(flow[inner][:, 1]).abs() < 0.2 and valid[inner].mean() > 0.9
    assert (warp(frames, flow) - moved)[inner].abs().mean() < 0.02


def test_temporal_warping_error_and_flicker_rank_videos(data) -> None:
    frames, _ = _real_clip(data)
    flow, valid = estimate_flow(frames[1:], frames[:-1])
    real_error, count = temporal_warping_error(frames[None], flow[None], valid[None])
    flickering = (frames + 0.1 * torch.randn(len(frames), 1, 1, 1)).clamp(0, 1)
    flicker_error, _ = temporal_warping_error(flickering[None], flow[None], valid[None])
    frozen = frames[:1].expand_as(frames)
    assert count.shape == (1, 5) and (count > 0).all()
    assert real_error.mean() < 0.5 * flicker_error.mean()
    assert frame_difference_energy(flickering[None]) > frame_difference_energy(frames[None])
    assert frame_difference_energy(frozen[None]).item() == 0.0


def test_mouth_box_and_pooled_psnr() -> None:
    landmarks = torch.full((1, 68, 2), 5.0)
    landmarks[0, MOUTH, 0] = torch.linspace(20, 28, len(MOUTH))  # a mouth 8 px wide, 2 px high
    landmarks[0, MOUTH, 1] = torch.linspace(30, 32, len(MOUTH))
    box = mouth_box(landmarks, 40)[0, 0]
    assert box.shape == (40, 40) and box.dtype == torch.bool
    rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
    assert (cols.min(), cols.max()) == (18, 30) and (rows.min(), rows.max()) == (28, 34)  # margins 2 px
    metric = PSNRFromMSE()
    metric.update(torch.tensor([0.01, 0.0]), torch.tensor([1.0, 1.0]))  # pooled MSE 0.005
    assert metric.compute().item() == pytest.approx(10 * np.log10(1 / 0.005))


def test_face_region_fills_the_outline_of_real_landmarks(data) -> None:
    import cv2

    _, landmarks = _real_clip(data, 2)
    region = face_region(landmarks, 128)[:, 0]
    for points, inside in zip(landmarks.numpy(), region.numpy(), strict=True):
        outline = np.concatenate([points[0:17], points[26:16:-1]]).round().astype(np.int32)
        expected = cv2.fillPoly(np.zeros((128, 128), np.uint8), [outline], 1).astype(bool)
        assert (expected != inside).mean() < 0.015  # only pixels on the outline may differ
        nose = points[30].round().astype(int)
        assert inside[nose[1], nose[0]] and not inside[0, 0] and not inside[127, 127]


def test_lmd_on_real_frames_is_small_and_nan_without_a_face(data) -> None:
    frames, landmarks = _real_clip(data, 3)
    lmd = mouth_lmd_on_frames(frames, landmarks)
    assert lmd.shape == (3,) and (lmd < 3.0).all()  # the cache's own (smoothed) landmarks, in 128-px pixels
    small, small_landmarks = resize_clip(frames, landmarks, 64)  # upscaled for the detector, same answer
    torch.testing.assert_close(mouth_lmd_on_frames(small, small_landmarks), lmd, atol=1.0, rtol=0)
    assert torch.isnan(mouth_lmd_on_frames(torch.full((1, 3, 64, 64), 0.5), small_landmarks[:1])).all()


# --- losses, perceptual weights, configuration ------------------------------------------------------------


def test_loss_weights_are_checked_and_perceptual_stays_off_without_local_weights(
    tiny_face2vid, tmp_path, caplog
) -> None:
    with pytest.raises(ValueError, match="unknown loss names \\['typo'\\]"):
        tiny_face2vid(**FAST, loss_weights={"typo": 1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        tiny_face2vid(**FAST, loss_weights={"l1": -1.0})
    module = tiny_face2vid(**FAST, perceptual_weights=str(tmp_path / "missing.pth"))
    assert module.perceptual is None and module.loss_weights["perceptual"] == 0.0
    assert set(module.loss_weights) == set(DEFAULT_LOSS_WEIGHTS)


def test_perceptual_loss_uses_local_weights_and_keeps_them_out_of_checkpoints(
    tiny_face2vid, tmp_path: Path
) -> None:
    """A stand-in VGG19 state dict (random weights, torchvision's key names) on disk switches it on."""
    torch.manual_seed(0)
    layout, state, index = (
        (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512),
        {},
        0,
    )
    channels = 3
    for item in layout:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(item, channels, 3, 3) * (2 / (9 * channels)) ** 0.5
        state[f"features.{index}.bias"] = torch.zeros(item)
        channels, index = item, index + 2
    torch.save(state, tmp_path / "vgg19.pth")
    module = tiny_face2vid(**FAST, perceptual_weights=str(tmp_path / "vgg19.pth"))
    assert module.perceptual is not None and module.loss_weights["perceptual"] > 0
    assert not any(key.startswith("perceptual") for key in module.state_dict())
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert module.perceptual(a, a).item() == 0.0 and module.perceptual(a, b).item() > 0


@pytest.mark.slow
def test_cli_fast_dev_run_writes_the_media_video(tiny_cache: Path, tmp_path: Path, monkeypatch) -> None:
    """(tests/test_cli.py instantiates every config; this runs the tiny one, media callback included.)"""
    from talking_face.cli import cli_main
    from talking_face.datamodules.media import probe_video

    monkeypatch.chdir(tmp_path)  # the config's relative outputs/ paths land here
    cli_main(
        [
            "fit",
            "-c",
            str(CONFIGS / "face2vid.yaml"),
            "-c",
            str(CONFIGS / "face2vid_tiny.yaml"),
            "--data.cache_dir",
            str(tiny_cache),
            "--trainer.fast_dev_run",
            "1",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--model.image_size",
            "32",
        ]
    )
    videos = sorted(tmp_path.rglob("media/*.mp4"))
    assert videos, list(tmp_path.rglob("*"))
    info = probe_video(videos[0])
    assert (info.width, info.height) == (5 * 128, 128 + 16)
