"""Plain ``nn.Module`` networks of the stages (no Lightning inside; the LightningModules own the training)."""

from lightning_modules.networks.landmark_net import (
    DurationPredictor,
    LandmarkNet,
    length_regulate,
    run_length_encode,
)

__all__ = ["DurationPredictor", "LandmarkNet", "length_regulate", "run_length_encode"]
