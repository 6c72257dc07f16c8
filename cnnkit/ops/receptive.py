"""Receptive fields: which input pixels one output pixel of a conv/pool stack can see.

    >>> receptive_field([(3, 1, 1), (3, 2, 1), (3, 1, 1)])      # (kernel, stride, padding[, dilation])
    ReceptiveField(size=9, jump=2, start=0.0)

Along one axis, a stack is summarised by three numbers (Dumoulin & Visin, 2016; Araujo et al., 2019):
- ``size``: how many input pixels one output pixel sees (the extent, holes of dilation included);
- ``jump``: how far apart, in input pixels, the centres of two neighbouring output pixels are;
- ``start``: the input coordinate of the centre of output pixel 0 (pixel centres are at 0, 1, 2, ...;
  negative means the centre lies in the padding).

A layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` updates them as

    span  = d*(k - 1) + 1
    size  = size + (span - 1) * jump
    start = start + ((span - 1)/2 - p) * jump
    jump  = jump * s

``empirical_receptive_field`` measures the same three numbers with autograd instead of the formula.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReceptiveField", "LayerGeometry", "layer_geometries", "receptive_field", "receptive_field_trace",
           "empirical_receptive_field"]

# Layers that act on each pixel on its own: they do not change the receptive field.
_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Identity,
              nn.Dropout, nn.Dropout2d, nn.BatchNorm2d, nn.ReLU6, nn.Hardswish, nn.Mish, nn.PReLU)


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field along one axis: ``size`` and ``jump`` in input pixels, ``start`` = centre of output 0."""

    size: int
    jump: int
    start: float

    def window(self, index: int) -> tuple[float, float]:
        """First and last input coordinate seen by output pixel ``index`` (may reach into the padding)."""
        centre = self.start + index * self.jump
        half = (self.size - 1) / 2
        return centre - half, centre + half


