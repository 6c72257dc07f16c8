"""Models that two or more chapters reuse. Shapes in comments are ``(B, C, H, W)``."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LeNet5", "SmallCNN", "count_parameters", "RandomShift", "LeNetBN", "MLP", "KerasSeedCNN"]


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


# --- Chapter 4: a first full CNN, its MLP rival, and the seeds' Keras model --------------------------------


class RandomShift(nn.Module):
    """Training-time augmentation as a layer: each image is shifted by up to ``max_shift`` pixels and
    rotated by up to ``max_degrees`` (bilinear resampling, border pixels repeated). Identity in eval mode.

    (B, C, H, W) -> (B, C, H, W). Randomness comes from torch's global generator, so
    ``seed_everything`` makes a run repeatable. Put it first in a model to augment every batch.
    """

    def __init__(self, max_shift: float = 2.0, max_degrees: float = 10.0):
        super().__init__()
        if max_shift < 0 or max_degrees < 0:
            raise ValueError(f"max_shift and max_degrees must be >= 0, got {max_shift} and {max_degrees}")
        self.max_shift, self.max_degrees = float(max_shift), float(max_degrees)

    def forward(self, x):
        if not self.training or (self.max_shift == 0 and self.max_degrees == 0):
            return x
        if x.dim() != 4:
            raise ValueError(f"RandomShift expects (B, C, H, W), got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        u = torch.rand(b, 3, device=x.device) * 2 - 1                   # (B, 3) uniform in [-1, 1)
        angle = u[:, 0] * math.radians(self.max_degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        tx, ty = u[:, 1] * self.max_shift * 2 / w, u[:, 2] * self.max_shift * 2 / h  # in [-1, 1] grid units
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class LeNetBN(nn.Module):
    """A LeNet-style CNN with batch norm, for 28×28 grey digits (chapter 4's first full CNN).

    (B, 1, 28, 28) -> conv 5×5 ``c1`` -> BN -> ReLU -> max-pool 2 -> (B, c1, 14, 14)
                   -> conv 5×5 ``c2`` -> BN -> ReLU -> max-pool 2 -> (B, c2, 7, 7)
                   -> flatten -> linear ``hidden`` -> ReLU -> dropout -> linear -> (B, 10) logits
    """

    def __init__(self, c1: int = 16, c2: int = 32, hidden: int = 128, num_classes: int = 10,
                 in_channels: int = 1, dropout: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.MaxPool2d(2),                                                        # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 5, padding=2, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.MaxPool2d(2),                                                        # (B, c2, 7, 7)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """A fully connected network on flattened images: (B, C, H, W) -> (B, in_features) -> ... -> (B, classes).

    ``hidden`` lists the widths of the hidden layers; each is followed by ``act`` (default ReLU).
    ``act=None`` gives a purely linear stack (chapter 4 shows it collapses to one linear map).
    """

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] = (256, 64), num_classes: int = 10,
                 act: type[nn.Module] | None = nn.ReLU, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        widths = [in_features, *hidden]
        for a, b in zip(widths[:-1], widths[1:]):
            layers.append(nn.Linear(a, b))
            if act is not None:
                layers.append(act())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class KerasSeedCNN(nn.Module):
    """The seeds' Keras model rebuilt in PyTorch: Conv2D(32, 3×3, relu) -> MaxPool(2×2) -> Flatten
    -> Dense(128, relu) -> Dense(10). Returns logits: the softmax lives in ``nn.CrossEntropyLoss``.

    (B, 1, 28, 28) -> conv (B, 32, 26, 26) -> pool (B, 32, 13, 13) -> (B, 5408) -> (B, 128) -> (B, 10)
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2))  # 'valid' padding
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(32 * 13 * 13, 128), nn.ReLU(),
                                   nn.Linear(128, num_classes))

    def forward(self, x):
        return self.dense(self.conv(x))
