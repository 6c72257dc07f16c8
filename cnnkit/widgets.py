"""Interactive explorer for convolution geometry, with a static figure for the website.

    conv_explorer(input_size=7)           # sliders: size, kernel, padding, stride, dilation, output pixel
    conv_geometry_figure([dict(kernel=3, padding=1, stride=2), ...])   # the same drawing, side by side

Both draw one picture, built once as a list of shapes: the padded input grid (padding in grey), the input
pixels that the chosen output pixel reads (its "footprint", orange; dilation leaves holes), where every
other window starts (dots: the stride), and the output grid. The widget draws into an ``ipywidgets.HTML``
as SVG, so a saved notebook shows its last picture without a kernel (but sliders then do not recompute).
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

import ipywidgets as w

from .ops.conv import conv_output_size

__all__ = ["ConvGeometry", "conv_geometry", "geometry_svg", "conv_geometry_figure", "ConvExplorer", "conv_explorer"]

CELL = 22  # pixels per grid cell in the SVG
GAP = 2 * CELL  # between the input and the output grids
COLORS = {"pad": "#d9d9d9", "image": "#ffffff", "tap": "#f28e2b", "out": "#ffffff", "chosen": "#f28e2b",
          "line": "#555555", "window": "#c0392b", "start": "#4e79a7"}


@dataclass(frozen=True)
class ConvGeometry:
    """Where one output pixel's window sits. Coordinates are (row, col) in the *padded* input."""

    input_size: int
    kernel: int
    padding: int
    stride: int
    dilation: int
    output_size: int
    out_pixel: tuple[int, int]
    taps: tuple[tuple[int, int], ...]          # padded-input cells the chosen output pixel reads
    starts: tuple[int, ...]                    # row (= col) where each window starts, one per output pixel

    @property
    def padded_size(self) -> int:
        return self.input_size + 2 * self.padding

    def formula(self) -> str:
        """The output-size formula with this geometry's numbers filled in."""
        n, k, p, s, d = self.input_size, self.kernel, self.padding, self.stride, self.dilation
        return f"out = ⌊({n} + 2·{p} − {d}·({k} − 1) − 1) / {s}⌋ + 1 = {self.output_size}"


def conv_geometry(input_size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1,
                  out_pixel: tuple[int, int] = (0, 0)) -> ConvGeometry:
    """Geometry of a square convolution; ``ValueError`` (from ``conv_output_size``) if the kernel does not
    fit, and if ``out_pixel`` lies outside the output."""
    n_out = conv_output_size(input_size, kernel, padding, stride, dilation)
    r, c = out_pixel
    if not (0 <= r < n_out and 0 <= c < n_out):
        raise ValueError(f"output pixel {tuple(out_pixel)} is outside the {n_out}×{n_out} output; "
                         f"pick row and column in 0..{n_out - 1}.")
    taps = tuple((r * stride + i * dilation, c * stride + j * dilation) for i in range(kernel) for j in range(kernel))
    starts = tuple(i * stride for i in range(n_out))
    return ConvGeometry(input_size, kernel, padding, stride, dilation, n_out, (r, c), taps, starts)


def _scene(g: ConvGeometry) -> tuple[list[tuple], float, float]:
    """Shapes in grid units: ``("rect", x, y, w, h, fill, stroke, width, dash)``, ``("dot", x, y, r, color)``,
    ``("text", x, y, string, size, anchor)``. Returns shapes, total width and height."""
    shapes: list[tuple] = []
    n, p, m = g.padded_size, g.padding, g.output_size
    top = 1.4  # room for titles
    for row in range(n):
        for col in range(n):
            inside = p <= row < n - p and p <= col < n - p
            shapes.append(("rect", col, top + row, 1, 1, COLORS["image" if inside else "pad"], COLORS["line"], 0.5, ""))
    for row, col in g.taps:
        shapes.append(("rect", col, top + row, 1, 1, COLORS["tap"], COLORS["line"], 0.5, ""))
    span = g.dilation * (g.kernel - 1) + 1
    r0, c0 = g.taps[0]
    shapes.append(("rect", c0, top + r0, span, span, "none", COLORS["window"], 2.0, "4,3"))
    for sr in g.starts:  # top-left corner of every window: the stride made visible
        for sc in g.starts:
            shapes.append(("dot", sc + 0.5, top + sr + 0.5, 0.12, COLORS["start"]))
    shapes.append(("text", 0, 0.9, f"input {g.input_size}×{g.input_size}, padding {p} (grey)", 0.55, "start"))
    x0 = n + GAP / CELL
    for row in range(m):
        for col in range(m):
            chosen = (row, col) == g.out_pixel
            shapes.append(("rect", x0 + col, top + row, 1, 1, COLORS["chosen" if chosen else "out"],
                           COLORS["line"], 0.5, ""))
    shapes.append(("text", x0, 0.9, f"output {m}×{m}", 0.55, "start"))
    width = x0 + max(m, 6)
    height = top + max(n, m) + 2.4
    # Two short lines rather than one long one: the static figure puts two of these side by side in the
    # 6.9 in column, and the formula must stay inside its own panel.
    shapes.append(("text", 0, height - 1.3, f"k={g.kernel} p={p} s={g.stride} d={g.dilation}", 0.55, "start"))
    shapes.append(("text", 0, height - 0.4, g.formula(), 0.55, "start"))
    return shapes, width, height


