"""cnnkit.diagrams: pipeline diagrams drawn with matplotlib only."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from cnnkit.diagrams import draw_pipeline, stage_color  # noqa: E402

STAGES = ["Input\n1×28×28", "Conv 3×3, 32\n32×26×26", "MaxPool 2×2\n32×13×13", "Flatten\n5408",
          "Dense 128", "Dense 10 + softmax"]


def _boxes(ax):
    return [p for p in ax.patches if isinstance(p, FancyBboxPatch)]


def test_one_box_per_stage_and_one_arrow_between_neighbours():
    fig = draw_pipeline(STAGES, title="A first CNN")
    ax = fig.axes[0]
    boxes = _boxes(ax)
    assert len(boxes) == len(STAGES)
    assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) == len(STAGES) - 1
    texts = [t.get_text() for t in ax.texts]
    assert texts[: len(STAGES)] == STAGES and "A first CNN" in texts
    # boxes go left to right without overlapping
    lefts = [b.get_x() for b in boxes]
    rights = [b.get_x() + b.get_width() for b in boxes]
    assert lefts == sorted(lefts) and all(r < l for r, l in zip(rights, lefts[1:]))
    # every label fits inside its box once drawn
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for box, text in zip(boxes, ax.texts):
        tb = text.get_window_extent(renderer)
        bb = box.get_window_extent(renderer)
        assert bb.x0 <= tb.x0 and tb.x1 <= bb.x1, f"label {text.get_text()!r} overflows its box"
    plt.close(fig)


def test_draws_into_a_given_axes_and_renders_pixels():
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2))
    out = draw_pipeline(["a", "b"], ax=right)
    assert out is fig and len(_boxes(right)) == 2 and not _boxes(left)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())
    assert (img[..., :3] < 250).any(), "nothing was drawn"
    plt.close(fig)


def test_layer_kinds_get_distinct_colours():
    assert stage_color("Conv 3×3") != stage_color("MaxPool 2×2") != stage_color("Dense 10")
    assert stage_color("MaxPool 2×2") == stage_color("AvgPool")
    assert stage_color("something else") == stage_color("another thing")


@pytest.mark.parametrize("bad, fragment", [([], "empty"), ("Conv", "single string"), (["ok", ""], "[1]"),
                                           (["ok", 3], "[1]")])
def test_bad_input_raises_a_clear_error(bad, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        draw_pipeline(bad)
