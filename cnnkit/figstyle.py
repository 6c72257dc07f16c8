"""Figures that stay legible on the course site (issue 11): sizes, font floor, text colour on coloured cells.

The numbers come from the site as built (sphinx-book-theme, Chromium, 1280 px window; measured by
``tests/site``): the content column is ``COLUMN_PX`` = 688 px wide. Notebook figures are PNGs at
``DPI`` = 100, cropped to their content ("tight" bounding box), so a figure ``W`` inches wide is at most
``100 * W`` px and is shown at ``min(1, 688 / (100 * W))`` of its size. The browser test fails an image
shown below ``MIN_SCALE`` = 0.8; with fonts of at least ``MIN_FONT_PT`` = 8 pt (11 px at 100 dpi) text
then stays at 9 px or more on screen.

    fig, ax = plt.subplots(figsize=(FULL_WIDTH_IN, 3))          # shown 1:1
    im = ax.imshow(values, cmap="viridis")
    annotate_cells(ax, values, im)                              # black on light cells, white on dark
    check_legible(fig)                                          # ValueError if too wide or fonts too small
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["COLUMN_PX", "DPI", "MIN_SCALE", "MIN_FONT_PT", "FULL_WIDTH_IN", "MAX_WIDTH_IN",
           "relative_luminance", "text_color_for", "annotate_cells", "legibility_problems", "check_legible"]

COLUMN_PX = 688          # content column of the site at a 1280 px window (article width minus its padding)
DPI = 100                # matplotlib's figure.dpi in the notebooks (inline backend)
MIN_SCALE = 0.8          # the browser test's floor for displayed width / natural width
MIN_FONT_PT = 8          # 8 pt = 11.1 px at 100 dpi; x 0.8 = 8.9 px on screen
FULL_WIDTH_IN = COLUMN_PX / DPI                 # 6.88 in: shown at full size
MAX_WIDTH_IN = COLUMN_PX / DPI / MIN_SCALE      # 8.6 in: shown at MIN_SCALE


def relative_luminance(color: Any) -> float:
    """WCAG relative luminance (0 black .. 1 white) of any matplotlib colour (name, hex, RGB(A) tuple)."""
    from matplotlib.colors import to_rgb

    rgb = np.asarray(to_rgb(color), dtype=float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(lin @ [0.2126, 0.7152, 0.0722])


def text_color_for(background: Any) -> str:
    """``"black"`` or ``"white"``, whichever contrasts more with ``background`` (WCAG contrast ratio)."""
    lum = relative_luminance(background)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def annotate_cells(ax, values, im=None, fmt: str = "{:g}", fontsize: float = MIN_FONT_PT + 1,
                   colors=None, **text_kw) -> list:
    """Write ``values[i, j]`` at the centre of every cell of a grid drawn with ``imshow``, each in black or
    white by its cell's luminance. The cell colours come from ``im`` (the ``AxesImage``: its colormap and
    normalisation) or from ``colors`` (an array of colours, shape (H, W, 3 or 4)). Returns the texts."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"annotate_cells needs a 2-D array of values, got shape {values.shape}")
    if im is None and colors is None:
        raise ValueError("annotate_cells needs the image returned by ax.imshow (im=...) or the cell colours "
                         "(colors=...) to pick a readable text colour")
    if colors is None:
        colors = im.cmap(im.norm(values))
    colors = np.asarray(colors)
    if colors.shape[:2] != values.shape:
        raise ValueError(f"colors has shape {colors.shape}, values {values.shape}: they must match per cell")
    texts = []
    for (i, j), v in np.ndenumerate(values):
        texts.append(ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                             color=text_color_for(colors[i, j]), **text_kw))
    return texts


def legibility_problems(fig, min_font_pt: float = MIN_FONT_PT, max_width_in: float = MAX_WIDTH_IN) -> list[str]:
    """What would make ``fig`` illegible on the site: wider than ``max_width_in`` once cropped to its content
    (as the notebook saves it), or visible text smaller than ``min_font_pt``. Empty list: fine."""
    canvas = fig.canvas
    renderer = canvas.get_renderer()
    problems = []
    width_in = fig.get_tightbbox(renderer).width
    if width_in > max_width_in + 1e-6:
        problems.append(f"figure is {width_in:.1f} in wide (cropped); at most {max_width_in:.1f} in stays legible "
                        f"in the {COLUMN_PX} px column (split long strips into rows)")
    small = sorted({(round(t.get_fontsize(), 1), t.get_text()[:30]) for t in fig.findobj(
        lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < min_font_pt - 1e-6})
    for size, text in small[:5]:
        problems.append(f"text {text!r} is {size:g} pt; use at least {min_font_pt:g} pt")
    return problems


def check_legible(fig, **kwargs) -> None:
    """Raise ``ValueError`` listing :func:`legibility_problems` of ``fig`` (nothing if it is fine)."""
    problems = legibility_problems(fig, **kwargs)
    if problems:
        raise ValueError("figure not legible on the site: " + "; ".join(problems))
