"""Reproducibility: one call seeds every random number generator a notebook uses."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "make_generator"]


def seed_everything(seed: int = 0, deterministic: bool = True) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA); prefer deterministic kernels where cheap.

    Call it explicitly at the top of a notebook; importing cnnkit never seeds anything.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return seed


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for DataLoader shuffling and random splits."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g
