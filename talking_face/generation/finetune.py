"""``talking-face finetune``: personalise Face2Vid to one face, from a clip of it or from a single photo.

A Face2Vid trained on a few identities renders a face it never saw from the reference frame alone; a few
hundred more training steps on that face teach it the person's own mouth, teeth and skin. Steps:

1. **Videos of the face** (``face_videos``), as aligned crops with 68 landmarks:

   - from a clip: decoded at 25 fps with its landmarks tracked and smoothed (``face_input.load_face``, the
     preprocessing's detector), cut into segments of a few seconds at frames without a face;
   - from a photo: a few sentences spoken by the project's TTS voices, animated on the photo by the built-in
     corpus' warping engine (``datamodules.synthetic.face_animator.FaceAnimator``: visemes with
     coarticulation, head motion, blinks; a speaking style drawn per sentence), then tracked with the
     detector as the corpus is when it is preprocessed;

   then cropped exactly as preprocessing crops (a similarity from the stable points to the template,
   smoothed over time, ``datamodules.faces.alignment``).
2. **Training** (``train_on``): the checkpoint's ``Face2VidModule`` (generator AND critics: the shipped
   checkpoint keeps both) goes on with its own ``training_step`` on clips of those videos
   (``datamodules.datasets.FaceClipDataset``, reference frames from the other videos), with a Lightning
   Trainer, a fresh Adam at ``lr`` and the previous frames the generator's own at the rate the checkpoint's
   training had reached. A working folder beside ``out`` keeps the videos and a
   checkpoint every ``save_every`` steps, so an interrupted run goes on where it stopped.
3. **Export**: ``checkpoints.export_checkpoint`` writes the personalised checkpoint atomically, with a card
   saying where it came from; ``talking-face generate --face2vid-checkpoint OUT`` uses it.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from talking_face.datamodules import timebase
from talking_face.datamodules.atomic import atomic_path, write_json
from talking_face.datamodules.frame_runs import true_runs
from talking_face.errors import InputError, UsageError

__all__ = [
    "SENTENCES",
    "FaceVideo",
    "crop_video",
    "face_videos",
    "finetune",
    "own_previous_reached",
    "train_on",
]

SENTENCES: tuple[str, ...] = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
)
"""Harvard sentences (IEEE 1969, phonetically balanced) the photo's videos speak, in this order."""

SPEAKER = "face"
"""The one speaker name of the finetuning videos (``FaceClipDataset`` draws references within a speaker)."""


@dataclass(frozen=True)
class FaceVideo:
    """One video of the face in memory, read like a cached record (``datamodules.cache.CachedUtterance``):
    ``frames`` uint8 [T, S, S, 3] aligned crops, ``landmarks`` float32 [T, 68, 2] crop pixels."""

    utterance: str
    frames: np.ndarray
    landmarks: np.ndarray
    speaker: str = SPEAKER

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def array(self, name: str) -> np.ndarray:
        if name not in ("frames", "landmarks"):
            raise KeyError(f"a finetuning video holds frames and landmarks only, not {name!r}")
        return getattr(self, name)


def crop_video(utterance: str, frames: Sequence[np.ndarray], landmarks: np.ndarray, size: int) -> FaceVideo:
    """Frames [T, H, W, 3] and their landmarks [T, 68, 2] (image pixels) -> aligned ``size``-px crops, as
    preprocessing makes them: a similarity per frame from the stable points to the template, smoothed over
    time with the preprocessing's window."""
    from talking_face.datamodules.faces.alignment import (
        estimate_crop_transform,
        smooth_transforms,
        transform_points,
        warp_to_crop,
    )
    from talking_face.datamodules.preprocess import PreprocessConfig

    transforms = smooth_transforms(estimate_crop_transform(landmarks, size), PreprocessConfig.crop_smoothing)
    crops = np.stack([warp_to_crop(np.asarray(f), m, size) for f, m in zip(frames, transforms, strict=True)])
    return FaceVideo(utterance, crops, transform_points(landmarks, transforms).astype(np.float32))


def _runs(found: np.ndarray, length: int, minimum: int) -> list[slice]:
    """Runs of consecutive True in ``found``, cut into pieces of ``length`` frames; pieces shorter than
    ``minimum`` are dropped (a tail shorter than that joins the piece before it)."""
    pieces = []
    for start, stop in true_runs(found):
        cuts = list(range(start, stop, length))
        if len(cuts) > 1 and stop - cuts[-1] < minimum:
            cuts.pop()
        bounds = [*cuts, stop]
        pieces += [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b - a >= minimum]
    return pieces


def _segments(
    name: str, frames: np.ndarray, landmarks: np.ndarray, found: np.ndarray, size: int, length: int
) -> list[FaceVideo]:
    """The frames where a face was found, in cropped segments of ``length`` frames (at least a second)."""
    pieces = _runs(found, length, minimum=min(length, timebase.FPS))
    return [crop_video(f"{name}_{i:03d}", frames[p], landmarks[p], size) for i, p in enumerate(pieces)]


def _canvas(image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The photo around the face at the crop's scale: a [2S, 2S, 3] canvas with the S-px crop in its middle
    (room for head motion), and the landmarks in it. Animating this instead of a large photo keeps the warp
    cheap; the crop's resolution is all the training sees anyway."""
    from talking_face.datamodules.faces.alignment import (
        estimate_crop_transform,
        transform_points,
        warp_to_crop,
    )

    transform = estimate_crop_transform(landmarks, size)
    transform[:, 2] += size / 2
    return warp_to_crop(image, transform, 2 * size), transform_points(landmarks, transform)


def _photo_videos(track, size: int, sentences: int, seed: int, progress: bool) -> list[FaceVideo]:
    """``sentences`` videos of the photo speaking (TTS timings -> visemes -> the corpus' warping engine),
    tracked with the detector and cropped as the corpus is when it is preprocessed (frames where the
    detector loses the face are left out, as preprocessing would)."""
    from tqdm.auto import tqdm

    from talking_face.datamodules.faces.detector import make_detector, smooth_landmarks, track_landmarks
    from talking_face.datamodules.preprocess import PreprocessConfig
    from talking_face.datamodules.synthetic.face_animator import FaceAnimator
    from talking_face.datamodules.synthetic.visemes import SpeakerStyle
    from talking_face.datamodules.tts import default_voices, synthesize

    if not 1 <= sentences <= len(SENTENCES):
        raise UsageError("sentences", f"give 1 to {len(SENTENCES)}, got {sentences}")
    canvas, neutral = _canvas(track.frames[0], track.landmarks[0], size)
    animator = FaceAnimator(canvas, neutral)
    detector = make_detector(PreprocessConfig.detector)
    voices = default_voices()
    rng = np.random.default_rng(seed)
    videos = []
    for index in tqdm(range(sentences), desc="animate", unit="sentence", disable=not progress):
        speech = synthesize(SENTENCES[index], voices[index % len(voices)])
        num_frames = timebase.num_frames_for(round(speech.duration * timebase.SAMPLE_RATE))
        animation = animator.render(speech.phonemes, num_frames, SpeakerStyle.sample(rng), rng)
        landmarks, found = track_landmarks(iter(animation.frames), detector, PreprocessConfig.redetect_every)
        landmarks = smooth_landmarks(landmarks, found, PreprocessConfig.landmark_smoothing)
        name = f"{track.source.stem}_tts{index:02d}"
        videos += _segments(name, animation.frames, landmarks, found, size, num_frames)
    return videos


def face_videos(
    face: str | Path,
    size: int,
    sentences: int = 4,
    max_seconds: float = 60.0,
    segment_seconds: float = 3.0,
    face_index: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[FaceVideo]:
    """Training videos of the face in ``face`` (a photo or a clip), as ``size``-px crops (see the module
    docstring). A clip gives its first ``max_seconds`` in segments of ``segment_seconds``; a photo gives
    ``sentences`` animated sentences. Errors (no face, unreadable file) name the file."""
    from talking_face.generation.face_input import load_face

    track = load_face(face, max_seconds, face_index, progress=progress)
    try:
        if track.kind == "photo":
            videos = _photo_videos(track, size, sentences, seed, progress)
        else:
            length = max(round(segment_seconds * timebase.FPS), 2)
            videos = _segments(track.source.stem, track.frames, track.landmarks, track.found, size, length)
    finally:
        track.close()
    if not videos:
        raise InputError(f"{face}: no second of video with the face found in it: nothing to learn")
    return videos


class _Budget(L.Callback):
    """Counts generator steps (restored on resume), shows them in a progress bar, saves a resumable
    checkpoint every ``save_every`` steps (atomic) and stops the run after ``steps``."""

    def __init__(self, steps: int, save_every: int, path: Path | None, progress: bool) -> None:
        self.steps, self.save_every, self.path, self.progress = steps, save_every, path, progress
        self.bar = None

    @staticmethod
    def done(module) -> int:
        return module.lr_schedulers()[0].last_epoch

    def on_train_start(self, trainer, pl_module) -> None:
        from tqdm.auto import tqdm

        done = self.done(pl_module)
        self.bar = tqdm(
            total=self.steps, initial=done, desc="finetune", unit="step", disable=not self.progress
        )
        trainer.should_stop = done >= self.steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = self.done(pl_module)
        metrics = trainer.callback_metrics
        self.bar.update(1)
        if "train/generator_l1_step" in metrics:
            self.bar.set_postfix(l1=f"{float(metrics['train/generator_l1_step']):.4f}")
        if self.path is not None and (done % self.save_every == 0 or done >= self.steps):
            with atomic_path(self.path) as tmp:
                trainer.save_checkpoint(tmp)
        if done >= self.steps:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        self.bar.close()


def train_on(
    module,
    videos: Sequence,
    steps: int,
    batch_size: int = 4,
    clip_length: int = 4,
    lr: float = 1e-4,
    own_previous: float = 1.0,
    device: str = "cpu",
    work_dir: str | Path | None = None,
    save_every: int = 50,
    seed: int = 0,
    progress: bool = True,
) -> L.Trainer:
    """Go on training a copy of ``module`` (a ``Face2VidModule``, left as it is) for ``steps`` batches of
    ``videos``' clips.

    Args:
        module: the Face2Vid to personalise (generator and critics are both trained on).
        videos: ``FaceVideo``s or cached records (``datamodules.cache.CachedUtterance``) of one person.
        steps: generator steps (batches).
        batch_size: clips per batch.
        clip_length: frames per clip (at least the module's K + 1).
        lr: Adam learning rate of the generator and the critics (constant).
        own_previous: probability that a previous frame is the generator's own (``own_previous_reached``
            gives the rate where the checkpoint's own training stopped).
        device: cpu, cuda, cuda:1, ...
        work_dir: where a resumable checkpoint (``last.ckpt``) is kept; a run finding one goes on from it.
        save_every: steps between resumable checkpoints.
        seed: seeds the clip order and the reference draws.
        progress: show a progress bar.
    Returns:
        the Trainer: ``trainer.lightning_module`` is the finetuned copy, ``trainer.save_checkpoint`` writes it
        with its critics and optimiser states.
    """
    from talking_face.datamodules.datasets import FaceClipDataset

    if steps < 1 or batch_size < 1:
        raise UsageError("steps", f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    hp = module.hparams
    if clip_length < hp.num_previous + 1:
        raise UsageError(
            "clip_length", f"must be >= K + 1 = {hp.num_previous + 1} for this model, got {clip_length}"
        )
    dataset = FaceClipDataset(videos, clip_length, stride=max(clip_length // 2, 1), random_reference=True)
    if len(dataset) == 0:
        raise InputError(f"no video has {clip_length} frames: nothing to train on")
    # A copy with this run's hyperparameters: a constant lr, and previous frames the generator's own at a
    # fixed rate from the first step (the module's schedule would count steps from 0 again in a new run).
    finetuning = {
        "lr_generator": lr, "lr_discriminator": lr, "lr_schedule": "constant",
        "own_previous_start": 0, "own_previous_end": 0, "own_previous_max": own_previous,
    }  # fmt: skip
    tuned = type(module)(**(dict(hp) | finetuning))
    tuned.load_state_dict(module.state_dict())
    L.seed_everything(seed, verbose=False)
    loader = DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    checkpoint = None if work_dir is None else Path(work_dir) / "last.ckpt"
    target = torch.device(device)
    trainer = L.Trainer(
        accelerator="gpu" if target.type == "cuda" else "cpu",
        devices=[target.index or 0] if target.type == "cuda" else 1,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[_Budget(steps, save_every, checkpoint, progress)],
        default_root_dir=work_dir,
    )
    resume = checkpoint if checkpoint is not None and checkpoint.is_file() else None
    with warnings.catch_warnings():  # epochs mean nothing here: a resumed run just draws clips afresh
        warnings.filterwarnings("ignore", message=".*(checkpoint that ended before the epoch|val_dataloader)")
        trainer.fit(tuned, loader, ckpt_path=resume)
    return trainer


def own_previous_reached(module, path: str | Path) -> float:
    """The rate of the generator's own previous frames that the training of ``module`` (loaded from the
    checkpoint ``path``) had reached when it stopped: finetuning goes on from there (a checkpoint saved
    before the switch to own frames would otherwise face them all at once)."""
    steps = int(torch.load(path, map_location="cpu", weights_only=False).get("global_step", 0))
    weights = module.loss_weights
    optimisers = 2 if weights["adversarial"] + weights["temporal_adversarial"] > 0 else 1  # per batch
    return module.own_previous_probability(steps // optimisers)


def _save_videos(folder: Path, videos: list[FaceVideo], settings: dict) -> None:
    with atomic_path(folder / "videos.npz") as tmp:
        arrays = {
            f"{kind}_{i}": getattr(v, kind) for i, v in enumerate(videos) for kind in ("frames", "landmarks")
        }
        np.savez(tmp, names=np.array([v.utterance for v in videos]), **arrays)
    write_json(folder / "settings.json", settings)


def _load_videos(folder: Path, settings: dict) -> list[FaceVideo] | None:
    """The videos a previous run with the same settings made, or None."""
    try:
        if json.loads((folder / "settings.json").read_text()) != settings:
            return None
        with np.load(folder / "videos.npz") as data:
            return [
                FaceVideo(str(name), data[f"frames_{i}"], data[f"landmarks_{i}"])
                for i, name in enumerate(data["names"])
            ]
    except (OSError, ValueError, KeyError):
        return None


def finetune(
    face: str,
    out: str = "outputs/finetuned_face2vid.ckpt",
    checkpoint: str | None = None,
    steps: int = 200,
    batch_size: int = 4,
    clip_length: int = 4,
    lr: float = 1e-4,
    sentences: int = 4,
    max_seconds: float = 60.0,
    face_index: int | None = None,
    own_previous: float | None = None,
    device: str = "cpu",
    save_every: int = 50,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Personalise Face2Vid to the face in ``face``; write the new checkpoint to ``out`` (atomically).

    Args:
        face: a photo of the face (animated by the built-in corpus' warping engine) or a clip of it (its
            own frames are used).
        out: the personalised Face2Vid checkpoint to write (``generate --face2vid-checkpoint OUT``).
        checkpoint: the Face2Vid checkpoint to start from (default: the one shipped with the package).
        steps: training steps (batches); about 200 personalise the shipped model in minutes on a CPU.
        batch_size: clips per step.
        clip_length: frames per clip (at least the model's previous frames + 1).
        lr: learning rate of the generator and its critics.
        sentences: for a photo, how many sentences (2-3 s each) it is animated saying (1-8).
        max_seconds: for a clip, how much of it (from the start) is used.
        face_index: which face when there are several (0 = the largest, the default).
        own_previous: probability that a previous frame is the generator's own in training (default: the
            rate the checkpoint's training had reached, ``own_previous_reached``).
        device: cpu, cuda, cuda:1, ...
        save_every: steps between the resumable checkpoints kept in ``OUT.finetune/`` (deleted at the end);
            running the same command again after an interruption goes on from the last one.
        seed: the animation, the clip order and the reference frames follow from it.
        progress: show progress bars.
    """
    from talking_face.generation.checkpoints import export_checkpoint, load_stage, shipped_checkpoint

    out = Path(out)
    if out.is_dir():
        raise UsageError("out", f"{out}: is a folder; give a file name such as {out / 'face2vid.ckpt'}")
    source = Path(checkpoint) if checkpoint else shipped_checkpoint("face2vid")
    module = load_stage(source, "face2vid")
    size = int(module.hparams.image_size)
    if own_previous is None:
        own_previous = own_previous_reached(module, source)
    work = out.with_name(out.name + ".finetune")
    settings = {  # a run with other settings starts afresh rather than resuming
        "face": str(Path(face).resolve()), "checkpoint": str(source.resolve()), "size": size,
        "sentences": sentences, "max_seconds": max_seconds, "face_index": face_index, "seed": seed,
        "batch_size": batch_size, "clip_length": clip_length, "lr": lr, "own_previous": own_previous,
    }  # fmt: skip
    videos = _load_videos(work, settings)
    if videos is None:
        shutil.rmtree(work, ignore_errors=True)
        videos = face_videos(
            face, size, sentences, max_seconds, face_index=face_index, seed=seed, progress=progress
        )
        _save_videos(work, videos, settings)
    frames = sum(v.num_frames for v in videos)
    if progress:
        print(f"{face}: {len(videos)} videos, {frames} frames of {size}-px crops")
    trainer = train_on(module, videos, steps, batch_size, clip_length, lr, own_previous, device,
                       work_dir=work, save_every=save_every, seed=seed, progress=progress)  # fmt: skip
    final = work / "finetuned.ckpt"
    trainer.save_checkpoint(final)
    card = {
        "finetuned_from": str(source),
        "face": str(face),
        "videos": len(videos),
        "frames": frames,
        "steps": steps,
        "batch_size": batch_size,
        "clip_length": clip_length,
        "lr": lr,
        "seed": seed,
    }
    export_checkpoint(final, out, card)
    shutil.rmtree(work)
    if progress:
        print(f"wrote {out}")
    return out
