"""cnnkit.deepnets: layer counts, shapes, shortcuts, initialisation and the gradient-norm helper."""
import math

import pytest
import torch
from torch import nn

from cnnkit.deepnets import Block, Shortcut, conv_grad_norms, conv_layers, deep_cnn, init_weights, pad_shortcut
from cnnkit.models import count_parameters


@pytest.mark.parametrize("depth", [8, 14, 20])
@pytest.mark.parametrize("residual", [False, True])
def test_depth_counts_weighted_layers_and_shapes(depth, residual):
    model = deep_cnn(depth, residual=residual)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert len(conv_layers(model)) + n_linear == depth == model.depth
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model(torch.zeros(1, 1, 13, 17)).shape == (1, 10)            # global pooling: any size


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="depth = 6"):
        deep_cnn(21)
    with pytest.raises(ValueError, match="act="):
        deep_cnn(8, act="swish")
    with pytest.raises(ValueError, match="init="):
        deep_cnn(8, init="orthogonal")
    with pytest.raises(ValueError, match="shortcut="):
        deep_cnn(8, residual=True, shortcut="dense")
    with pytest.raises(ValueError, match="projection"):
        pad_shortcut(torch.zeros(1, 4, 4, 4), 2)


def test_pad_shortcut_subsamples_and_appends_zero_channels():
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    y = pad_shortcut(x, 5, 2)
    assert y.shape == (2, 5, 4, 3) and y.dtype == torch.float64
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2])
    assert (y[:, 3:] == 0).all()
    assert pad_shortcut(x.to("meta"), 5, 2).device.type == "meta"


def test_shortcut_kinds_and_parameter_costs():
    assert count_parameters(Shortcut(8, 8, 1, "projection")) == 0           # shapes match: identity
    assert count_parameters(Shortcut(8, 16, 2, "identity")) == 0
    assert count_parameters(Shortcut(8, 16, 2, "projection")) == 8 * 16 + 16
    assert count_parameters(Shortcut(8, 16, 2, "projection", bn=True)) == 8 * 16 + 2 * 16
    x = torch.randn(2, 8, 9, 9)
    for kind in ("identity", "projection"):
        assert Shortcut(8, 16, 2, kind)(x).shape == (2, 16, 5, 5)


def test_residual_block_is_f_plus_x():
    torch.manual_seed(0)
    block = Block(4, 4, residual=True)
    plain = Block(4, 4)
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, 4, 6, 6)
    f = plain.conv2(plain.act1(plain.conv1(x)))
    torch.testing.assert_close(block(x), torch.relu(f + x))
    torch.testing.assert_close(plain(x), torch.relu(f))


def test_bn_removes_conv_biases_and_counts_match_resnet20_layout():
    model = deep_cnn(20, residual=True, bn=True, shortcut="identity")
    assert all(m.bias is None for m in conv_layers(model))
    # stem 9*8, 18 convs, BN (2 per channel), head: checked by formula
    widths, n = (8, 16, 32), 3
    convs = 9 * 1 * 8 + sum(9 * (c_in * c + c * c) + 9 * c * c * 2 * (n - 1)
                            for c_in, c in zip((8, 8, 16), widths))
    bns = 2 * 8 + sum(2 * 2 * c * n for c in widths)
    assert count_parameters(model) == convs + bns + 32 * 10 + 10


def test_kaiming_init_has_the_advertised_spread():
    torch.manual_seed(0)
    model = init_weights(deep_cnn(20, widths=(32, 64, 64)), "kaiming")
    conv = conv_layers(model)[-1]
    fan_in = conv.weight[0].numel()
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert (conv.bias == 0).all()


def test_grad_norms_vanish_in_the_plain_sigmoid_net_and_not_with_residuals():
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    sig = conv_grad_norms(deep_cnn(20, act="sigmoid"), x, y)
    res = conv_grad_norms(deep_cnn(20, residual=True), x, y)
    assert sig.shape == res.shape == (19,)
    assert sig[0] < 1e-4 * sig[-1]
    assert res[0] > 1e-2 * res[-1]
