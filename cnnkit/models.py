"""Models that two or more chapters reuse. Shapes in comments are ``(B, C, H, W)``."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LeNet5", "SmallCNN", "count_parameters", "RandomShift", "LeNetBN", "MLP", "KerasSeedCNN"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    if isinstance(model, torch.Tensor):
        raise TypeError(f"count_parameters expects an nn.Module (a model or a layer), got a tensor of shape "
                        f"{tuple(model.shape)}; count a tensor's entries with t.numel(), or pass the layer "
                        f"it belongs to, e.g. count_parameters(nn.Conv2d(1, 8, 3)).")
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects an nn.Module (a model or a layer), got "
                        f"{type(model).__name__}; pass the model itself (an instance: SmallCNN(), not SmallCNN).")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_images(model: nn.Module, x, channels: int, size: str = "28, 28") -> None:
    """Start of ``forward``: ``x`` must be a float tensor ``(B, channels, H, W)``; else a message with the fix."""
    name, expected = type(model).__name__, f"(B, {channels}, {size})"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a tensor of shape {expected}, got {type(x).__name__}; convert it "
                        f"with torch.as_tensor(x, dtype=torch.float32).")
    shape = tuple(x.shape)
    if x.dim() != 4 or shape[1] != channels:
        if x.dim() == 2:
            hint = "a single image without batch and channel axes: use x[None, None]"
        elif x.dim() == 3 and shape[0] == channels:
            hint = "one image without a batch axis: use x.unsqueeze(0)"
        elif x.dim() == 3 and channels == 1:
            hint = "a batch of grey images without a channel axis: use x.unsqueeze(1)"
        elif x.dim() == 4 and shape[-1] == channels:
            hint = "channels last (B, H, W, C): use x.permute(0, 3, 1, 2)"
        elif x.dim() == 4:
            hint = f"{shape[1]} channels: build the model with in_channels={shape[1]}, or convert the images"
        else:
            hint = "reshape it to (B, C, H, W)"
        raise ValueError(f"{name} expects input of shape {expected}, got {shape}; {hint}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects floating-point images, got {x.dtype}; convert with x.float() "
                         f"(uint8 pixels: x.float() / 255).")


def _run_features(model: nn.Module, block: nn.Module, x: torch.Tensor, channels: int,
                  size: str = "28, 28") -> torch.Tensor:
    """``block(x)``, with torch's message for images too small for the convolutions turned into one with the fix."""
    try:
        return block(x)
    except RuntimeError as exc:
        text = str(exc)
        if "Kernel size can't be greater" not in text and "Output size is too small" not in text:
            raise
        raise ValueError(
            f"{type(model).__name__} expects input of shape (B, {channels}, {size}), got {tuple(x.shape)}: the "
            f"images are too small for its convolutions and poolings. Resize them to {size.replace(', ', '×')}, "
            f"e.g. F.interpolate(x, size=({size})), or pad them."
        ) from exc


def _check_features(model: nn.Module, x: torch.Tensor, features: torch.Tensor, linear: nn.Linear,
                    channels: int, size: str = "28, 28") -> None:
    """Before the classifier: the flattened features must have the size its first linear layer takes."""
    got = features[0].numel()
    if got != linear.in_features:
        raise ValueError(
            f"{type(model).__name__} expects input of shape (B, {channels}, {size}), got {tuple(x.shape)}: its "
            f"features flatten to {got} values per image but the classifier takes {linear.in_features}. "
            f"Resize the images to {size.replace(', ', '×')}, e.g. F.interpolate(x, size=({size}))."
        )


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
        _check_images(self, x, self.features[0].in_channels)
        features = _run_features(self, self.features, x, self.features[0].in_channels).flatten(1)
        _check_features(self, x, features, self.classifier, self.features[0].in_channels)
        return self.classifier(features)


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
        _check_images(self, x, self.features[0].in_channels)
        features = _run_features(self, self.features, x, self.features[0].in_channels)
        _check_features(self, x, features, self.classifier[1], self.features[0].in_channels)
        return self.classifier(features)


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
        _check_images(self, x, self.features[0].in_channels)
        features = _run_features(self, self.features, x, self.features[0].in_channels)
        _check_features(self, x, features, self.classifier[1], self.features[0].in_channels)
        return self.classifier(features)


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
        first = self.net[1]  # the first nn.Linear, after nn.Flatten
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"MLP expects a tensor, got {type(x).__name__}; convert it with "
                            f"torch.as_tensor(x, dtype=torch.float32).")
        if x.dim() < 2 or x[0].numel() != first.in_features:
            hint = ("add a batch axis with x.unsqueeze(0)" if x.dim() < 2 or x.numel() == first.in_features
                    else f"build MLP(in_features={x[0].numel()}, ...) or resize the images")
            raise ValueError(f"MLP(in_features={first.in_features}) expects (B, ...) inputs with "
                             f"{first.in_features} values per example, e.g. (B, 1, 28, 28) or "
                             f"(B, {first.in_features}); got {tuple(x.shape)}; {hint}.")
        if not x.is_floating_point():
            raise ValueError(f"MLP expects floating-point inputs, got {x.dtype}; convert with x.float() "
                             f"(uint8 pixels: x.float() / 255).")
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
        _check_images(self, x, self.conv[0].in_channels)
        features = _run_features(self, self.conv, x, self.conv[0].in_channels)
        _check_features(self, x, features, self.dense[1], self.conv[0].in_channels)
        return self.dense(features)
