"""Measuring architectures: parameters, multiply-accumulates, activation memory and CPU latency.

    stats = measure(torchvision.models.resnet18(), (1, 3, 224, 224))
    stats.params, stats.macs, stats.act_bytes

Multiply-accumulates (MACs) are counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts the
floating-point operations of matrix products, convolutions and attention only (2 per multiply-add), so
``macs = flops / 2`` (the CPU attention kernel is added to its table here).
Element-wise work (activations, normalisation, pooling, additions of residuals) is not counted, as in the
figures torchvision publishes. Activation memory is the sum of the sizes of the tensors that the *leaf* modules
(modules without children) return during one forward pass: roughly what training keeps for the backward pass.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

# PyTorch's counter knows the GPU attention kernels but not the CPU one (torch 2.x): count it the same way
_EXTRA_FLOPS = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _EXTRA_FLOPS[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = (
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v))

__all__ = ["ArchStats", "count_params", "count_macs", "activation_bytes", "latency_ms", "measure",
           "conv_params", "conv_macs"]


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}; build the model first, "
                        "e.g. torchvision.models.resnet18(weights=None)")
    return model


def _input(model: nn.Module, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    shape = tuple(shape)
    if len(shape) != 4 or any((not isinstance(s, int)) or s < 1 for s in shape):
        raise ValueError(f"input shape must be 4 positive ints (B, C, H, W), got {shape}")
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None else torch.float32
    return torch.zeros(shape, device=device, dtype=dtype)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, ``sum(p.numel())`` (all of them, or only those with ``requires_grad``)."""
    _check_model(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, shape: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates of one forward pass on an input of ``shape`` (convolutions and matrix products)."""
    model = _check_model(model)
    x = _input(model, shape)
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOPS)
    # autograd stays on: under no_grad, nn.MultiheadAttention takes a fused fast path the counter cannot see
    with torch.enable_grad(), counter:
        model(x)
    return counter.get_total_flops() // 2


def _leaf_modules(model: nn.Module) -> list[nn.Module]:
    """Modules without children, plus attention blocks (their output projection is not called as a module)."""
    inner = nn.modules.linear.NonDynamicallyQuantizableLinear      # out_proj of an attention block
    return [m for m in model.modules()
            if (next(m.children(), None) is None and not isinstance(m, inner))
            or isinstance(m, nn.MultiheadAttention)]


def _tensors(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def activation_bytes(model: nn.Module, shape: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Bytes of the distinct tensors returned by the leaf modules in one forward pass on an input of ``shape``.

    An output that shares memory with one counted before (an in-place ReLU, a ``Flatten`` view) is not counted
    again. Functional operations between modules (``x + identity``, ``torch.cat``) are not counted.
    """
    model = _check_model(model)
    x = _input(model, shape)
    seen: dict[int, int] = {}
    kept: list[torch.Tensor] = []          # hold the outputs so their memory is not reused during the pass

    def hook(_module, _inputs, output):
        for t in _tensors(output):
            kept.append(t)
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.numel() * t.element_size())

    handles = [m.register_forward_hook(hook) for m in _leaf_modules(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return sum(seen.values())


def latency_ms(model: nn.Module, shape: tuple[int, ...] = (1, 3, 224, 224), repeats: int = 3,
               warmup: int = 1) -> float:
    """Median wall-clock time of one forward pass (no autograd) in milliseconds, after ``warmup`` calls."""
    model = _check_model(model)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    x = _input(model, shape)
    cuda = x.device.type == "cuda"
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize(x.device)
            t0 = time.perf_counter()
            model(x)
            if cuda:
                torch.cuda.synchronize(x.device)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@dataclass
class ArchStats:
    """What :func:`measure` returns for one model and input shape."""

    params: int
    macs: int
    act_bytes: int
    ms: float | None = None


def measure(model: nn.Module, shape: tuple[int, ...] = (1, 3, 224, 224), repeats: int = 0) -> ArchStats:
    """Parameters, MACs and activation bytes of ``model`` on ``shape``; latency too if ``repeats`` > 0."""
    model = _check_model(model)
    was_training = model.training
    model.eval()
    try:
        ms = latency_ms(model, shape, repeats=repeats) if repeats > 0 else None
        return ArchStats(count_params(model), count_macs(model, shape), activation_bytes(model, shape), ms)
    finally:
        model.train(was_training)


def _pos_int(name: str, v: object, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return v


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = True) -> int:
    """Parameters of ``nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)``: c_out * (c_in/groups) * k * k
    weights plus c_out biases."""
    c_in, c_out, k, groups = (_pos_int(n, v) for n, v in
                              (("c_in", c_in), ("c_out", c_out), ("k", k), ("groups", groups)))
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def conv_macs(c_in: int, c_out: int, k: int, h_out: int, w_out: int, groups: int = 1) -> int:
    """Multiply-accumulates of a k×k conv producing a (c_out, h_out, w_out) map: one weight per MAC per output."""
    _pos_int("h_out", h_out)
    _pos_int("w_out", w_out)
    return (conv_params(c_in, c_out, k, groups, bias=False)) * h_out * w_out

