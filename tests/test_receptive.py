"""cnnkit.ops.receptive_field (the formula) against measurements (autograd and input perturbation)."""
import random

import pytest
import torch
from torch import nn

from cnnkit.ops import (ReceptiveField, empirical_receptive_field, layer_geometries, receptive_field,
                        receptive_field_trace)


def random_stack(rng: random.Random, depth: int) -> nn.Sequential:
    """A random nn.Sequential of convs (any kernel, stride, padding, dilation), pools and activations."""
    layers, c = [], 1
    for _ in range(depth):
        kind = rng.choice(["conv", "conv", "conv", "max", "avg"])
        if kind == "conv":
            k, d = rng.choice([1, 2, 3, 3, 4, 5]), rng.choice([1, 1, 2, 3])
            c_out = rng.choice([1, 2, 3])
            layers += [nn.Conv2d(c, c_out, k, stride=rng.choice([1, 1, 2, 3]), padding=rng.choice([0, 1, 2]),
                                 dilation=d), rng.choice([nn.ReLU(), nn.Tanh(), nn.BatchNorm2d(c_out)])]
            c = c_out
        elif kind == "max":
            k = rng.choice([2, 3])
            layers.append(nn.MaxPool2d(k, stride=rng.choice([None, 1, 2]), padding=rng.choice([0, k // 2]),
                                       dilation=rng.choice([1, 2])))
        else:
            k = rng.choice([2, 3])
            layers.append(nn.AvgPool2d(k, stride=rng.choice([None, 1, 2]), padding=rng.choice([0, 1])))
    return nn.Sequential(*layers)


def input_size_for(rf: ReceptiveField) -> int:
    """Comfortably larger than the field, so the middle output pixel's field is inside the image."""
    return 3 * rf.size + 4 * rf.jump + 8


STACKS = [random_stack(random.Random(seed), depth=random.Random(seed + 1000).randint(1, 6)) for seed in range(60)]


@pytest.mark.parametrize("i", range(len(STACKS)))
def test_formula_matches_autograd_on_random_stacks(i):
    model = STACKS[i]
    rf = receptive_field(model)
    measured = empirical_receptive_field(model, input_size_for(rf))
    assert measured == rf, f"{model}\nformula {rf}, measured {measured}"


def test_random_stacks_cover_dilation_pooling_and_strides():
    geoms = [g for m in STACKS for g in layer_geometries(m)]
    assert any(g.dilation > 1 and g.name == "Conv2d" for g in geoms)
    assert any(g.dilation > 1 and g.name == "MaxPool2d" for g in geoms)
    assert any(g.name == "AvgPool2d" for g in geoms) and any(g.stride > 2 for g in geoms)
    assert max(receptive_field(m).size for m in STACKS) > 30


def test_wrong_formula_would_be_caught():
    """The measurement has teeth: ignoring dilation gives a size the measurement rejects."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, dilation=3))
    measured = empirical_receptive_field(model, 60)
    size_without_dilation = 1 + sum((g.kernel - 1) for g in layer_geometries(model)) * 1  # wrong on purpose
    assert measured.size != size_without_dilation
    assert measured == receptive_field(model) == ReceptiveField(size=19, jump=2, start=9.0)


@pytest.mark.parametrize("seed", range(8))
def test_formula_matches_input_perturbation_with_real_max_pooling(seed):
    """Measure with the unmodified model: a huge value at an input pixel changes output pixel (i, j)
    only if that pixel is in its field. Positive weights keep the signal from cancelling."""
    rng = random.Random(100 + seed)
    layers = []
    for _ in range(3):
        layers += [nn.Conv2d(1, 1, rng.choice([2, 3]), stride=rng.choice([1, 2]), padding=rng.choice([0, 1]),
                             dilation=rng.choice([1, 2])), nn.ReLU(), nn.MaxPool2d(rng.choice([2, 3]), 1)]
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(0.5, 1.0)
                m.bias.zero_()
    rf = receptive_field(model)
    n = input_size_for(rf)
    base = torch.rand(1, 1, n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    hot = base.repeat(n, 1, 1, 1)                 # (n, 1, n, n): image r has row r set very bright
    hot[torch.arange(n), 0, torch.arange(n), :] = 1e6
    with torch.no_grad():
        out0, out = model(base), model(hot)       # (1, 1, H', W'), (n, 1, H', W')
    i = (out.shape[2] - 1) // 2
    changed = torch.nonzero(out[:, 0, i, out.shape[3] // 2] != out0[0, 0, i, out.shape[3] // 2]).flatten()
    lo, hi = rf.window(i)
    assert (changed.min().item(), changed.max().item()) == (lo, hi)
    assert len(changed) <= rf.size


def test_known_values():
    assert receptive_field([(3, 1, 1)] * 4) == ReceptiveField(9, 1, 0.0)      # 2L + 1
    assert receptive_field([(3, 2, 1)] * 3).size == 15                          # 1 + 2(1 + 2 + 4)
    assert receptive_field([(3, 1, d, d) for d in (1, 2, 4, 8)]).size == 31    # dilations double
    assert receptive_field([(2, 2)]) == ReceptiveField(2, 2, 0.5)               # even kernel: centre between pixels
    trace = receptive_field_trace([(3,), (3,)])
    assert [t.size for t in trace] == [1, 3, 5] and trace[-1].start == 2.0
    assert ReceptiveField(5, 2, 1.0).window(3) == (5.0, 9.0)


def test_modules_tuples_and_nesting_agree():
    seq = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),
                        nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, dilation=2, padding=2), nn.BatchNorm2d(4)))
    assert receptive_field(seq) == receptive_field([(5, 1, 2), (2, 2), (3, 2, 2, 2)])
    assert receptive_field([nn.Conv2d(1, 1, 3), (3, 2)]) == receptive_field([(3,), (3, 2)])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_padding_same_and_valid_strings():
    assert receptive_field(nn.Conv2d(1, 1, 5, padding="same")) == receptive_field([(5, 1, 2)])
    assert receptive_field(nn.Conv2d(1, 1, 4, padding="same")).start == 0.5   # pads 1 before, 2 after: -1..2
    assert receptive_field(nn.Conv2d(1, 1, 3, padding="valid")) == receptive_field([(3,)])
    model = nn.Conv2d(1, 1, 4, padding="same", dilation=3)
    assert empirical_receptive_field(model, 40) == receptive_field(model)


def test_non_square_layers_need_an_axis():
    model = nn.Sequential(nn.Conv2d(1, 1, (3, 5), stride=(1, 2), padding=(1, 0)), nn.MaxPool2d((2, 3)))
    with pytest.raises(ValueError, match="axis=0"):
        receptive_field(model)
    for axis in (0, 1):
        rf = receptive_field(model, axis=axis)
        assert empirical_receptive_field(model, (50, 60), axis=axis) == rf
    assert receptive_field(model, axis=0).size == 4 and receptive_field(model, axis=1).size == 9


@pytest.mark.parametrize("bad,match", [
    (nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten(), nn.Linear(4, 2)), "whole input"),
    (nn.AdaptiveAvgPool2d(1), "whole input"),
    (nn.ConvTranspose2d(1, 1, 3), "cannot analyse ConvTranspose2d"),
    ([(3, 0)], "stride must be >= 1"),
    ([(0,)], "kernel must be >= 1"),
    ([(3, 1, 1, 1, 1)], "expected"),
    ([(3.0, 1)], "must be an int"),
    ("conv3x3", "must be an nn.Module or a list"),
])
def test_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        receptive_field(bad)


def test_empirical_asks_for_a_larger_input():
    with pytest.raises(ValueError, match="larger input"):
        empirical_receptive_field(nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(6)]), 9)


def test_empirical_leaves_the_model_untouched():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))
    before = model[0].weight.detach().clone()
    empirical_receptive_field(model, 20)
    assert torch.equal(model[0].weight, before) and isinstance(model[1], nn.MaxPool2d) and model.training
