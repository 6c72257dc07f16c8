"""Tests of cnnkit.arch: counts checked against hand formulas and torchvision's published figures."""
import pytest
import torch
from torch import nn
from torchvision import models as tvm

from cnnkit.arch import (activation_bytes, conv_macs, conv_params, count_macs, count_params, latency_ms,
                         measure)


def test_conv_params_matches_pytorch():
    for c_in, c_out, k, groups, bias in [(3, 8, 3, 1, True), (8, 8, 3, 8, False), (6, 9, 5, 3, True)]:
        layer = nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)
        assert conv_params(c_in, c_out, k, groups, bias) == sum(p.numel() for p in layer.parameters())


def test_conv_macs_matches_counter():
    layer = nn.Conv2d(6, 9, 3, stride=2, padding=1, groups=3)
    out = layer(torch.zeros(1, 6, 11, 8))
    assert count_macs(layer, (1, 6, 11, 8)) == conv_macs(6, 9, 3, out.shape[2], out.shape[3], groups=3)


def test_small_model_counts_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    assert count_params(model) == 4 * 9 + 4 + 100 * 2 + 2
    assert count_macs(model, (2, 1, 5, 5)) == 2 * (4 * 9 * 25 + 100 * 2)
    # conv and relu outputs: 100 floats each; flatten is a view (not counted again); linear: 2 per image
    assert activation_bytes(model, (2, 1, 5, 5)) == 2 * (100 * 2 + 2) * 4
    model[1] = nn.ReLU(inplace=True)           # writes into the conv's output: counted once
    assert activation_bytes(model, (2, 1, 5, 5)) == 2 * (100 + 2) * 4


def test_trainable_only():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model[0].requires_grad_(False)
    assert count_params(model, trainable_only=True) == 3
    assert count_params(model) == 11


@pytest.mark.parametrize("name, weights", [("resnet18", tvm.ResNet18_Weights.IMAGENET1K_V1),
                                           ("mobilenet_v2", tvm.MobileNet_V2_Weights.IMAGENET1K_V2)])
def test_matches_torchvision_meta(name, weights):
    model = getattr(tvm, name)(weights=None)
    stats = measure(model, (1, 3, 224, 224))
    assert stats.params == weights.meta["num_params"]
    assert abs(stats.macs / 1e9 - weights.meta["_ops"]) < 0.002
    assert model.training                      # measure restores the mode


def test_attention_counted():
    # under no_grad nn.MultiheadAttention takes a fused path; the counter must still see its projections
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):                   # (B, 1, N, D) -> (B, N, D)
            x = x[:, 0]
            return self.mha(x, x, x, need_weights=False)[0]

    n, d = 5, 8
    expected = 4 * n * d * d + 2 * n * n * d     # q, k, v, out projections + two attention matmuls
    assert count_macs(Wrap(), (1, 1, n, d)) == expected
    assert activation_bytes(Wrap(), (1, 1, n, d)) == n * d * 4


def test_latency_positive():
    assert latency_ms(nn.Conv2d(1, 1, 3), (1, 1, 8, 8), repeats=2) > 0


def test_bad_input_errors():
    with pytest.raises(TypeError, match="nn.Module"):
        count_params("resnet18")
    with pytest.raises(ValueError, match="4 positive ints"):
        count_macs(nn.Conv2d(1, 1, 3), (1, 8, 8))
    with pytest.raises(ValueError, match="must divide"):
        conv_params(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="groups must be"):
        conv_params(6, 8, 3, groups=0)
    with pytest.raises(ValueError, match="repeats"):
        latency_ms(nn.Conv2d(1, 1, 3), (1, 1, 8, 8), repeats=0)