def geometry_svg(g: ConvGeometry, cell: int = CELL) -> str:
    """The picture as an SVG string (self-contained: no scripts, no external files)."""
    shapes, width, height = _scene(g)
    w_px, h_px = width * cell, height * cell
    label = (f"Convolution geometry: a {g.input_size}×{g.input_size} input with padding {g.padding}, "
             f"a {g.kernel}×{g.kernel} kernel with stride {g.stride} and dilation {g.dilation}, "
             f"and the {g.output_size}×{g.output_size} output; {g.formula()}")
    # viewBox + max-width: the drawing scales down to fit a narrow screen instead of overflowing it.
    # The white background keeps the black labels readable when the site is in dark mode.
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w_px:.0f}" height="{h_px:.0f}" '
           f'viewBox="0 0 {w_px:.0f} {h_px:.0f}" style="max-width:100%;height:auto" '
           f'font-family="sans-serif" role="img" aria-label="{escape(label)}">',
           f'<rect width="{w_px:.0f}" height="{h_px:.0f}" fill="#ffffff"/>']
    for s in shapes:
        if s[0] == "rect":
            _, x, y, w, h, fill, stroke, lw, dash = s
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<rect x="{x * cell:.1f}" y="{y * cell:.1f}" width="{w * cell:.1f}" height="{h * cell:.1f}" '
                       f'fill="{fill}" stroke="{stroke}" stroke-width="{lw}"{dash_attr}/>')
        elif s[0] == "dot":
            _, x, y, r, color = s
            out.append(f'<circle cx="{x * cell:.1f}" cy="{y * cell:.1f}" r="{r * cell:.1f}" fill="{color}"/>')
        else:
            _, x, y, text, size, anchor = s
            out.append(f'<text x="{x * cell:.1f}" y="{y * cell:.1f}" font-size="{size * cell:.0f}" '
                       f'text-anchor="{anchor}">{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _draw(g: ConvGeometry, ax) -> None:
    """The same picture on a matplotlib axis."""
    from matplotlib.patches import Circle, Rectangle

    shapes, width, height = _scene(g)
    for s in shapes:
        if s[0] == "rect":
            _, x, y, w, h, fill, stroke, lw, dash = s
            ax.add_patch(Rectangle((x, y), w, h, facecolor=fill, edgecolor=stroke, linewidth=lw,
                                   linestyle="--" if dash else "-", fill=fill != "none"))
        elif s[0] == "dot":
            _, x, y, r, color = s
            ax.add_patch(Circle((x, y), r, color=color))
        else:
            _, x, y, text, size, anchor = s
            ax.text(x, y, text, fontsize=8, ha="left" if anchor == "start" else "center", va="bottom")
    ax.set_xlim(-0.2, width + 0.3)
    ax.set_ylim(height, -0.2)  # rows grow downwards, like an image
    ax.set_aspect("equal")
    ax.set_axis_off()


def conv_geometry_figure(configs: list[dict] | None = None, input_size: int = 7, ncols: int | None = None):
    """Several geometries side by side (the static stand-in for ``conv_explorer``). Each config holds
    ``kernel``, ``padding``, ``stride``, ``dilation`` and optionally ``out_pixel``, ``input_size``, ``title``.
    Returns the figure."""
    import matplotlib.pyplot as plt

    from .figstyle import FULL_WIDTH_IN

    configs = configs or [dict(kernel=3), dict(kernel=3, padding=1), dict(kernel=3, padding=1, stride=2),
                          dict(kernel=3, dilation=2, out_pixel=(1, 1))]
    ncols = ncols or min(len(configs), 2)
    if not 1 <= ncols <= 2:
        raise ValueError(f"ncols={ncols}: at most 2 panels side by side fit the site's column with legible "
                         "labels; more panels go into more rows")
    nrows = -(-len(configs) // ncols)
    # Sized for the site's content column (cnnkit.figstyle): shown 1:1 at 1280 px, labels at 8 pt.
    width = FULL_WIDTH_IN if ncols == 2 else FULL_WIDTH_IN * 0.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 3.2 * nrows), squeeze=False)
    for ax in axes.ravel()[len(configs):]:
        ax.set_axis_off()
    for ax, cfg in zip(axes.ravel(), configs):
        cfg = dict(cfg)
        size = cfg.pop("input_size", input_size)
        title = cfg.pop("title", None)
        _draw(conv_geometry(size, **cfg), ax)
        if title:
            ax.set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def _error_html(message: str) -> str:
    # Text in the page's own colour (readable in light and dark mode); the red is only the border.
    return (f'<div style="color:inherit;border:2px solid #d32f2f;padding:8px;max-width:min(560px, 100%);'
            f'box-sizing:border-box;font-family:sans-serif"><b>ValueError:</b> {escape(message)}</div>')


