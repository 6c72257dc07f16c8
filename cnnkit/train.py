"""One training loop for the whole course: ``fit`` trains, ``evaluate`` measures, ``History`` remembers.

    history = fit(model, train_loader, nn.CrossEntropyLoss(), optimizer, epochs=5, device=device,
                  eval_loader=test_loader)
    history.test_acc[-1]

On CUDA the forward pass runs under autocast (bf16, or fp16 with gradient scaling); on the CPU it is fp32.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from .device import amp_dtype, autocast, to_device

__all__ = ["History", "fit", "evaluate", "accuracy"]


@dataclass
class History:
    """Per-epoch metrics; ``test_*`` lists stay empty without an ``eval_loader``."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.__dict__.items()}


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max matches the integer target. logits: (N, K), targets: (N,)."""
    if logits.dim() != 2 or targets.dim() != 1 or logits.shape[0] != targets.shape[0]:
        raise ValueError(f"expected logits (N, K) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}")
    return (logits.argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable | None = None,
             device: torch.device | str = "cpu") -> tuple[float, float]:
    """Mean loss (``nan`` without ``loss_fn``) and accuracy of ``model`` over ``loader``, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = to_device(x, device), to_device(y, device)
        with autocast(device):
            logits = model(x)
        logits = logits.float()
        if loss_fn is not None:
            total_loss += loss_fn(logits, y).item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        count += len(y)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got an empty loader.")
    return (total_loss / count if loss_fn is not None else float("nan")), correct / count


def fit(model: nn.Module, train_loader: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer,
        epochs: int, device: torch.device | str = "cpu", eval_loader: Iterable | None = None,
        scheduler=None, step_scheduler_per_batch: bool = False, progress: bool = False,
        verbose: bool = True, history: History | None = None,
        callback: Callable[[int, History], None] | None = None) -> History:
    """Train ``model`` for ``epochs`` and return a ``History`` (pass ``history`` to continue one).

    Classification metrics assume ``model(x)`` returns logits ``(N, K)`` and ``y`` holds class indices.
    ``scheduler.step()`` runs after each epoch, or after each batch with ``step_scheduler_per_batch``
    (e.g. OneCycleLR). ``callback(epoch, history)`` runs after each epoch (e.g. to record gradients).
    ``progress=True`` adds a per-batch progress bar (off by default: executed pages keep one line per epoch).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = torch.device(device)
    model.to(device)
    history = history if history is not None else History()
    scaler = torch.amp.GradScaler("cuda") if amp_dtype(device) == torch.float16 else None
    start_epoch = history.epochs
    for epoch in range(start_epoch, start_epoch + epochs):
        model.train()
        t0 = time.perf_counter()
        total_loss, correct, count = 0.0, 0, 0
        batches = tqdm(train_loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress,
                       file=sys.stderr, mininterval=1.0)
        for x, y in batches:
            x, y = to_device(x, device), to_device(y, device)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device):
                logits = model(x)
                loss = loss_fn(logits, y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if scheduler is not None and step_scheduler_per_batch:
                scheduler.step()
            total_loss += loss.item() * len(y)
            if logits.dim() == 2 and y.dim() == 1:
                correct += (logits.detach().argmax(dim=1) == y).sum().item()
            count += len(y)
        if scheduler is not None and not step_scheduler_per_batch:
            scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        history.epoch_time.append(time.perf_counter() - t0)
        history.train_loss.append(total_loss / max(count, 1))
        history.train_acc.append(correct / max(count, 1))
        line = (f"epoch {epoch + 1:2d}  train loss {history.train_loss[-1]:.3f} "
                f"acc {history.train_acc[-1]:.3f}")
        if eval_loader is not None:
            test_loss, test_acc = evaluate(model, eval_loader, loss_fn, device)
            history.test_loss.append(test_loss)
            history.test_acc.append(test_acc)
            line += f"  test loss {test_loss:.3f} acc {test_acc:.3f}"
        if verbose:  # at most 78 characters: the width of the site's code column
            print(line + f"  {history.epoch_time[-1]:.1f} s")
        if callback is not None:
            callback(epoch, history)
    return history
