"""Pooling by hand: max, average and global average pooling, each checked against ``torch.nn.functional``.

The idea is one view: ``Tensor.unfold`` turns ``x (B, C, H, W)`` into the grid of its windows
``(B, C, H_out, W_out, kH, kW)`` without copying, and pooling is a reduction over the last two axes.
Autograd then gives the backward pass: for max pooling the gradient of each window goes to the one
input that won (the first one in row-major order when several tie, as in PyTorch on the CPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .conv import IntPair, conv_output_size, pair

__all__ = ["pool_windows", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "global_max_pool2d"]


def _check_input(x: torch.Tensor, fn: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{fn}: x must be a torch tensor (convert NumPy arrays with torch.as_tensor).")
    if x.dim() == 3:
        raise ValueError(
            f"{fn}: x must have shape (B, C, H, W) but has 3 dims {tuple(x.shape)}; add a batch axis with "
            f"x.unsqueeze(0)."
        )
    if x.dim() != 4:
        raise ValueError(f"{fn}: x must have shape (B, C, H, W), got {x.dim()} dims {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: x must be a floating-point tensor, got {x.dtype}; convert it with x.float().")


def _geometry(x: torch.Tensor, kernel: IntPair, stride: IntPair | None, padding: IntPair, fn: str):
    """Validate the pooling geometry; return ``(kh, kw), (sh, sw), (ph, pw), h_out, w_out``."""
    k = pair(kernel, "kernel")
    s = k if stride is None else pair(stride, "stride")  # PyTorch's default: stride = kernel
    p = pair(padding, "padding")
    for axis in range(2):
        if p[axis] < 0:
            raise ValueError(f"{fn}: padding must be >= 0, got {padding}.")
        if 2 * p[axis] > k[axis]:
            raise ValueError(
                f"{fn}: padding {p[axis]} is more than half the kernel {k[axis]}, so a window could hold only "
                f"padding and no input pixel. Use padding <= {k[axis] // 2} (PyTorch has the same rule)."
            )
    h_out = conv_output_size(x.shape[2], k[0], p[0], s[0])
    w_out = conv_output_size(x.shape[3], k[1], p[1], s[1])
    return k, s, p, h_out, w_out


def pool_windows(x: torch.Tensor, kernel: IntPair, stride: IntPair | None = None,
                 padding: IntPair = 0, pad_value: float = 0.0) -> torch.Tensor:
    """Every pooling window of ``x`` as a strided view (no copy when ``padding=0``).

    x: (B, C, H, W) -> (B, C, H_out, W_out, kH, kW); ``stride`` defaults to ``kernel``.
    """
    _check_input(x, "pool_windows")
    k, s, p, _, _ = _geometry(x, kernel, stride, padding, "pool_windows")
    return _windows(x, k, s, p, pad_value)


def _windows(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
             pad_value: float) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H_out, W_out, kH, kW) for an already validated geometry."""
    if p != (0, 0):
        x = F.pad(x, (p[1], p[1], p[0], p[0]), value=pad_value)  # (B, C, H + 2pH, W + 2pW)
    return x.unfold(2, k[0], s[0]).unfold(3, k[1], s[1])          # (B, C, H_out, W_out, kH, kW)


def max_pool2d(x: torch.Tensor, kernel: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0) -> torch.Tensor:
    """Max pooling: the largest value of each window (padding counts as -inf, so it never wins).

    x: (B, C, H, W) -> (B, C, H_out, W_out), with ``H_out = floor((H + 2p - k) / s) + 1``.
    """
    _check_input(x, "max_pool2d")
    k, s, p, _, _ = _geometry(x, kernel, stride, padding, "max_pool2d")
    flat = _windows(x, k, s, p, float("-inf")).flatten(-2)   # (B, C, H_out, W_out, kH*kW)
    # argmax picks the first maximum of a tie; gather then sends the gradient to that input alone
    winner = flat.argmax(dim=-1, keepdim=True)                # (B, C, H_out, W_out, 1)
    return flat.gather(-1, winner).squeeze(-1)                # (B, C, H_out, W_out)


def avg_pool2d(x: torch.Tensor, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               count_include_pad: bool = True) -> torch.Tensor:
    """Average pooling: the mean of each window.

    With padding, ``count_include_pad=True`` (PyTorch's default) divides by kH*kW, zeros included;
    ``False`` divides by the number of real pixels in the window.
    x: (B, C, H, W) -> (B, C, H_out, W_out)
    """
    _check_input(x, "avg_pool2d")
    k, s, p, _, _ = _geometry(x, kernel, stride, padding, "avg_pool2d")
    total = _windows(x, k, s, p, 0.0).sum(dim=(-2, -1))                # (B, C, H_out, W_out)
    if count_include_pad or p == (0, 0):
        return total / (k[0] * k[1])
    ones = torch.ones(1, 1, x.shape[2], x.shape[3], dtype=x.dtype, device=x.device)
    count = _windows(ones, k, s, p, 0.0).sum(dim=(-2, -1))             # (1, 1, H_out, W_out): real pixels
    return total / count


def global_avg_pool2d(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Mean of each channel over all positions: (B, C, H, W) -> (B, C), or (B, C, 1, 1) with ``keepdim``.

    The output size does not depend on H and W, which is why a network ending in it accepts any input size.
    """
    _check_input(x, "global_avg_pool2d")
    return x.mean(dim=(2, 3), keepdim=keepdim)


def global_max_pool2d(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Largest value of each channel: (B, C, H, W) -> (B, C), or (B, C, 1, 1) with ``keepdim``."""
    _check_input(x, "global_max_pool2d")
    return x.flatten(2).max(dim=2).values.view(*x.shape[:2], *((1, 1) if keepdim else ()))
