"""cnnkit.ops pooling against torch.nn.functional: forward and backward over many geometries, ties,
global pooling, and the error messages."""
import pytest
import torch
import torch.nn.functional as F

from cnnkit.ops import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d, pool_windows

GEOMETRIES = [  # (B, C, H, W, kernel, stride, padding)
    (2, 3, 8, 8, 2, None, 0),
    (1, 1, 7, 7, 2, None, 0),        # odd size: the last row/column is dropped
    (2, 2, 9, 9, 3, 2, 1),           # overlapping windows with padding
    (1, 3, 10, 7, 3, 1, 1),          # stride 1: every input sits in up to 9 windows
    (3, 2, 12, 12, 4, 2, 2),
    (2, 1, 11, 13, (2, 3), (1, 2), (1, 0)),
    (1, 4, 6, 6, 6, None, 0),        # one window covers the whole map
    (2, 2, 5, 8, (3, 2), 2, (1, 1)),
    (1, 1, 13, 13, 5, 3, 2),
    (2, 3, 4, 4, 1, 1, 0),           # 1x1 pooling is the identity
]


def _inputs(geom, dtype=torch.float64):
    b, c, h, w = geom[:4]
    g = torch.Generator().manual_seed(sum(map(hash, map(str, geom))) % 2**31)
    return torch.randn(b, c, h, w, generator=g, dtype=dtype)


def _forward_backward(fn, x, **kwargs):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, **kwargs)
    upstream = torch.linspace(-1, 2, out.numel(), dtype=x.dtype).view_as(out)  # a non-uniform gradient
    (out * upstream).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("geom", GEOMETRIES, ids=str)
def test_max_pool2d_matches_torch_forward_and_backward(geom):
    k, s, p = geom[4:]
    x = _inputs(geom)
    out, grad = _forward_backward(max_pool2d, x, kernel=k, stride=s, padding=p)
    ref, ref_grad = _forward_backward(F.max_pool2d, x, kernel_size=k, stride=s, padding=p)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, ref_grad)


@pytest.mark.parametrize("geom", GEOMETRIES, ids=str)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch_forward_and_backward(geom, count_include_pad):
    k, s, p = geom[4:]
    x = _inputs(geom)
    out, grad = _forward_backward(avg_pool2d, x, kernel=k, stride=s, padding=p, count_include_pad=count_include_pad)
    ref, ref_grad = _forward_backward(F.avg_pool2d, x, kernel_size=k, stride=s, padding=p,
                                      count_include_pad=count_include_pad)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, ref_grad)


def test_max_pool_gradient_goes_to_the_argmax_only():
    x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0],
                        [3.0, 4.0, 1.0, 7.0],
                        [0.0, 0.0, 9.0, 2.0],
                        [6.0, 1.0, 3.0, 8.0]]]], requires_grad=True)
    max_pool2d(x, 2).sum().backward()
    expected = torch.zeros(4, 4)
    expected[0, 1] = expected[1, 3] = expected[3, 0] = expected[2, 2] = 1.0
    torch.testing.assert_close(x.grad[0, 0], expected)


def test_ties_send_the_gradient_to_the_first_maximum_like_torch():
    x = torch.tensor([[[[2.0, 2.0, 1.0, 1.0],
                        [2.0, 2.0, 1.0, 1.0],
                        [0.0, 3.0, 4.0, 4.0],
                        [3.0, 3.0, 4.0, 0.0]]]])
    _, grad = _forward_backward(max_pool2d, x, kernel=2)
    _, ref_grad = _forward_backward(F.max_pool2d, x, kernel_size=2)
    torch.testing.assert_close(grad, ref_grad)
    x.requires_grad_(True)
    max_pool2d(x, 2).sum().backward()
    assert x.grad.sum() == 4 and x.grad.count_nonzero() == 4, "each window must send its gradient to one input"


def test_overlapping_windows_accumulate_gradient():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # the centre wins all four 2x2 windows of a stride-1 pooling
    _, grad = _forward_backward(max_pool2d, x, kernel=2, stride=1)
    _, ref_grad = _forward_backward(F.max_pool2d, x, kernel_size=2, stride=1)
    torch.testing.assert_close(grad, ref_grad)
    assert grad.count_nonzero() == 1


def test_max_pool_ignores_padding_even_for_negative_inputs():
    x = -torch.rand(1, 2, 5, 5) - 1.0  # all values below -1: zero padding would win, -inf padding never does
    torch.testing.assert_close(max_pool2d(x, 3, 2, 1), F.max_pool2d(x, 3, 2, 1))
    assert (max_pool2d(x, 3, 2, 1) < -1).all()


def test_float32_and_stride_default():
    x = _inputs((2, 3, 9, 9), dtype=torch.float32)
    torch.testing.assert_close(max_pool2d(x, 3), F.max_pool2d(x, 3))
    torch.testing.assert_close(avg_pool2d(x, 3), F.avg_pool2d(x, 3))


def test_pool_windows_is_a_view_with_the_window_grid():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    w = pool_windows(x, 2)
    assert w.shape == (1, 1, 2, 2, 2, 2)
    assert w.data_ptr() == x.data_ptr()  # a strided view, no copy
    torch.testing.assert_close(w[0, 0, 1, 0], torch.tensor([[8.0, 9.0], [12.0, 13.0]]))


@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 8, 1, 1), (4, 1, 28, 28)])
def test_global_pooling_matches_adaptive_pooling(shape):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out = global_avg_pool2d(x)
    assert out.shape == shape[:2]
    ref = F.adaptive_avg_pool2d(x, 1)
    torch.testing.assert_close(out, ref.flatten(1))
    torch.testing.assert_close(global_avg_pool2d(x, keepdim=True), ref)
    g, = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g, torch.full_like(x, 1.0 / (shape[2] * shape[3])))
    torch.testing.assert_close(global_max_pool2d(x), F.adaptive_max_pool2d(x, 1).flatten(1))
    torch.testing.assert_close(global_max_pool2d(x, keepdim=True), F.adaptive_max_pool2d(x, 1))


def test_global_pooling_output_size_does_not_depend_on_input_size():
    shapes = {global_avg_pool2d(torch.randn(2, 5, h, w)).shape for h, w in [(8, 8), (13, 21), (64, 3)]}
    assert shapes == {torch.Size([2, 5])}


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
def test_pooling_rejects_bad_input(fn):
    with pytest.raises(ValueError, match=r"add a batch axis with x.unsqueeze\(0\)"):
        fn(torch.randn(3, 8, 8), 2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\), got 2 dims"):
        fn(torch.randn(8, 8), 2)
    with pytest.raises(ValueError, match="kernel does not fit"):
        fn(torch.randn(1, 1, 3, 3), 5)
    with pytest.raises(ValueError, match=r"more than half the kernel.*padding <= 1"):
        fn(torch.randn(1, 1, 8, 8), 3, padding=2)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        fn(torch.randn(1, 1, 8, 8), 3, padding=-1)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        fn(torch.randn(1, 1, 8, 8), 2, stride=0)
    with pytest.raises(ValueError, match="floating-point"):
        fn(torch.ones(1, 1, 4, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="torch tensor"):
        fn(torch.randn(1, 1, 4, 4).numpy(), 2)
    with pytest.raises(ValueError, match="kernel must be an int or a pair"):
        fn(torch.randn(1, 1, 4, 4), 2.5)


def test_global_pooling_rejects_bad_rank():
    with pytest.raises(ValueError, match="unsqueeze"):
        global_avg_pool2d(torch.randn(3, 4, 4))
