"""The model: a small CNN for single-channel images."""

from __future__ import annotations

import torch


def cnn(classes: int, channels: int, size: int, dropout: float = 0.2) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, channels, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(channels, 2 * channels, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Dropout(dropout),
        torch.nn.Linear(2 * channels * (size // 2) ** 2, classes),
    )
