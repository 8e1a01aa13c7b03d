"""Training of super-resolution generators: losses, degradations, data and the loop.

Import from the submodules (``s2scale.train.loop.train``, ``s2scale.train.config.TrainConfig``,
...); the names below are re-exported for convenience and import torch.
"""

from __future__ import annotations

from s2scale.train.config import RECIPES, TrainConfig
from s2scale.train.data import PairDataset, ResumableSampler
from s2scale.train.degradations import TrainingDegradationConfig, degrade_training
from s2scale.train.loop import TrainResult, train
from s2scale.train.losses import (
    EMA,
    PerceptualLoss,
    discriminator_gan_loss,
    generator_gan_loss,
    pixel_loss,
)

__all__ = [
    "EMA",
    "RECIPES",
    "PairDataset",
    "PerceptualLoss",
    "ResumableSampler",
    "TrainConfig",
    "TrainResult",
    "TrainingDegradationConfig",
    "degrade_training",
    "discriminator_gan_loss",
    "generator_gan_loss",
    "pixel_loss",
    "train",
]
