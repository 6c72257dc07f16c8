"""Glue for the book's pages that also works outside the site build (Colab, a plain Jupyter).

``glue(name, value)`` stores a value so the page's prose can show it (``{glue:text}`name```). The site build
uses myst-nb's ``glue``; where myst-nb is not installed (Colab after the install cell), the value is only shown
when ``display=True``, so a notebook runs the same everywhere.
"""
from __future__ import annotations

from typing import Any

__all__ = ["glue"]

try:  # the site build and the course venv have myst-nb
    from myst_nb import glue as _myst_glue
except ImportError:  # Colab, or a plain Jupyter without the book toolchain
    _myst_glue = None


def glue(name: str, value: Any, display: bool = True) -> None:
    """Name ``value`` for the page's prose (myst-nb) and show it when ``display`` is true."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue names are identifiers like 'test_acc' (used as {{glue:text}}`name`); got {name!r}")
    value = _plain(value)
    if _myst_glue is not None:
        _myst_glue(name, value, display=display)
    elif display:
        from IPython.display import display as _show
        _show(value)


def _plain(value: Any) -> Any:
    """NumPy scalars and one-element tensors as Python numbers: myst-nb formats ``{glue:text}`x:.1%``` by parsing
    the value's text, and NumPy 2 writes ``np.float64(0.5)``, which it cannot parse."""
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    numel = getattr(value, "numel", None)
    if callable(item) and (size == 1 or size == () or (callable(numel) and numel() == 1)) and \
            type(value).__module__.split(".")[0] in ("numpy", "torch"):
        return item()
    return value