@dataclass(frozen=True)
class LayerGeometry:
    """One layer's geometry along one axis (the numbers ``nn.Conv2d`` takes, in its order)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    name: str = ""

    @property
    def span(self) -> int:
        """Input pixels covered by one window, holes included: ``dilation*(kernel-1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1


def _axis_value(value, axis: int | None, what: str, layer_name: str) -> int:
    """An int from an int or an (h, w) pair; unequal pairs need ``axis``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{layer_name}: {what} must be an int or a pair, got {value!r}")
        if axis is None:
            if value[0] != value[1]:
                raise ValueError(
                    f"{layer_name} has a non-square {what} {tuple(value)}; the receptive field differs per "
                    f"axis. Pass axis=0 (height) or axis=1 (width)."
                )
            value = value[0]
        else:
            value = value[axis]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{layer_name}: {what} must be an int, got {value!r}")
    return value


def _from_module(m: nn.Module, axis: int | None) -> list[LayerGeometry]:
    name = type(m).__name__
    if isinstance(m, nn.Sequential):
        return [g for child in m for g in _from_module(child, axis)]
    if isinstance(m, _POINTWISE):
        return []
    if isinstance(m, nn.Conv2d):  # nn.ConvTranspose2d is not a subclass of nn.Conv2d
        k = _axis_value(m.kernel_size, axis, "kernel_size", name)
        s = _axis_value(m.stride, axis, "stride", name)
        d = _axis_value(m.dilation, axis, "dilation", name)
        if m.padding == "valid":
            p = 0
        elif m.padding == "same":  # PyTorch pads total//2 before and the rest after (stride 1 only)
            p = d * (k - 1) // 2
        else:
            p = _axis_value(m.padding, axis, "padding", name)
        return [LayerGeometry(k, s, p, d, name)]
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _axis_value(m.kernel_size, axis, "kernel_size", name)
        s = _axis_value(m.stride if m.stride is not None else m.kernel_size, axis, "stride", name)
        p = _axis_value(m.padding, axis, "padding", name)
        d = _axis_value(getattr(m, "dilation", 1), axis, "dilation", name)
        return [LayerGeometry(k, s, p, d, name)]
    if isinstance(m, (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        raise ValueError(
            f"{name} mixes every position, so its receptive field is the whole input. Analyse only the "
            f"convolutional part, e.g. receptive_field(model.features)."
        )
    raise ValueError(
        f"cannot analyse {name}: receptive_field understands nn.Sequential stacks of Conv2d, MaxPool2d, "
        f"AvgPool2d and pointwise layers (activations, BatchNorm2d, Dropout). For other blocks (e.g. residual "
        f"ones) describe the path you care about as a list of (kernel, stride, padding, dilation) tuples."
    )


def _from_spec(spec, i: int) -> LayerGeometry:
    if isinstance(spec, LayerGeometry):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = (spec,)
    if not isinstance(spec, (tuple, list)) or not 1 <= len(spec) <= 4:
        raise ValueError(
            f"layer {i}: expected (kernel, stride, padding, dilation) with stride/padding/dilation optional, "
            f"an nn.Module or a LayerGeometry, got {spec!r}"
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
        raise ValueError(f"layer {i}: every entry of {tuple(spec)} must be an int (one axis at a time)")
    return LayerGeometry(*spec, name=f"layer {i}")


def layer_geometries(layers: nn.Module | Iterable, axis: int | None = None) -> list[LayerGeometry]:
    """Flatten ``layers`` into the list of geometric layers along one axis (pointwise layers dropped).

    ``layers`` is an ``nn.Sequential`` (nested ones too) of Conv2d / MaxPool2d / AvgPool2d and pointwise
    layers, or a list whose items are ``(kernel, stride, padding, dilation)`` tuples (trailing entries
    optional: ``(3,)`` is a 3×3 conv with stride 1, no padding), modules or ``LayerGeometry``.
    """
    if isinstance(layers, nn.Module):
        geoms = _from_module(layers, axis)
    else:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
            raise ValueError(f"layers must be an nn.Module or a list of layers, got {type(layers).__name__}")
        geoms = []
        for i, spec in enumerate(layers):
            geoms.extend(_from_module(spec, axis) if isinstance(spec, nn.Module) else [_from_spec(spec, i)])
    for g in geoms:
        for what, value, low in (("kernel", g.kernel, 1), ("stride", g.stride, 1), ("dilation", g.dilation, 1),
                                 ("padding", g.padding, 0)):
            if value < low:
                raise ValueError(f"{g.name or 'layer'}: {what} must be >= {low}, got {value}")
    return geoms


def receptive_field_trace(layers: nn.Module | Iterable, axis: int | None = None) -> list[ReceptiveField]:
    """The receptive field after the input and after every geometric layer: ``len(layers) + 1`` entries."""
    rf = ReceptiveField(size=1, jump=1, start=0.0)  # the input: each pixel sees itself
    trace = [rf]
    for g in layer_geometries(layers, axis):
        rf = ReceptiveField(size=rf.size + (g.span - 1) * rf.jump,
                            jump=rf.jump * g.stride,
                            start=rf.start + ((g.span - 1) / 2 - g.padding) * rf.jump)
        trace.append(rf)
    return trace


def receptive_field(layers: nn.Module | Iterable, axis: int | None = None) -> ReceptiveField:
    """Receptive field (size, jump, start) of the last layer's pixels in input pixels.

    Raises ``ValueError`` for layers it cannot analyse (Linear, Flatten, adaptive pooling, residual
    blocks...) and for non-square layers unless ``axis`` (0 = height, 1 = width) is given.
    """
    return receptive_field_trace(layers, axis)[-1]


class _WindowProbe(nn.Module):
    """A max-pool stand-in for measuring: max-pool sends gradient to one pixel per window, this sends it
    to every pixel of the window (same kernel, stride, padding and dilation)."""

    def __init__(self, pool: nn.MaxPool2d | nn.AvgPool2d):
        super().__init__()
        self.geom = [_axis_value(getattr(pool, a), i, a, "pool") for a in ("kernel_size", "padding")
                     for i in (0, 1)]
        stride = pool.stride if pool.stride is not None else pool.kernel_size
        self.stride = tuple(_axis_value(stride, i, "stride", "pool") for i in (0, 1))
        self.dilation = tuple(_axis_value(getattr(pool, "dilation", 1), i, "dilation", "pool") for i in (0, 1))

    def forward(self, x):  # (B, C, H, W) -> (B, C, H_out, W_out)
        kh, kw, ph, pw = self.geom
        c = x.shape[1]
        weight = x.new_full((c, 1, kh, kw), 1.0 / (kh * kw))
        return F.conv2d(x, weight, stride=self.stride, padding=(ph, pw), dilation=self.dilation, groups=c)


def _probe_model(model: nn.Module) -> nn.Module:
    """Copy ``model`` with positive conv weights, zero biases and pooling made gradient-friendly, so the
    gradient of one output pixel is non-zero exactly on the pixels that can influence it."""
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):  # averaging weights keep activations near 1: tanh/sigmoid stay unsaturated
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):  # trained statistics could flip signs: make it the identity
                m.reset_running_stats()
                m.reset_parameters()
    for name, m in list(probe.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, (nn.MaxPool2d, nn.AvgPool2d)):
                setattr(m, child_name, _WindowProbe(child))
    return probe


def _extent(mask: torch.Tensor) -> tuple[int, int]:
    idx = torch.nonzero(mask).flatten()
    if len(idx) == 0:
        raise ValueError("the chosen output pixel does not depend on any input pixel; is the model connected?")
    return int(idx[0]), int(idx[-1])


def empirical_receptive_field(model: nn.Module, input_size: int | Sequence[int], in_channels: int | None = None,
                              axis: int = 0) -> ReceptiveField:
    """Measure (size, jump, start) along ``axis`` with autograd rather than the formula.

    Back-propagates from one output pixel in the middle of the output (and from its neighbour, for the
    jump) to an input of ``input_size`` (int or (H, W)) and reads where the gradient is non-zero. In a
    float64 copy of ``model``, conv weights become positive averages and max-pools window averages (a
    max-pool sends gradient to one pixel per window), so nothing cancels. ``input_size`` must be large enough that the middle pixel's field stays inside the image;
    if it touches the border a ``ValueError`` asks for a larger input.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if in_channels is None:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        in_channels = convs[0].in_channels if convs else 1
    probe = _probe_model(model)
    param = next(probe.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.ones(1, in_channels, h, w, device=device, dtype=torch.float64, requires_grad=True)  # (1, C, H, W)
    y = probe(x)                                                            # (1, C_out, H_out, W_out)
    n_out = y.shape[2 + axis]
    if n_out < 2:
        raise ValueError(f"the output has only {n_out} pixel(s) along axis {axis}; use a larger input_size.")
    i = (n_out - 1) // 2
    extents = []
    for index in (i, i + 1):
        pick = [0, 0, y.shape[2] // 2, y.shape[3] // 2]
        pick[2 + axis] = index
        (grad,) = torch.autograd.grad(y[tuple(pick)], x, retain_graph=True)
        profile = grad[0].abs().sum(dim=0).sum(dim=1 - axis)  # (H,) or (W,): gradient mass per row/column
        extents.append(_extent(profile > 0))
    (lo, hi), (lo2, _) = extents
    if lo == 0 or hi == (h, w)[axis] - 1:
        raise ValueError(f"the receptive field touches the border of a {h}×{w} input; pass a larger input_size.")
    jump = lo2 - lo
    return ReceptiveField(size=hi - lo + 1, jump=jump, start=(lo + hi) / 2 - i * jump)