class ConvExplorer(w.VBox):
    """Sliders for the geometry and an SVG view that redraws on every change (errors shown, not raised)."""

    def __init__(self, input_size: int = 7, kernel: int = 3, padding: int = 1, stride: int = 1,
                 dilation: int = 1):
        def slider(description, value, lo, hi):
            return w.IntSlider(value=value, min=lo, max=hi, description=description, continuous_update=False,
                               style={"description_width": "90px"},
                               layout=w.Layout(width="300px", max_width="100%"))

        self.size = slider("input size", input_size, 1, 12)
        self.kernel = slider("kernel", kernel, 1, 7)
        self.padding = slider("padding", padding, 0, 4)
        self.stride = slider("stride", stride, 1, 4)
        self.dilation = slider("dilation", dilation, 1, 4)
        self.row = slider("output row", 0, 0, 11)
        self.col = slider("output col", 0, 0, 11)
        self.view = w.HTML()
        self.error: str | None = None
        controls = [self.size, self.kernel, self.padding, self.stride, self.dilation, self.row, self.col]
        # The two slider columns sit side by side where there is room and wrap below each other on a phone;
        # nothing is wider than the screen (checked at 390 px by the browser test).
        column = w.Layout(max_width="100%")
        sliders = w.HBox([w.VBox(controls[:5], layout=column), w.VBox(controls[5:], layout=column)],
                         layout=w.Layout(flex_flow="row wrap", max_width="100%"))
        self.view.layout = w.Layout(max_width="100%")
        super().__init__([sliders, self.view], layout=w.Layout(max_width="100%"))
        for s in controls:
            s.observe(self._redraw, names="value")
        self._redraw()

    def _redraw(self, change=None) -> None:
        try:
            n_out = conv_output_size(self.size.value, self.kernel.value, self.padding.value,
                                     self.stride.value, self.dilation.value)
            for s in (self.row, self.col):  # keep the chosen output pixel inside the output
                s.max = n_out - 1
            g = conv_geometry(self.size.value, self.kernel.value, self.padding.value, self.stride.value,
                              self.dilation.value, (self.row.value, self.col.value))
        except ValueError as exc:
            self.error = str(exc)
            self.view.value = _error_html(self.error)
            return
        self.error = None
        self.view.value = geometry_svg(g)


def conv_explorer(input_size: int = 7, kernel: int = 3, padding: int = 1, stride: int = 1, dilation: int = 1):
    """An interactive explorer: change the sliders and the picture and the formula update.

    Invalid settings (a kernel that does not fit) show the ``ValueError`` message instead of a picture.
    """
    return ConvExplorer(input_size, kernel, padding, stride, dilation)
