"""Shows what Face2Vid makes of a few fixed validation utterances, as videos people can watch.

Each video is ``real | generated | landmark sketch | flow (colour wheel) | mask`` side by side, made
autoregressively from the first frames of the utterance and a reference of the speaker, exactly as
``generate`` would. The flow and mask panels show the temporal flow and occlusion mask (the weight of the
warped previous frame: white = warped, black = drawn anew); a model without temporal flow shows its
reference flow and mask instead. Written under the trainer's log folder (``media/``) for every logger, and
logged to W&B when the trainer has a ``WandbLogger``. Rank zero only.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from talking_face.datamodules import timebase

PANELS = ("real", "generated", "landmarks", "flow", "mask")


def face2vid_panels(real: Tensor, output, sketches: Tensor, height: int = 128) -> np.ndarray:
    """Frames uint8 [T, H + 16, 5 H, 3]: ``PANELS`` side by side under a line of labels.

    Args:
        real: [T, 3, S, S] in [0, 1]; sketches: [T, Cs, S, S].
        output: a ``GeneratorOutput`` of [T, ...] tensors (one video of ``Face2VidModule.rollout``).
        height: panel side in pixels (nearest-neighbour scaling, so pixels stay visible).
    """
    import cv2

    from talking_face.lightning_modules.networks.rasterise import sketch_to_colour
    from talking_face.lightning_modules.networks.warp import flow_to_colour

    flow = output.flow if output.flow is not None else output.reference_flow
    mask = output.mask if output.mask is not None else output.reference_mask
    frames = len(real)
    blank = torch.zeros(frames, 3, *real.shape[-2:])
    flow_picture = blank if flow is None else flow_to_colour(flow, float(flow.abs().amax().clamp_min(1e-3)))
    mask_picture = blank if mask is None else mask.float().expand(-1, 3, -1, -1)
    panels = [real, output.frame, sketch_to_colour(sketches), flow_picture, mask_picture]
    strip = torch.cat([p.detach().float().cpu().clamp(0, 1) for p in panels], dim=-1)  # [T, 3, S, 5S]
    strip = torch.nn.functional.interpolate(strip, scale_factor=height / real.shape[-1], mode="nearest")
    pixels = (strip * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = np.full((frames, 16, pixels.shape[2], 3), 255, np.uint8)
    for index, name in enumerate(PANELS):
        cv2.putText(labels[0], name, (index * height + 4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    labels[1:] = labels[0]
    return np.concatenate([labels, pixels], axis=1)


class Face2VidMediaCallback(L.Callback):
    """Every ``every_n_epochs`` validation epochs, render ``num_samples`` fixed validation utterances.

    Args:
        num_samples: utterances to show (the first ones of the validation set: the same every time).
        every_n_epochs: how often.
        max_frames: frames per video (from the start of the utterance).
        height: panel side in pixels.
    """

    def __init__(
        self, num_samples: int = 2, every_n_epochs: int = 1, max_frames: int = 50, height: int = 128
    ):
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.max_frames = max_frames
        self.height = height

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            trainer.sanity_checking
            or trainer.current_epoch % self.every_n_epochs
            or trainer.datamodule is None
        ):
            return
        # every rank asks for the folder (trainer.log_dir broadcasts); rank zero renders
        self._render(trainer, pl_module, Path(trainer.log_dir or trainer.default_root_dir) / "media")

    @rank_zero_only
    def _render(self, trainer: L.Trainer, pl_module: L.LightningModule, folder: Path) -> None:
        from talking_face.datamodules.media import write_video
        from talking_face.lightning_modules.eval_mode import eval_mode
        from talking_face.lightning_modules.face2vid_metrics import resize_clip

        dataset = trainer.datamodule.dataset("val")
        folder.mkdir(parents=True, exist_ok=True)
        size = pl_module.hparams.image_size
        for record_index in range(min(self.num_samples, len(dataset.records))):
            record = dataset.records[record_index]
            first_clip = next(i for i, (r, _) in enumerate(dataset.clips) if r == record_index)
            item = dataset[first_clip]  # the speaker's fixed reference frame, as validation uses
            frames = torch.from_numpy(np.array(record.array("frames")[: self.max_frames]))
            frames = frames.permute(0, 3, 1, 2).float() / 255
            landmarks = torch.from_numpy(np.array(record.array("landmarks")[: self.max_frames], np.float32))
            frames, landmarks = resize_clip(frames, landmarks, size)
            reference, reference_landmarks = resize_clip(
                item["reference_frame"], item["reference_landmarks"], size
            )
            rollout = pl_module.frame_rollout()
            with torch.no_grad(), eval_mode(pl_module):
                output = rollout.start(reference[None], reference_landmarks[None]).unroll(landmarks[None])
            video = face2vid_panels(
                frames,
                output.map(lambda x: x[0].cpu()),
                rollout.sketch(landmarks).cpu(),
                self.height,
            )
            name = f"{record.speaker}_{record.utterance}"
            path = write_video(folder / f"epoch{trainer.current_epoch:03d}_{name}.mp4", video, timebase.FPS)
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_video(
                        f"val_media/{name}", [str(path)], step=trainer.global_step
                    )  # 25 fps file
