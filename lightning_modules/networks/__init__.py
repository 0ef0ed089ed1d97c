"""Plain ``nn.Module`` networks of the stages (no Lightning inside; the LightningModules own the training)."""

from lightning_modules.networks.attention import SpatialSelfAttention
from lightning_modules.networks.discriminator import MultiScaleDiscriminator, PatchDiscriminator
from lightning_modules.networks.generator import Face2VidGenerator, GeneratorOutput
from lightning_modules.networks.landmark_net import (
    DurationPredictor,
    LandmarkNet,
    length_regulate,
    run_length_encode,
)
from lightning_modules.networks.rasterise import rasterise_landmarks
from lightning_modules.networks.warp import flow_to_colour, warp

__all__ = [
    "DurationPredictor",
    "Face2VidGenerator",
    "GeneratorOutput",
    "LandmarkNet",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "SpatialSelfAttention",
    "flow_to_colour",
    "length_regulate",
    "rasterise_landmarks",
    "run_length_encode",
    "warp",
]
