"""Plots used across chapters. Each function takes ``ax=`` (or ``fig=`` for grids) and returns the figure."""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .train import History
from .figstyle import FULL_WIDTH_IN

__all__ = ["show_image", "show_images", "plot_kernels", "plot_feature_maps", "plot_history"]


def _to_hwc(img) -> np.ndarray:
    """(C, H, W) or (H, W) tensor/array -> (H, W) or (H, W, 3) NumPy array for imshow."""
    arr = img.detach().float().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    if arr.ndim not in (2, 3):
        raise ValueError(f"an image must be (H, W), (1, H, W) or (3, H, W); got shape {arr.shape}")
    return arr


def show_image(img, ax=None, title: str | None = None, cmap: str = "gray", **imshow_kw):
    """Show one image (tensor or array, CHW or HW). Colour images are clipped to [0, 1]."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    arr = _to_hwc(img)
    if arr.ndim == 3:
        arr = np.clip(arr, 0, 1)
    ax.imshow(arr, cmap=cmap if arr.ndim == 2 else None, **imshow_kw)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def _grid(n: int, ncols: int | None, fig, cell: float = 1.2):
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    cell = min(cell, FULL_WIDTH_IN / ncols)  # the whole grid fits the site's column at full size
    if fig is None:
        fig = plt.figure(figsize=(cell * ncols, cell * nrows + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def show_images(images, labels: Sequence | None = None, ncols: int | None = None, fig=None,
                cmap: str = "gray", suptitle: str | None = None):
    """A grid of images ``(N, C, H, W)`` or a list of CHW/HW images, with optional labels as titles."""
    images = list(images)
    fig, axes = _grid(len(images), ncols, fig)
    for i, img in enumerate(images):
        show_image(img, ax=axes[i], title=None if labels is None else str(labels[i]), cmap=cmap)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_kernels(weight: torch.Tensor, ncols: int | None = None, fig=None, suptitle: str | None = None):
    """Conv filters ``(C_out, C_in, kH, kW)``: one panel per output channel (RGB if C_in is 3, else the
    first input channel), on a symmetric colour scale so positive and negative weights read alike."""
    w = weight.detach().float().cpu()
    if w.dim() != 4:
        raise ValueError(f"weight must be (C_out, C_in, kH, kW), got shape {tuple(w.shape)}")
    fig, axes = _grid(w.shape[0], ncols, fig, cell=1.0)
    for i in range(w.shape[0]):
        if w.shape[1] == 3:
            k = w[i]
            k = (k - k.min()) / (k.max() - k.min() + 1e-8)
            axes[i].imshow(k.permute(1, 2, 0).numpy())
        else:
            k = w[i, 0].numpy()
            lim = float(np.abs(k).max()) or 1.0
            axes[i].imshow(k, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[i].set_axis_off()
        axes[i].set_title(str(i), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_feature_maps(maps: torch.Tensor, ncols: int | None = None, fig=None, suptitle: str | None = None,
                      cmap: str = "viridis"):
    """Feature maps of one image, ``(C, H, W)`` (or ``(1, C, H, W)``): one panel per channel."""
    m = maps.detach().float().cpu()
    if m.dim() == 4 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 3:
        raise ValueError(f"maps must be (C, H, W) or (1, C, H, W), got shape {tuple(maps.shape)}")
    fig, axes = _grid(m.shape[0], ncols, fig)
    for i in range(m.shape[0]):
        axes[i].imshow(m[i].numpy(), cmap=cmap)
        axes[i].set_axis_off()
        axes[i].set_title(str(i), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_history(histories: History | dict[str, History], axes=None, title: str | None = None):
    """Loss and accuracy per epoch for one ``History`` or a ``{label: History}`` dict (train solid, test dashed)."""
    if isinstance(histories, History):
        histories = {"": histories}
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH_IN, 3.0))
    fig = axes[0].figure
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = np.arange(1, h.epochs + 1)
        prefix = f"{label} " if label else ""
        axes[0].plot(epochs, h.train_loss, color=color, label=f"{prefix}train")
        axes[1].plot(epochs, h.train_acc, color=color, label=f"{prefix}train")
        if h.test_loss:
            axes[0].plot(epochs, h.test_loss, "--", color=color, label=f"{prefix}test")
            axes[1].plot(epochs, h.test_acc, "--", color=color, label=f"{prefix}test")
    for ax, name in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
