"""Small tools for chapter 8's few-shot transfer experiments.

``train_steps`` trains for a fixed number of optimizer steps on tensors that fit in memory (a few labelled
examples per class make epochs meaningless), timing only the training and optionally evaluating along the
way; ``steps_to_target`` reads the first evaluation that reaches an accuracy; ``count_parameters`` counts
trainable and total parameters.

    log = train_steps(model, x, y, optimizer, steps=80, batch_size=25, seed=0,
                      eval_fn=lambda: accuracy_on_test(model), eval_every=10)
    log.train_seconds, log.evals          # [(step, seconds so far, accuracy), ...]
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StepLog", "train_steps", "steps_to_target", "count_parameters", "predict_accuracy"]


@dataclass
class StepLog:
    """What ``train_steps`` measured: training seconds (evaluation excluded) and ``(step, seconds, acc)``."""

    train_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float, float]] = field(default_factory=list)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` numbers of parameter values in ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters needs an nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


@torch.no_grad()
def predict_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Accuracy of ``model`` on the tensors ``x``, ``y`` in eval mode, in batches (restores the mode)."""
    was_training = model.training
    model.eval()
    correct = sum((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(y), batch_size))
    model.train(was_training)
    return correct / len(y)


def train_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                steps: int, batch_size: int | None = None, seed: int = 0,
                eval_fn: Callable[[], float] | None = None, eval_every: int | None = None,
                log: StepLog | None = None) -> StepLog:
    """Train ``model`` on ``(x, y)`` for ``steps`` optimizer steps with cross-entropy; return a ``StepLog``.

    Each step uses the whole set when it holds at most ``batch_size`` examples (or ``batch_size`` is None),
    else a random batch drawn with a generator seeded by ``seed``. ``eval_fn()`` (an accuracy) runs before
    the first step and every ``eval_every`` steps; its time is not counted in ``train_seconds``. Pass the
    ``log`` of an earlier phase (e.g. head first, then everything) to continue its step count and clock.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of examples; got {len(x)} and {len(y)}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    if (eval_fn is None) != (eval_every is None):
        raise ValueError("pass eval_fn and eval_every together (or neither)")
    g = torch.Generator().manual_seed(seed)
    log = log if log is not None else StepLog()
    start = len(log.losses)
    if eval_fn is not None and not log.evals:
        log.evals.append((start, log.train_seconds, float(eval_fn())))
    model.train()
    for step in range(start + 1, start + steps + 1):
        t0 = time.perf_counter()
        if batch_size is None or len(y) <= batch_size:
            xb, yb = x, y
        else:
            idx = torch.randperm(len(y), generator=g)[:batch_size].to(y.device)
            xb, yb = x[idx], y[idx]
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.losses.append(loss.item())
        log.train_seconds += time.perf_counter() - t0
        if eval_fn is not None and step % eval_every == 0:
            log.evals.append((step, log.train_seconds, float(eval_fn())))
            model.train()
    return log


def steps_to_target(log: StepLog, target: float) -> tuple[float, float]:
    """``(steps, seconds)`` of the first evaluation with accuracy >= ``target``; ``(nan, nan)`` if none."""
    if not log.evals:
        raise ValueError("the log has no evaluations: train with eval_fn= and eval_every=")
    for step, seconds, acc in log.evals:
        if acc >= target:
            return float(step), seconds
    return float("nan"), float("nan")
