"""Repeating a training run over seeds and summarising the spread: the course's evidence rules in code.

A claim that one model beats another rests on several seeds (COURSE.md section 4). ``over_seeds`` runs the
same experiment once per seed (seeding everything first) and returns the results as an array;
``mean_sd`` and ``paired_difference`` turn them into the text the prose glues.

    accs = over_seeds(lambda seed: train_and_test(seed), seeds=(0, 1, 2))   # shape (3,)
    print(mean_sd(accs))                                                     # "96.2% ± 0.4"
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .repro import seed_everything

__all__ = ["over_seeds", "mean_sd", "paired_difference", "paired_ci"]


def over_seeds(run: Callable[[int], Any], seeds: Sequence[int]) -> np.ndarray:
    """``np.array([run(s) for s in seeds])``, calling ``seed_everything(s)`` before each run."""
    if isinstance(seeds, int) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty list of ints, e.g. (0, 1, 2); got {seeds!r}")
    results = []
    for seed in seeds:
        seed_everything(int(seed))
        results.append(run(int(seed)))
    return np.asarray(results, dtype=float)


def mean_sd(values: Sequence[float], percent: bool = True, digits: int = 1) -> str:
    """``"96.2% ± 0.4"`` (percent points) or ``"0.962 ± 0.004"``: the mean and the sample sd over seeds."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_sd needs at least one value")
    sd = v.std(ddof=1) if v.size > 1 else float("nan")
    if percent:
        return f"{100 * v.mean():.{digits}f}% ± {100 * sd:.{digits}f}"
    return f"{v.mean():.{digits + 2}f} ± {sd:.{digits + 2}f}"


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd of ``a[i] - b[i]`` over seeds (runs that share a seed are paired)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"paired_difference needs two equal-length lists of >= 2 values, got {a.shape} and "
                         f"{b.shape}")
    d = a - b
    return float(d.mean()), float(d.std(ddof=1))


def paired_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``a[i] - b[i]`` and its confidence interval (Student's t).

    A difference "counts" when the interval excludes zero; with 3 to 5 seeds the interval is wide, which is
    the point: it says how much the seeds can tell.
    """
    from scipy.stats import t

    mean, sd = paired_difference(a, b)
    n = len(a)
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / n ** 0.5
    return mean, mean - half, mean + half
