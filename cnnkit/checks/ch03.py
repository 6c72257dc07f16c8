"""Grader tests for ``exercises/source/03_pooling.ipynb`` (chapter 3: pooling).

Every expected value comes from PyTorch itself (``F.max_pool2d``, ``F.avg_pool2d`` and autograd through them,
``F.adaptive_avg_pool2d``, ``nn.Linear``), on several inputs made with a seeded generator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.grading import CheckFailed, Exercise, call, expect_call

EXERCISE = Exercise("03_pooling", title="Pooling")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


# ------------------------------------------------------------------ q1: max pooling, non-overlapping windows

q1 = EXERCISE.question("q1", "max_pool2d", title="Max pooling with non-overlapping windows")


def _max_hint(x: torch.Tensor, k: int):
    avg = F.avg_pool2d(x, k)

    def hint(got):
        if isinstance(got, torch.Tensor) and got.shape == avg.shape and torch.allclose(got, avg, atol=1e-5):
            return "your result is the mean of each window; max pooling keeps the largest value."
        if isinstance(got, torch.Tensor) and got.dim() == 4 and got.shape[-2:] != avg.shape[-2:]:
            return (f"the output should be {tuple(avg.shape)}: windows of {k}×{k} placed side by side "
                    f"(stride {k}), and a last row/column that does not fill a window is dropped.")
        return ("split H and W into (H // k, k) and (W // k, k) blocks, e.g. x[..., :H//k*k, :W//k*k].reshape("
                "B, C, H//k, k, W//k, k), and take the max over the two k axes (or use Tensor.unfold).")
    return hint


def _check_max(max_pool2d, cases, seed: int) -> None:
    for i, (shape, k) in enumerate(cases):
        x = _randn(shape, seed + i)                           # (B, C, H, W)
        expect_call(max_pool2d, x, k, expected=F.max_pool2d(x, k), hint=_max_hint(x, k))


@q1.test("2×2 windows on square maps", points=1)
def _(max_pool2d):
    _check_max(max_pool2d, [((1, 1, 4, 4), 2), ((2, 3, 8, 8), 2)], seed=0)


@q1.test("non-square maps, other kernels, a batch of channels", points=1)
def _(max_pool2d):
    _check_max(max_pool2d, [((2, 4, 6, 9), 3), ((3, 2, 8, 4), 4), ((1, 5, 10, 6), 2)], seed=10)


@q1.test("sizes that are not multiples of the kernel", points=1)
def _(max_pool2d):
    _check_max(max_pool2d, [((1, 1, 5, 5), 2), ((2, 3, 7, 9), 3), ((1, 2, 11, 6), 4)], seed=20)


@q1.test("all-negative values and float64", points=1)
def _(max_pool2d):
    for i, (shape, k) in enumerate([((2, 2, 6, 6), 2), ((1, 3, 9, 6), 3)]):
        x = -_randn(shape, 30 + i, torch.float64).abs() - 1.0  # every value below -1
        expect_call(max_pool2d, x, k, expected=F.max_pool2d(x, k), hint=_max_hint(x, k))


# ------------------------------------------------------------------ q2: average pooling with a stride

q2 = EXERCISE.question("q2", "avg_pool2d", title="Average pooling with a stride")


def _avg_hint(x: torch.Tensor, k: int, s: int):
    want = F.avg_pool2d(x, k, s)

    def hint(got):
        if isinstance(got, torch.Tensor) and got.shape == want.shape:
            if torch.allclose(got, want * k, atol=1e-5):
                return f"your values are {k} times too large: a {k}×{k} window holds k·k = {k * k} values."
            if torch.allclose(got, want * k * k, atol=1e-5):
                return "you return the sum of each window; divide by the number of values in it."
        return (f"windows of {k}×{k} start every {s} pixels: x.unfold(2, k, s).unfold(3, k, s) gives "
                "(B, C, H_out, W_out, k, k); average over the last two axes.")
    return hint


def _check_avg(avg_pool2d, cases, seed: int) -> None:
    for i, (shape, k, s) in enumerate(cases):
        x = _randn(shape, seed + i)                           # (B, C, H, W)
        expect_call(avg_pool2d, x, k, s, expected=F.avg_pool2d(x, k, s), hint=_avg_hint(x, k, s))


@q2.test("stride equal to the kernel", points=1)
def _(avg_pool2d):
    _check_avg(avg_pool2d, [((1, 1, 4, 4), 2, 2), ((2, 3, 9, 6), 3, 3)], seed=40)


@q2.test("overlapping windows (stride smaller than the kernel)", points=1)
def _(avg_pool2d):
    _check_avg(avg_pool2d, [((1, 2, 7, 7), 3, 2), ((2, 1, 6, 9), 2, 1), ((1, 3, 10, 8), 4, 2)], seed=50)


@q2.test("stride larger than the kernel", points=1)
def _(avg_pool2d):
    _check_avg(avg_pool2d, [((2, 2, 9, 9), 2, 3), ((1, 1, 12, 7), 3, 4)], seed=60)


# ------------------------------------------------------------------ q3: the backward pass of max pooling

q3 = EXERCISE.question("q3", "max_pool2d_backward", title="The backward pass of max pooling, by hand")


def _torch_backward(x: torch.Tensor, grad_out: torch.Tensor, k: int) -> torch.Tensor:
    xr = x.detach().clone().requires_grad_(True)
    F.max_pool2d(xr, k).backward(grad_out)
    return xr.grad                                            # (B, C, H, W)


def _backward_hint(x: torch.Tensor, grad_out: torch.Tensor, k: int):
    want = _torch_backward(x, grad_out, k)

    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return (f"the gradient has the shape of x, {tuple(x.shape)}; positions that are in no window "
                    "(a cropped last row/column) get zero.")
        spread = F.interpolate(F.avg_pool2d(torch.zeros_like(x), k) + grad_out / (k * k), scale_factor=k)
        if got[..., :spread.shape[-2], :spread.shape[-1]].allclose(spread, atol=1e-6):
            return "you spread each gradient evenly over its window: that is average pooling's backward pass."
        if (got != 0).sum() > (want != 0).sum():
            return ("more inputs than windows received a gradient. Each window sends its whole gradient to one "
                    "input: the first maximum in row-major order when several values tie (like PyTorch).")
        return ("for every window, find the position of its maximum (argmax over the flattened k·k values) and "
                "put that window's grad_out there; every other input gets 0.")
    return hint


def _check_backward(fn, cases, seed: int) -> None:
    for i, (shape, k, tie) in enumerate(cases):
        x = _randn(shape, seed + i)                           # (B, C, H, W)
        if tie:
            x = x.round()                                     # integers in about [-3, 3]: many exact ties
        out_shape = F.max_pool2d(x, k).shape
        grad_out = _randn(out_shape, seed + 100 + i)          # (B, C, H_out, W_out)
        expect_call(fn, x, grad_out, k, expected=_torch_backward(x, grad_out, k), hint=_backward_hint(x, grad_out, k))


@q3.test("sizes divisible by the kernel", points=1)
def _(max_pool2d_backward):
    _check_backward(max_pool2d_backward, [((1, 1, 4, 4), 2, False), ((2, 3, 6, 6), 3, False)], seed=70)


@q3.test("sizes that are not multiples of the kernel", points=1)
def _(max_pool2d_backward):
    _check_backward(max_pool2d_backward, [((1, 2, 5, 7), 2, False), ((2, 1, 10, 9), 4, False)], seed=80)


@q3.test("ties: the whole gradient goes to the first maximum", points=1)
def _(max_pool2d_backward):
    _check_backward(max_pool2d_backward, [((2, 2, 6, 6), 2, True), ((1, 3, 8, 6), 2, True)], seed=90)
    x = torch.zeros(1, 1, 2, 2)                               # one window, four tied zeros
    got = call(max_pool2d_backward, x, torch.ones(1, 1, 1, 1), 2)
    if not isinstance(got, torch.Tensor) or got.shape != x.shape or got.flatten().tolist() != [1.0, 0.0, 0.0, 0.0]:
        shown = got.flatten().tolist() if isinstance(got, torch.Tensor) else got
        raise CheckFailed(f"for a 2×2 window of four equal zeros and grad_out = 1 you returned {shown}; PyTorch "
                          "gives [1, 0, 0, 0]: the first maximum in row-major order gets the whole gradient.")


# ------------------------------------------------------------------ q4: global average pooling and head sizes

q4 = EXERCISE.question("q4", "global_avg_pool2d", "head_params",
                       title="Global average pooling and the size of the classifier head")


@q4.test("global_avg_pool2d matches adaptive average pooling", points=1)
def _(global_avg_pool2d, head_params):
    for i, shape in enumerate([(2, 3, 5, 5), (1, 8, 7, 3), (4, 2, 1, 9)]):
        x = _randn(shape, 110 + i)                            # (B, C, H, W)
        expect_call(global_avg_pool2d, x, expected=F.adaptive_avg_pool2d(x, 1).flatten(1),
                    hint="average over H and W only (dims 2 and 3), and return (B, C): no trailing 1×1 axes.")


@q4.test("head_params without global pooling (flatten + linear)", points=1)
def _(global_avg_pool2d, head_params):
    for c, h, w, k in [(16, 5, 5, 10), (32, 7, 7, 10), (8, 3, 4, 5)]:
        want = sum(p.numel() for p in nn.Linear(c * h * w, k, device="meta").parameters())
        expect_call(head_params, c, h, w, k, global_pool=False, expected=want,
                    hint="flattening gives c·h·w inputs; a linear layer has one weight per (input, class) pair "
                         "plus one bias per class.")


@q4.test("head_params with global pooling", points=1)
def _(global_avg_pool2d, head_params):
    for c, h, w, k in [(16, 5, 5, 10), (32, 7, 7, 10), (64, 1, 1, 3), (8, 3, 4, 5)]:
        want = sum(p.numel() for p in nn.Linear(c, k, device="meta").parameters())
        expect_call(head_params, c, h, w, k, global_pool=True, expected=want,
                    hint="after global pooling each channel is one number, whatever h and w are.")
