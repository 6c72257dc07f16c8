"""Timing small pieces of code honestly: warm up, synchronise the GPU, keep the fastest run.

    seconds = best_time(lambda: conv(x), repeats=20, device=device)

The minimum over runs resists a busy machine better than the mean: other work only ever adds time.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["best_time"]


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], repeats: int = 5, device: torch.device | str | None = None,
              warmup: int = 1) -> float:
    """Fastest wall-clock time of ``fn()`` over ``repeats`` runs, in seconds, after ``warmup`` untimed calls.

    On CUDA, kernels run asynchronously: pass ``device`` so each run is bracketed by a synchronise.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best
