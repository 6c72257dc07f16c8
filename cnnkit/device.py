"""Pick the compute device once, and let one device string drive mixed precision.

    device = get_device()            # CUDA > MPS > CPU, prints one line
    with autocast(device):           # bf16/fp16 on CUDA, a no-op elsewhere
        logits = model(x)
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

__all__ = ["get_device", "autocast", "amp_dtype", "to_device", "describe_device"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'cuda:0 (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def get_device(prefer: str | None = None, verbose: bool = True) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then the CPU.

    ``prefer`` (or the environment variable ``CNNKIT_DEVICE``) forces a device, e.g. ``"cpu"``
    to compare speeds. Asking for a device that is not available raises a ``RuntimeError``
    that says which devices are.
    """
    prefer = prefer or os.environ.get("CNNKIT_DEVICE") or None
    available = ["cpu"]
    if _mps_available():
        available.insert(0, "mps")
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    if prefer is None:
        device = torch.device(available[0])
    else:
        device = torch.device(prefer)
        if device.type not in available:
            raise RuntimeError(
                f"Device {prefer!r} was requested but is not available here; available: "
                f"{', '.join(available)}. Unset CNNKIT_DEVICE or pass one of those."
            )
    if verbose:
        print(f"Using device: {describe_device(device)}")
    return device


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The reduced-precision dtype autocast uses on ``device``, or None where it stays fp32."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device | str, enabled: bool = True) -> Iterator[None]:
    """Mixed precision on CUDA (bf16 where supported, else fp16); a no-op on CPU and MPS."""
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        yield
        return
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def to_device(batch: Any, device: torch.device | str, non_blocking: bool = True) -> Any:
    """Move a tensor, or tensors nested in lists/tuples/dicts, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch
