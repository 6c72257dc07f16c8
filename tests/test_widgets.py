"""cnnkit.widgets: the geometry it draws, the live explorer (driven programmatically) and the static figure."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnkit.widgets import ConvExplorer, conv_explorer, conv_geometry, conv_geometry_figure, geometry_svg  # noqa: E402


@pytest.mark.parametrize("n,k,p,s,d", [(7, 3, 0, 1, 1), (7, 3, 1, 2, 1), (8, 2, 1, 3, 2), (6, 3, 2, 1, 3)])
def test_taps_are_the_pixels_the_output_reads(n, k, p, s, d):
    """Put a one at each input pixel in turn: output (r, c) changes exactly when that pixel is a tap."""
    g = conv_geometry(n, k, p, s, d, out_pixel=(1, 1))
    eye = torch.zeros(n * n, 1, n, n)
    eye.view(n * n, -1)[torch.arange(n * n), torch.arange(n * n)] = 1.0      # (n*n, 1, n, n): one-hot images
    out = F.conv2d(eye, torch.ones(1, 1, k, k), stride=s, padding=p, dilation=d)  # (n*n, 1, m, m)
    assert out.shape[-1] == g.output_size
    read = {(i // n + p, i % n + p) for i in torch.nonzero(out[:, 0, 1, 1]).flatten().tolist()}
    inside = {t for t in g.taps if p <= t[0] < n + p and p <= t[1] < n + p}
    assert read == inside and len(g.taps) == k * k


def test_geometry_errors_are_value_errors():
    with pytest.raises(ValueError, match="kernel does not fit"):
        conv_geometry(4, 5)
    with pytest.raises(ValueError, match="outside the 3×3 output"):
        conv_geometry(5, 3, out_pixel=(3, 0))


def test_svg_is_self_contained_and_shows_the_formula():
    svg = geometry_svg(conv_geometry(7, 3, 1, 2))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "= 4" in svg and "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_explorer_updates_when_sliders_move():
    e = conv_explorer(input_size=7, kernel=3, padding=1, stride=1)
    assert isinstance(e, ConvExplorer) and e.error is None
    first = e.view.value
    assert "output 7×7" in first
    e.stride.value = 2
    assert e.view.value != first and "output 4×4" in e.view.value
    assert e.row.max == 3
    e.row.value, e.col.value = 3, 2
    assert "output 4×4" in e.view.value and e.error is None
    e.padding.value = 0                      # output shrinks to 3×3: the chosen pixel is pulled inside
    assert e.row.max == 2 and e.row.value == 2 and e.error is None
    e.dilation.value = 2
    assert "d=2" in e.view.value


def test_explorer_shows_errors_instead_of_raising():
    e = conv_explorer(input_size=5, kernel=3, padding=0)
    e.kernel.value = 7                       # 7 > 5: does not fit
    assert e.error is not None and "kernel does not fit" in e.error
    assert "ValueError" in e.view.value and "<svg" not in e.view.value
    e.padding.value = 1                      # 5 + 2 = 7: fits again
    assert e.error is None and "<svg" in e.view.value and "output 1×1" in e.view.value


def test_static_figure_draws_every_config():
    fig = conv_geometry_figure([dict(kernel=3, title="valid"), dict(kernel=3, padding=1, stride=2),
                                dict(kernel=2, dilation=2, input_size=6)])
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 3 and axes[0].get_title(loc="left") == "valid"
    with pytest.raises(ValueError, match="kernel does not fit"):
        conv_geometry_figure([dict(kernel=9)])


def test_svg_scales_down_on_narrow_screens_and_says_what_it_shows():
    """viewBox + max-width:100%: on a 390 px phone the drawing shrinks instead of overflowing (issue 11);
    a white background keeps its black labels readable in dark mode; the aria-label is its alt text."""
    svg = geometry_svg(conv_geometry(9, 3, 2, 1))
    assert 'viewBox="0 0 ' in svg and "max-width:100%" in svg and "height:auto" in svg
    assert '<rect width="' in svg and 'fill="#ffffff"' in svg.split("<rect", 2)[1]
    assert 'role="img"' in svg and 'aria-label="Convolution geometry: a 9×9 input with padding 2' in svg


def test_explorer_layout_wraps_and_never_exceeds_the_column():
    e = conv_explorer()
    sliders, view = e.children
    assert sliders.layout.flex_flow == "row wrap" and sliders.layout.max_width == "100%"
    assert e.layout.max_width == "100%" and view.layout.max_width == "100%"
    assert all(s.layout.max_width == "100%" for s in (e.size, e.kernel, e.row, e.col))


def test_error_message_uses_the_page_text_colour():
    """Hard-coded dark text (#555 on #121212 was 2.5:1 in dark mode) is unreadable in one of the themes."""
    e = conv_explorer(input_size=5, kernel=3, padding=0)
    e.kernel.value = 7
    assert "color:inherit" in e.view.value and "max-width:min(560px, 100%)" in e.view.value


def test_static_figure_fits_the_site_column_legibly():
    """Issue 11: the geometry figure was 10.4 in wide and shown at 0.67 of its size (titles ~5 px)."""
    import matplotlib.pyplot as plt

    from cnnkit.figstyle import check_legible

    fig = conv_geometry_figure()
    check_legible(fig)                       # <= 8.6 in wide once cropped, no text under 8 pt
    assert fig.get_figwidth() <= 6.9
    plt.close(fig)
    with pytest.raises(ValueError, match="at most 2 panels side by side"):
        conv_geometry_figure(ncols=4)
