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
    if _myst_glue is not None:
        _myst_glue(name, value, display=display)
    elif display:
        from IPython.display import display as _show
        _show(value)
