"""A small CNN for 3x32x32 inputs."""

from __future__ import annotations

import torch
from torch import nn


def tiny_cnn(num_classes: int = 10, width: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(2 * width, num_classes),
    )


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def example_batch(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32)
