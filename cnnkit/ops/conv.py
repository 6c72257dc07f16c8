"""Reference implementations that are the lessons of the course, each tested against PyTorch.

Shapes follow PyTorch: images are ``(B, C, H, W)``, conv weights ``(C_out, C_in, kH, kW)``.
Every function checks its input and raises a ``ValueError`` that names the problem and the fix,
instead of failing deep inside torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["conv_output_size", "conv2d_naive", "conv2d", "pair"]

IntPair = int | tuple[int, int]


def pair(value: IntPair, name: str = "value") -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; anything else is a ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def conv_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1``

    Raises ``ValueError`` if the dilated kernel does not fit in the padded input (output ≤ 0)
    or if an argument is out of range.
    """
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("dilation", dilation, 1), ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    span = dilation * (kernel - 1) + 1  # extent of the (dilated) kernel on the input
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(
            f"kernel does not fit: a kernel of size {kernel} (dilation {dilation}) spans {span} pixels but the "
            f"input has only {size} + 2*{padding} padding = {padded}, so the output size would be "
            f"{(padded - span) // stride + 1} <= 0. Use a smaller kernel or dilation, or pad by at least "
            f"{-(-(span - size) // 2)}."
        )
    return (padded - span) // stride + 1


def _check_conv_args(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     stride: IntPair, padding: IntPair, dilation: IntPair):
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise ValueError("x and weight must be torch tensors (convert NumPy arrays with torch.as_tensor).")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise ValueError(f"bias must be a torch tensor or None, got {type(bias).__name__}; "
                         "convert it with torch.as_tensor(bias, dtype=weight.dtype).")
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if t is not None and not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}; convert it with "
                             f"{name}.float() (uint8 pixels: {name}.float() / 255).")
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        got = f"x is {x.dtype}, weight {weight.dtype}" + (f", bias {bias.dtype}" if bias is not None else "")
        raise ValueError(f"x, weight and bias must share one dtype, but {got}; convert with "
                         f"x.to(weight.dtype) (or weight.to(x.dtype)).")
    if x.dim() == 3:
        raise ValueError(
            f"x must have shape (B, C, H, W) but has 3 dims {tuple(x.shape)}; add a batch axis with x.unsqueeze(0)."
        )
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {x.dim()} dims {tuple(x.shape)}.")
    if weight.dim() != 4:
        raise ValueError(
            f"weight must have shape (C_out, C_in, kH, kW), got {weight.dim()} dims {tuple(weight.shape)}."
        )
    if weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"channel mismatch: x has C_in={x.shape[1]} channels {tuple(x.shape)} but weight expects "
            f"C_in={weight.shape[1]} {tuple(weight.shape)}; weight must be (C_out, {x.shape[1]}, kH, kW)."
        )
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"bias must have shape ({weight.shape[0]},) (one per output channel), got {tuple(bias.shape)}.")
    if x.device != weight.device or (bias is not None and bias.device != x.device):
        raise ValueError(f"x is on {x.device} but weight/bias on {weight.device}; move them to one device.")
    s, p, d = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    h_out = conv_output_size(x.shape[2], weight.shape[2], p[0], s[0], d[0])
    w_out = conv_output_size(x.shape[3], weight.shape[3], p[1], s[1], d[1])
    return s, p, d, h_out, w_out


def conv2d_naive(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1) -> torch.Tensor:
    """2-D cross-correlation with explicit loops over output positions (slow: the lesson, not the tool).

    x: (B, C_in, H, W), weight: (C_out, C_in, kH, kW), bias: (C_out,) -> (B, C_out, H_out, W_out)
    """
    (sh, sw), (ph, pw), (dh, dw), h_out, w_out = _check_conv_args(x, weight, bias, stride, padding, dilation)
    x = F.pad(x, (pw, pw, ph, ph))
    c_out, _, kh, kw = weight.shape
    out = x.new_zeros(x.shape[0], c_out, h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            # the window under output pixel (i, j): (B, C_in, kH, kW), every dilation-th pixel
            window = x[:, :, i * sh: i * sh + dh * (kh - 1) + 1: dh, j * sw: j * sw + dw * (kw - 1) + 1: dw]
            # multiply by every filter and sum over (C_in, kH, kW): (B, C_out)
            out[:, :, i, j] = (window.unsqueeze(1) * weight.unsqueeze(0)).sum(dim=(2, 3, 4))
    if bias is not None:
        out += bias.view(1, -1, 1, 1)
    return out


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1) -> torch.Tensor:
    """2-D cross-correlation as one matrix product (im2col via ``F.unfold``).

    x: (B, C_in, H, W), weight: (C_out, C_in, kH, kW), bias: (C_out,) -> (B, C_out, H_out, W_out)
    """
    s, p, d, h_out, w_out = _check_conv_args(x, weight, bias, stride, padding, dilation)
    c_out = weight.shape[0]
    cols = F.unfold(x, weight.shape[2:], dilation=d, padding=p, stride=s)  # (B, C_in*kH*kW, L)
    out = weight.reshape(c_out, -1) @ cols                                 # (B, C_out, L)
    if bias is not None:
        out += bias.view(1, -1, 1)  # in place: allocating a second (B, C_out, L) tensor costs more than the add
    return out.view(x.shape[0], c_out, h_out, w_out)
