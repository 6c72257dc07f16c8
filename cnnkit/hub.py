"""Pretrained weights: the course's own checkpoint cache, and torchvision's ImageNet weights.

``load_or_train`` trains a model once and keeps its ``state_dict`` in ``cache_dir()/hub`` with a SHA-256
beside it; later calls verify the hash and load the weights instead of training again:

    model = load_or_train("mnist04_cnn", build_fn=make_cnn, train_fn=train_on_0_to_4)

A file that does not match its recorded hash (flipped bytes, a truncated copy) or that cannot be loaded is
retrained with a one-line message saying why, or refused with ``on_corrupt="raise"``.

``imagenet_model("resnet18")`` builds a torchvision model with its ImageNet weights (``weights=`` enums).
The weights download once into torch's hub cache; offline, ``WeightsUnavailableError`` says which file was
needed, where to put it, and what to use instead.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import re
import socket
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .data import cache_dir

__all__ = ["CheckpointError", "WeightsUnavailableError", "checkpoint_path", "load_or_train",
           "imagenet_weights", "imagenet_model"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class CheckpointError(RuntimeError):
    """A cached checkpoint is corrupted, truncated or does not fit the model, and retraining was not allowed."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are not on disk and could not be downloaded (no network)."""


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string such as 'mnist04_cnn', got {type(name).__name__}")
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"checkpoint name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
                         "starting with a letter or digit, no path separators or '..' (e.g. 'mnist04_cnn').")
    return name


def checkpoint_path(name: str) -> Path:
    """Where ``load_or_train(name, ...)`` keeps the weights; the hash sits beside it as ``<file>.sha256``."""
    folder = cache_dir() / "hub"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{_check_name(name)}.pt"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _try_load(path: Path, model: nn.Module) -> str | None:
    """Load ``path`` into ``model``; return None on success, else what is wrong with the file."""
    hash_path = path.with_name(path.name + ".sha256")
    if not hash_path.exists():
        return "has no recorded hash (.sha256 file missing)"
    data = path.read_bytes()
    recorded = hash_path.read_text(encoding="utf-8").split()
    if not recorded or recorded[0] != _sha256(data):
        return "does not match its recorded SHA-256 (corrupted or truncated)"
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any unreadable or mismatched file is reported the same way
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"could not be loaded into the model ({type(exc).__name__}: {first[:120]})"
    return None


def _save(path: Path, model: nn.Module) -> str:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    data = buffer.getvalue()
    digest = _sha256(data)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return digest


def load_or_train(name: str, build_fn: Callable[[], nn.Module], train_fn: Callable[[nn.Module], object],
                  on_corrupt: str = "retrain", verbose: bool = True) -> nn.Module:
    """The model ``build_fn()`` with weights from the cache, or trained by ``train_fn(model)`` and cached.

    ``build_fn`` makes the (untrained) architecture; ``train_fn`` trains it in place (its return value is
    ignored). The weights are saved as ``checkpoint_path(name)`` with their SHA-256 in ``<file>.sha256``.
    A cached file that fails the hash check or does not load is retrained (``on_corrupt="retrain"``, with a
    one-line message) or refused with ``CheckpointError`` (``on_corrupt="raise"``). Change ``name`` when the
    architecture or the training recipe changes. Returns the model in eval mode, on the CPU.
    """
    path = checkpoint_path(name)
    if on_corrupt not in ("retrain", "raise"):
        raise ValueError(f"on_corrupt must be 'retrain' or 'raise', got {on_corrupt!r}")
    if not callable(build_fn) or not callable(train_fn):
        raise TypeError("build_fn and train_fn must be callables: build_fn() -> nn.Module, train_fn(model)")
    model = build_fn()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_fn() must return an nn.Module, got {type(model).__name__}")
    if path.exists():
        problem = _try_load(path, model)
        if problem is None:
            if verbose:
                print(f"cnnkit.hub: loaded {name!r} (SHA-256 verified) from\n  {path}")
            return model.eval()
        if on_corrupt == "raise":
            raise CheckpointError(f"{path} {problem}. Delete it (and {path.name}.sha256) to train it again, "
                                  "or call load_or_train(..., on_corrupt='retrain').")
        if verbose:
            print(f"cnnkit.hub: {path.name} {problem}; training it again.")
        model = build_fn()
    elif verbose:
        print(f"cnnkit.hub: no cached {name!r}; training it now (once).")
    train_fn(model)
    _save(path, model)
    return model.eval()


def imagenet_weights(arch: str = "resnet18", weights: str = "DEFAULT"):
    """torchvision's weights enum member for ``arch`` (no download): ``.meta`` holds the published figures."""
    from torchvision import models

    if not isinstance(arch, str) or not isinstance(weights, str):
        raise TypeError("arch and weights are strings, e.g. imagenet_weights('resnet18', 'IMAGENET1K_V1')")
    try:
        enum = models.get_model_weights(arch)
    except ValueError:
        known = ", ".join(sorted(models.list_models(module=models))[:12])
        raise ValueError(f"unknown torchvision model {arch!r}; try one of: {known}, ... "
                         "(torchvision.models.list_models() lists all).") from None
    if weights == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[weights]
    except KeyError:
        raise ValueError(f"{arch} has no weights {weights!r}; choose one of: "
                         f"{', '.join(m.name for m in enum)} or 'DEFAULT'.") from None


def imagenet_model(arch: str = "resnet18", weights: str = "DEFAULT", timeout: float = 20.0) -> nn.Module:
    """A torchvision model with ImageNet weights, downloaded once into torch's hub cache.

    Offline (or when the download fails) raises ``WeightsUnavailableError`` naming the URL, the file torch
    looks for, and the ways forward. ``timeout`` (seconds) bounds each network wait.
    """
    from torchvision import models

    w = imagenet_weights(arch, weights)
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
    cached = target.exists()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torch.hub prints a long "Downloading: ..." line
            model = models.get_model(arch, weights=w)
        if not cached:
            print(f"cnnkit.hub: downloaded {w.url} to {target}")
        return model
    except Exception as exc:  # noqa: BLE001 - URLError, socket errors, HTTP errors, partial files
        reason = f"{type(exc).__name__}: {exc}"
        raise WeightsUnavailableError(
            f"could not get the ImageNet weights {w} ({reason}); no network was reachable or the download "
            f"failed. It needs {w.url}, saved as {target}. Download that file on a machine with internet and "
            f"copy it there (or set TORCH_HOME), or use the course's own pretrained model "
            f"(cnnkit.hub.load_or_train)."
        ) from None
    finally:
        socket.setdefaulttimeout(old)
