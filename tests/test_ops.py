"""cnnkit.ops against torch.nn.functional over many geometries, and its error messages."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from cnnkit.ops import conv2d, conv2d_naive, conv_output_size

GEOMETRIES = [  # (B, C_in, H, W, C_out, kH, kW, stride, padding, dilation)
    (2, 1, 7, 7, 1, 3, 3, 1, 0, 1),
    (1, 3, 8, 9, 4, 3, 3, 1, 1, 1),
    (2, 2, 10, 10, 5, 5, 5, 2, 2, 1),
    (3, 4, 9, 11, 2, 3, 2, (2, 1), (1, 0), 1),
    (1, 3, 12, 12, 6, 3, 3, 1, 2, 2),
    (2, 5, 13, 8, 3, 1, 1, 1, 0, 1),
    (1, 2, 15, 15, 3, 4, 4, 3, 1, (2, 1)),
    (2, 3, 6, 6, 2, 6, 6, 1, 0, 1),
    (1, 1, 5, 5, 1, 3, 3, 2, 3, 1),
]


@pytest.mark.parametrize("impl", [conv2d, conv2d_naive], ids=["unfold", "naive"])
@pytest.mark.parametrize("geom", GEOMETRIES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_matches_torch(impl, geom, with_bias):
    b, cin, h, w, cout, kh, kw, s, p, d = geom
    g = torch.Generator().manual_seed(hash(geom) % 2**31)
    x = torch.randn(b, cin, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(cout, cin, kh, kw, generator=g, dtype=torch.float64)
    bias = torch.randn(cout, generator=g, dtype=torch.float64) if with_bias else None
    expected = F.conv2d(x, weight, bias, stride=s, padding=p, dilation=d)
    got = impl(x, weight, bias, stride=s, padding=p, dilation=d)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)


def test_conv2d_gradients_match_torch():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    conv2d(x, w, stride=2, padding=1).square().sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    F.conv2d(x, w, stride=2, padding=1).square().sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


@pytest.mark.parametrize("size,kernel,padding,stride,dilation",
                         list(itertools.product([5, 8, 13], [1, 2, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2])))
def test_conv_output_size_matches_nn_conv2d(size, kernel, padding, stride, dilation):
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        with pytest.raises(ValueError):
            conv_output_size(size, kernel, padding, stride, dilation)
        return
    conv = torch.nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    expected = conv(torch.zeros(1, 1, size, size)).shape[-1]
    assert conv_output_size(size, kernel, padding, stride, dilation) == expected


def test_impossible_geometry_has_clear_message():
    with pytest.raises(ValueError, match=r"kernel does not fit.*output size would be -1 <= 0.*pad by at least 1"):
        conv_output_size(5, kernel=7, padding=0, stride=1)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(size=0, kernel=3), "size must be >= 1"),
    (dict(size=5, kernel=3, stride=0), "stride must be >= 1"),
    (dict(size=5, kernel=3, padding=-1), "padding must be >= 0"),
    (dict(size=5.0, kernel=3), "size must be an int"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        conv_output_size(**kwargs)


@pytest.mark.parametrize("impl", [conv2d, conv2d_naive])
def test_conv2d_rejects_bad_shapes(impl):
    w = torch.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"add a batch axis with x.unsqueeze\(0\)"):
        impl(torch.randn(3, 8, 8), w)
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\), got 2 dims"):
        impl(torch.randn(8, 8), w)
    with pytest.raises(ValueError, match=r"channel mismatch: x has C_in=1 .* weight must be \(C_out, 1, kH, kW\)"):
        impl(torch.randn(2, 1, 8, 8), w)
    with pytest.raises(ValueError, match=r"weight must have shape \(C_out, C_in, kH, kW\)"):
        impl(torch.randn(2, 3, 8, 8), torch.randn(3, 3, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        impl(torch.randn(2, 3, 8, 8), w, torch.randn(3))
    with pytest.raises(ValueError, match="kernel does not fit"):
        impl(torch.randn(1, 3, 2, 2), w)
    with pytest.raises(ValueError, match="torch tensors"):
        impl(torch.randn(1, 3, 8, 8).numpy(), w)
