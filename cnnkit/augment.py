"""Augmentation on a whole batch, with one random draw per image (chapter 7).

``torchvision.transforms.v2`` transforms applied to a batch tensor ``(B, C, H, W)`` draw *one* set of random
parameters for the whole batch. To give every image its own rotation, shift and zoom without a Python loop,
``affine`` resamples all images at once with ``F.grid_sample``; for a single image and fixed parameters it
matches ``torchvision.transforms.v2.functional.affine`` (bilinear, same fill rule, no shear).

    x_aug = random_affine(x, degrees=15, max_shift=3, generator=g)   # (B, C, H, W) -> same
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["affine", "random_affine"]


def _per_image(value, b: int, name: str, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        return t.expand(b)
    if t.shape != (b,):
        raise ValueError(f"{name} must be a number or a tensor of shape ({b},) (one value per image), "
                         f"got shape {tuple(t.shape)}.")
    return t


def affine(x: torch.Tensor, angle, tx, ty, scale=1.0, fill: float | None = None) -> torch.Tensor:
    """Rotate each image by ``angle`` degrees (counter-clockwise), zoom by ``scale`` about its centre and
    shift it by (``tx``, ``ty``) pixels (right, down). Bilinear; pixels from outside the image count as 0,
    or, with a number ``fill``, are blended towards ``fill`` as torchvision does.

    x: (B, C, H, W) floating point. ``angle``, ``tx``, ``ty``, ``scale``: numbers or tensors of shape (B,).
    Returns (B, C, H, W), same dtype and device. Equals ``torchvision.transforms.v2.functional.affine(
    x[i], angle, [tx, ty], scale, shear=[0, 0], interpolation=BILINEAR, fill=fill)`` for each image.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}; "
                         "add a batch axis with x[None] for one image.")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}; convert with x.float().")
    b, _, h, w = x.shape
    rad = _per_image(angle, b, "angle", x) * (math.pi / 180)
    tx, ty = _per_image(tx, b, "tx", x), _per_image(ty, b, "ty", x)
    s = _per_image(scale, b, "scale", x)
    if (s <= 0).any():
        raise ValueError("scale must be > 0 (1 keeps the size, 1.2 zooms in by 20%).")
    cos, sin = torch.cos(rad) / s, torch.sin(rad) / s
    # Inverse map, output pixel -> input pixel, in pixel units about the centre (torchvision's convention)
    theta = torch.stack([torch.stack([cos, sin, -cos * tx - sin * ty], 1),
                         torch.stack([-sin, cos, sin * tx - cos * ty], 1)], 1)  # (B, 2, 3)
    xs = torch.linspace((1 - w) / 2, (w - 1) / 2, w, dtype=x.dtype, device=x.device)
    ys = torch.linspace((1 - h) / 2, (h - 1) / 2, h, dtype=x.dtype, device=x.device)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones_like(xs).expand(h, w)], -1)
    grid = torch.einsum("hwk,bjk->bhwj", base, theta)                          # (B, H, W, 2) in pixels
    grid = grid / torch.tensor([w / 2, h / 2], dtype=x.dtype, device=x.device)  # in [-1, 1] units
    if fill is None:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ones = torch.ones_like(x[:, :1])                                             # (B, 1, H, W)
    out = F.grid_sample(torch.cat([x, ones], 1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    img, mask = out[:, :-1], out[:, -1:]          # mask: how much of each output pixel came from inside
    return mask * (img - fill) + fill


def random_affine(x: torch.Tensor, degrees: float = 0.0, max_shift: float = 0.0,
                  scale: tuple[float, float] = (1.0, 1.0), fill: float | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``affine`` with parameters drawn uniformly and independently for every image: an angle in
    [-degrees, degrees], shifts in [-max_shift, max_shift] pixels, a zoom in [scale[0], scale[1]].

    x: (B, C, H, W) -> (B, C, H, W). The draws use ``generator`` (on the CPU) or torch's global generator.
    """
    if degrees < 0 or max_shift < 0:
        raise ValueError(f"degrees and max_shift must be >= 0, got {degrees} and {max_shift}.")
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}.")
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}.")
    u = torch.rand(x.shape[0], 4, generator=generator, dtype=torch.float64) * 2 - 1   # (B, 4) in [-1, 1)
    u = u.to(device=x.device, dtype=x.dtype)
    zoom = lo + (u[:, 3] + 1) / 2 * (hi - lo)
    return affine(x, u[:, 0] * degrees, u[:, 1] * max_shift, u[:, 2] * max_shift, zoom, fill)
