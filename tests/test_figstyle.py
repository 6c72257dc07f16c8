"""cnnkit.figstyle: text colour by luminance, cell annotation, and the legibility check."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnnkit import figstyle  # noqa: E402


@pytest.mark.parametrize("color,expected", [("white", "black"), ("black", "white"), ("#000080", "white"),
                                            ("#800000", "white"), ("yellow", "black"), ("#d9d9d9", "black"),
                                            ((0.9, 0.9, 0.1, 1.0), "black")])
def test_text_colour_follows_luminance(color, expected):
    assert figstyle.text_color_for(color) == expected


def test_luminance_endpoints():
    assert figstyle.relative_luminance("black") == 0.0
    assert figstyle.relative_luminance("white") == pytest.approx(1.0)


def test_annotate_cells_picks_colour_per_cell():
    values = np.array([[0.0, 1.0], [2.0, 3.0]])
    fig, ax = plt.subplots()
    im = ax.imshow(values, cmap="gray")          # 0 -> black cell, 3 -> white cell
    texts = figstyle.annotate_cells(ax, values, im, fmt="{:.0f}")
    assert [t.get_text() for t in texts] == ["0", "1", "2", "3"]
    assert texts[0].get_color() == "white" and texts[3].get_color() == "black"
    plt.close(fig)


def test_annotate_cells_rejects_bad_input():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="im=...|colors="):
        figstyle.annotate_cells(ax, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2-D array"):
        figstyle.annotate_cells(ax, np.zeros(3), colors=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="must match per cell"):
        figstyle.annotate_cells(ax, np.zeros((2, 2)), colors=np.zeros((3, 3, 3)))
    plt.close(fig)


def test_legibility_flags_wide_figures_and_small_text():
    fig, ax = plt.subplots(figsize=(12, 2))
    ax.plot([0, 1])
    ax.set_title("tiny", fontsize=5)
    problems = figstyle.legibility_problems(fig)
    assert any("in wide" in p for p in problems) and any("'tiny' is 5 pt" in p for p in problems)
    with pytest.raises(ValueError, match="not legible"):
        figstyle.check_legible(fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(figstyle.FULL_WIDTH_IN, 2))
    ax.plot([0, 1])
    ax.set_title("fine", fontsize=10)
    ax.tick_params(labelsize=8)
    figstyle.check_legible(fig)
    plt.close(fig)


def test_constants_agree():
    assert figstyle.MAX_WIDTH_IN == pytest.approx(figstyle.COLUMN_PX / figstyle.DPI / figstyle.MIN_SCALE)
    assert figstyle.MIN_FONT_PT * figstyle.DPI / 72 * figstyle.MIN_SCALE >= 8.8   # ~9 px on screen
