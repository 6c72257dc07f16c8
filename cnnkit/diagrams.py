"""Block diagrams drawn with matplotlib only, so they render in Jupyter, Colab and the static site with no
CDN, no Graphviz binary and no JavaScript.

    from cnnkit.diagrams import draw_pipeline
    fig = draw_pipeline(["Input\\n1×28×28", "Conv 3×3, 32\\n32×26×26", "MaxPool 2×2\\n32×13×13",
                         "Flatten\\n5408", "Dense 128", "Dense 10 + softmax"], title="A first CNN")
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["draw_pipeline", "stage_color"]

# Soft fill colours by the kind of layer a stage names (first keyword found in its first line wins).
_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("input", "image"), "#e8e8e8"),
    (("conv",), "#cfe2f3"),
    (("pool",), "#d9ead3"),
    (("norm", "bn"), "#fff2cc"),
    (("relu", "gelu", "tanh", "sigmoid", "activation"), "#fce5cd"),
    (("flatten", "reshape"), "#ead1dc"),
    (("dense", "linear", "fc", "softmax", "output", "logits"), "#f4cccc"),
    (("dropout",), "#d0e0e3"),
)
_DEFAULT_COLOR = "#f3f3f3"
_CHAR_W = 0.095   # approximate width of one character at the font size below, in axis units (inches)
_LINE_H = 0.22    # height of one text line, in axis units
_GAP = 0.45       # horizontal space for an arrow between two boxes


def stage_color(stage: str) -> str:
    """The fill colour for a stage label, chosen by the layer kind its first line names."""
    head = stage.split("\n", 1)[0].lower()
    words = head.replace(",", " ").replace("+", " ").split()
    for keys, color in _KINDS:
        if any(w.startswith(k) or (len(k) >= 4 and k in w) for w in words for k in keys):
            return color
    return _DEFAULT_COLOR


def _check_stages(stages: Sequence[str]) -> list[str]:
    if isinstance(stages, str):
        raise ValueError("stages must be a list of strings, one per box (got a single string); "
                         "wrap it in a list: draw_pipeline([\"Input\", \"Conv\"])")
    stages = list(stages)
    if not stages:
        raise ValueError("stages is empty: pass at least one stage label, e.g. [\"Input\\n1×28×28\"]")
    bad = [i for i, s in enumerate(stages) if not isinstance(s, str) or not s.strip()]
    if bad:
        raise ValueError(f"stage(s) {bad} are not non-empty strings; every stage must be a text label")
    return stages


def draw_pipeline(stages: Sequence[str], ax=None, title: str | None = None, fontsize: float = 9.0) -> Figure:
    """Draw ``stages`` as rounded boxes left to right, joined by arrows, and return the figure.

    Each stage is a label; use ``"\\n"`` to put the layer on the first line and its output shape on the
    second (``"Conv 3×3, 32\\n32×26×26"``). Boxes are as wide as their text and coloured by layer kind.
    Pass ``ax`` to draw into an existing axes (its limits and aspect are reset); otherwise a figure of a
    fitting size is created.
    """
    stages = _check_stages(stages)
    scale = fontsize / 9.0
    widths = [max(len(line) for line in s.split("\n")) * _CHAR_W * scale + 0.3 for s in stages]
    heights = [s.count("\n") * _LINE_H * scale + _LINE_H * scale + 0.3 for s in stages]
    box_h = max(heights)
    total_w = sum(widths) + _GAP * (len(stages) - 1)
    top = 0.35 if title else 0.0

    if ax is None:
        fig, ax = plt.subplots(figsize=(total_w + 0.2, box_h + top + 0.2))
        fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    fig = ax.figure
    ax.set_xlim(-0.1, total_w + 0.1)
    ax.set_ylim(-0.1, box_h + top + 0.1)
    ax.set_aspect("equal")
    ax.set_axis_off()

    x = 0.0
    centers: list[tuple[float, float]] = []   # (left, right) edges of each box
    for label, w in zip(stages, widths):
        box = FancyBboxPatch((x + 0.04, 0.04), w - 0.08, box_h - 0.08, boxstyle="round,pad=0.04,rounding_size=0.08",
                             facecolor=stage_color(label), edgecolor="#444444", linewidth=1.0)
        ax.add_patch(box)
        ax.text(x + w / 2, box_h / 2, label, ha="center", va="center", fontsize=fontsize, linespacing=1.3)
        centers.append((x, x + w))
        x += w + _GAP
    for (_, right), (left, _) in zip(centers, centers[1:]):
        ax.add_patch(FancyArrowPatch((right + 0.02, box_h / 2), (left - 0.02, box_h / 2), arrowstyle="-|>",
                                     mutation_scale=12, linewidth=1.2, color="#444444"))
    if title:
        ax.text(total_w / 2, box_h + top / 2, title, ha="center", va="center", fontsize=fontsize + 2,
                fontweight="bold")
    return fig
