"""Models that two or more chapters reuse. Shapes in comments are ``(B, C, H, W)``."""
from __future__ import annotations

from torch import nn

__all__ = ["LeNet5", "SmallCNN", "count_parameters"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class SmallCNN(nn.Module):
    """Two conv blocks and a linear classifier for 28×28 grey digits (chapter 1's first CNN).

    (B, 1, 28, 28) -> conv 5×5, ``c1`` ch -> ReLU -> max-pool 2 -> (B, c1, 14, 14)
                   -> conv 5×5, ``c2`` ch -> ReLU -> max-pool 2 -> (B, c2, 7, 7) -> linear -> (B, 10)
    """

    def __init__(self, c1: int = 8, c2: int = 16, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),           # (B, c2, 7, 7)
        )
        self.classifier = nn.Linear(c2 * 7 * 7, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max-pooling, for 28×28 inputs (padding 2 on the first conv).

    (B, 1, 28, 28) -> conv5 6 -> pool -> (B, 6, 14, 14) -> conv5 16 -> pool -> (B, 16, 5, 5)
                   -> 120 -> 84 -> 10
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), act(), nn.MaxPool2d(2),  # (B, 6, 14, 14)
            nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2),                      # (B, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
