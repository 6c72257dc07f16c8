"""Run profiles: ``quick`` (the CPU default, what CI runs and the site shows) and ``full`` (the GPU default).

    cfg = settings(quick=dict(epochs=5, n_train=4000), full=dict(epochs=20, n_train=60000))

The environment variable ``CNNKIT_PROFILE`` (``quick`` or ``full``) overrides the automatic choice.
"""
from __future__ import annotations

import textwrap

import os
from typing import Any

import torch

__all__ = ["PROFILES", "get_profile", "settings"]

PROFILES = ("quick", "full")


def get_profile(device: torch.device | str | None = None) -> str:
    """``CNNKIT_PROFILE`` if set, else ``full`` when ``device`` (default: the best available) is CUDA."""
    env = os.environ.get("CNNKIT_PROFILE", "").strip().lower()
    if env:
        if env not in PROFILES:
            raise ValueError(
                f"CNNKIT_PROFILE={env!r} is not a profile; use one of {', '.join(PROFILES)} or unset it."
            )
        return env
    if device is None:
        on_gpu = torch.cuda.is_available()
    else:
        on_gpu = torch.device(device).type == "cuda"
    return "full" if on_gpu else "quick"


def settings(
    quick: dict[str, Any],
    full: dict[str, Any] | None = None,
    *,
    device: torch.device | str | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Return the settings of the active profile and print them, so a reader sees what ran.

    ``full`` only lists what differs from ``quick``; keys it adds that ``quick`` lacks are an error
    (a typo would otherwise silently change only the GPU run).
    """
    full = full or {}
    unknown = sorted(set(full) - set(quick))
    if unknown:
        raise KeyError(f"full profile sets {unknown} that the quick profile lacks; add them to quick=.")
    profile = get_profile(device)
    chosen = dict(quick)
    if profile == "full":
        chosen.update(full)
    if verbose:
        shown = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
        # wrapped to 78 characters, the width of the site's code column
        print(textwrap.fill(f"Profile '{profile}': {shown}", width=78, subsequent_indent="  ",
                            break_long_words=False, break_on_hyphens=False))
    return chosen
