"""Logs what stage 1 does to a few fixed validation utterances: an animation and a plot.

The animation overlays the true mouth with the predictions of each input mode (audio, text, both);
the plot shows their mouth opening over time. Logged to W&B when the trainer has a ``WandbLogger``
(``log_video`` / ``log_image``), and always written as files under the trainer's log folder
(``media/``), so CSV runs and notebooks get them too. Rendered on global rank zero only; every rank
takes part in finding the log folder (a broadcast under DDP).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from talking_face.callbacks.render import plot_mouth_opening, render_mouth_animation
from talking_face.datamodules import timebase
from talking_face.datamodules.datasets import collate_sequences

MODES = ("audio", "text", "both")


class LandmarkMediaCallback(L.Callback):
    """Every ``every_n_epochs`` epochs and after the last, render ``num_samples`` fixed validation utterances.

    Args:
        num_samples: utterances to show (the first ones of the validation set: the same every time).
        every_n_epochs: how often.
        size: animation side in pixels.
    """

    def __init__(self, num_samples: int = 2, every_n_epochs: int = 1, size: int = 256) -> None:
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.size = size

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1  # epochs count from 0; with every_n_epochs=5: epochs 5, 10, ...
        if trainer.sanity_checking or (epoch % self.every_n_epochs and epoch != trainer.max_epochs):
            return
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "media"  # a broadcast: every rank asks
        if trainer.is_global_zero:
            self._render(trainer, pl_module, folder)

    def _render(self, trainer: L.Trainer, pl_module: L.LightningModule, folder: Path) -> None:
        dataset = trainer.datamodule.dataset("val") if trainer.datamodule else trainer.val_dataloaders.dataset
        items = [dataset[i] for i in range(min(self.num_samples, len(dataset)))]
        batch = {
            k: v.to(pl_module.device) if torch.is_tensor(v) else v
            for k, v in collate_sequences(items).items()
        }
        with torch.no_grad():
            preds = pl_module.predict_modes(batch)
        folder.mkdir(parents=True, exist_ok=True)
        for row, length in enumerate(batch["lengths"].tolist()):
            series = {"truth": batch["mouth"][row, :length]}
            series |= {mode: preds[mode][row, :length] for mode in MODES}
            series = {name: mouth.float().cpu().numpy() for name, mouth in series.items()}
            self._log(trainer, folder, f"{batch['speaker'][row]}_{batch['utterance'][row]}", series)

    def _log(self, trainer: L.Trainer, folder: Path, name: str, series: dict) -> None:
        import matplotlib.pyplot as plt

        from talking_face.datamodules.media import write_video

        stem = f"epoch{trainer.current_epoch:03d}_{name}"
        video = write_video(folder / f"{stem}.mp4", render_mouth_animation(series, self.size), timebase.FPS)
        figure = plot_mouth_opening(series, timebase.FPS)
        figure.suptitle(name)
        figure.savefig(folder / f"{stem}.png", dpi=90)
        plt.close(figure)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                step = trainer.global_step
                logger.log_video(f"val_media/{name}_mouth", [str(video)], step=step, fps=[timebase.FPS])
                logger.log_image(f"val_media/{name}_opening", [str(folder / f"{stem}.png")], step=step)
