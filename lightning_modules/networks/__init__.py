"""Plain ``nn.Module`` networks of the stages (no Lightning inside; the LightningModules own the training)."""

from talking_face.lightning_modules.networks.attention import SpatialSelfAttention
from talking_face.lightning_modules.networks.discriminator import MultiScaleDiscriminator, PatchDiscriminator
from talking_face.lightning_modules.networks.generator import Face2VidGenerator, GeneratorOutput
from talking_face.lightning_modules.networks.landmark_net import (
    DurationPredictor,
    LandmarkNet,
    length_regulate,
    run_length_encode,
)
from talking_face.lightning_modules.networks.rasterise import rasterise_landmarks
from talking_face.lightning_modules.networks.warp import flow_to_colour, warp

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
