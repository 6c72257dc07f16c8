"""A fixed exercise for the checker's own tests (tests/test_grading.py): the first version of chapter 1's
checks, kept here as "99_fixture" so the checker is tested independently of how the course's exercises change.

Every expected value comes from PyTorch itself (``F.conv1d``/``F.conv2d``, ``nn.Conv2d``, ``nn.Linear``),
on several inputs made with a seeded generator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.grading import CheckFailed, Exercise, count_torch_ops, expect_call

EXERCISE = Exercise("99_fixture", title="Convolution (checker fixture)")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ q1: the output-size formula

q1 = EXERCISE.question("q1", "conv_output_size", title="The output-size formula")


def _torch_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    out = F.conv1d(torch.zeros(1, 1, size), torch.zeros(1, 1, kernel), padding=padding, stride=stride,
                   dilation=dilation)  # (1, 1, L_out)
    return out.shape[-1]


def _check_sizes(conv_output_size, cases, hint) -> None:
    for size, kernel, padding, stride, dilation in cases:
        expect_call(conv_output_size, size, kernel, padding=padding, stride=stride, dilation=dilation,
                    expected=_torch_size(size, kernel, padding, stride, dilation), hint=hint)


@q1.test("no padding, stride 1", points=1)
def _(conv_output_size):
    _check_sizes(conv_output_size, [(28, 5, 0, 1, 1), (7, 3, 0, 1, 1), (5, 5, 0, 1, 1), (10, 1, 0, 1, 1)],
                 "without padding a kernel of size k fits at size - k + 1 positions.")


@q1.test("padding and stride", points=1)
def _(conv_output_size):
    _check_sizes(conv_output_size, [(28, 5, 2, 1, 1), (7, 3, 1, 2, 1), (8, 3, 1, 2, 1), (224, 7, 3, 2, 1),
                                    (5, 3, 0, 3, 1)],
                 "padding adds p pixels on *both* sides; stride s keeps every s-th position: "
                 "floor((size + 2p - k) / s) + 1.")


@q1.test("dilation", points=1)
def _(conv_output_size):
    _check_sizes(conv_output_size, [(28, 3, 0, 1, 2), (10, 3, 1, 1, 3), (15, 3, 2, 2, 2), (9, 2, 0, 1, 4)],
                 "a kernel of size k with dilation d spans d*(k-1)+1 pixels of the input.")


# ------------------------------------------------------------------ q2: conv2d with loops, one channel

q2 = EXERCISE.question("q2", "conv2d_loops", title="Single-channel conv2d with loops")


def _torch_conv_single(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv2d(image[None, None], kernel[None, None])[0, 0]  # (H_out, W_out)


def _flip_hint(image: torch.Tensor, kernel: torch.Tensor):
    flipped = _torch_conv_single(image, kernel.flip(0, 1))

    def hint(got):
        if (isinstance(got, torch.Tensor) and got.shape == flipped.shape and got.device == flipped.device
                and torch.allclose(got.double(), flipped.double(), atol=1e-4)):
            return ("your result equals the convolution with the kernel flipped. Deep-learning 'convolution' "
                    "is cross-correlation: multiply window and kernel element by element without flipping.")
        return "out[i, j] = (image[i:i+kH, j:j+kW] * kernel).sum(), for every i < H-kH+1 and j < W-kW+1."
    return hint


def _check_single(conv2d_loops, shapes, dtype=torch.float32, seed=0) -> None:
    g = _gen(seed)
    for (h, w), (kh, kw) in shapes:
        image = torch.randn(h, w, generator=g, dtype=dtype)    # (H, W)
        kernel = torch.randn(kh, kw, generator=g, dtype=dtype)  # (kH, kW)
        expect_call(conv2d_loops, image, kernel, expected=_torch_conv_single(image, kernel),
                    hint=_flip_hint(image, kernel))


@q2.test("3×3 kernel on a 5×5 image", points=1)
def _(conv2d_loops):
    _check_single(conv2d_loops, [((5, 5), (3, 3)), ((8, 8), (3, 3))], seed=1)


@q2.test("non-square image and kernel", points=1)
def _(conv2d_loops):
    _check_single(conv2d_loops, [((6, 9), (2, 4)), ((7, 4), (3, 1)), ((5, 8), (1, 3))], seed=2)


@q2.test("kernel as large as the image, float64", points=1)
def _(conv2d_loops):
    _check_single(conv2d_loops, [((4, 4), (4, 4)), ((3, 6), (3, 2))], dtype=torch.float64, seed=3)


# ------------------------------------------------------------------ q3: vectorised multi-channel conv2d

q3 = EXERCISE.question("q3", "conv2d_vectorised", title="Multi-channel, multi-filter conv2d without loops")


def _check_multi(conv2d_vectorised, geometries, seed: int) -> None:
    g = _gen(seed)
    for (b, c_in, h, w), (c_out, kh, kw), with_bias, stride, padding in geometries:
        x = torch.randn(b, c_in, h, w, generator=g)               # (B, C_in, H, W)
        weight = torch.randn(c_out, c_in, kh, kw, generator=g)    # (C_out, C_in, kH, kW)
        bias = torch.randn(c_out, generator=g) if with_bias else None
        expect_call(conv2d_vectorised, x, weight, bias, stride=stride, padding=padding,
                    expected=F.conv2d(x, weight, bias, stride=stride, padding=padding))


@q3.test("one image, 3 channels, 4 filters", points=1)
def _(conv2d_vectorised):
    _check_multi(conv2d_vectorised, [((1, 3, 6, 6), (4, 3, 3), False, 1, 0),
                                     ((1, 1, 5, 7), (2, 2, 2), False, 1, 0)], seed=10)


@q3.test("a batch, non-square sizes and a bias", points=1)
def _(conv2d_vectorised):
    _check_multi(conv2d_vectorised, [((2, 3, 7, 5), (5, 3, 2), True, 1, 0),
                                     ((3, 2, 6, 9), (4, 1, 3), True, 1, 0)], seed=11)


@q3.test("stride and padding", points=1)
def _(conv2d_vectorised):
    _check_multi(conv2d_vectorised, [((2, 2, 9, 8), (3, 3, 3), True, 2, 1),
                                     ((1, 3, 10, 7), (2, 3, 2), False, 3, 2),
                                     ((2, 1, 6, 6), (2, 5, 5), True, 1, 2)], seed=12)


@q3.test("vectorised: no Python loop over positions", points=1)
def _(conv2d_vectorised):
    g = _gen(13)
    weight = torch.randn(3, 2, 3, 3, generator=g)  # (C_out, C_in, kH, kW)
    counts = {}
    for size in (8, 24):
        x = torch.randn(1, 2, size, size, generator=g)  # (B, C_in, H, W)
        got, counts[size] = count_torch_ops(conv2d_vectorised, x, weight, None, stride=1, padding=0)
        want = F.conv2d(x, weight)
        if not (isinstance(got, torch.Tensor) and got.shape == want.shape
                and torch.allclose(got.detach().double(), want.double(), atol=1e-4)):
            raise CheckFailed("the result is wrong on a plain 1×2×{0}×{0} input; pass the other tests first."
                              .format(size))
    if counts[24] > counts[8] + 10:
        raise CheckFailed(f"your function runs {counts[8]} torch operations for an 8×8 input but {counts[24]} for a "
                          "24×24 one, so it loops over positions. Unfold every window at once (F.unfold, or "
                          "Tensor.unfold) and use one matrix product or einsum.")


# ------------------------------------------------------------------ q4: parameters, conv vs dense

q4 = EXERCISE.question("q4", "conv_params", "dense_params", title="Parameter counts: conv vs dense")


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@q4.test("conv layer counts match nn.Conv2d", points=1)
def _(conv_params, dense_params):
    for c_in, c_out, k, bias in [(1, 8, 3, True), (3, 16, 5, True), (64, 128, 3, False), (16, 4, 1, True)]:
        expect_call(conv_params, c_in, c_out, k, bias=bias,
                    expected=_n_params(nn.Conv2d(c_in, c_out, k, bias=bias, device="meta")),
                    hint="each of the c_out filters has c_in·k·k weights, plus one bias per filter.")


@q4.test("dense layer counts match nn.Linear", points=1)
def _(conv_params, dense_params):
    for n_in, n_out, bias in [(784, 10, True), (28 * 28, 8 * 28 * 28, True), (100, 7, False), (3, 1, True)]:
        expect_call(dense_params, n_in, n_out, bias=bias,
                    expected=_n_params(nn.Linear(n_in, n_out, bias=bias, device="meta")),
                    hint="a dense layer has one weight per (input, output) pair, plus one bias per output.")
