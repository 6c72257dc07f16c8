"""Grader tests for ``exercises/source/06_batch_norm.ipynb`` (chapter 6: batch normalization).

Expected values come from PyTorch (``F.batch_norm``, ``nn.BatchNorm2d``'s running statistics, autograd through
``F.batch_norm``, ``torch.nn.utils.fusion.fuse_conv_bn_weights``). Each question checks a few fixed teaching
cases and cases drawn at random for every grading run (``rng``), in float32 and float64, and on the ``meta``
device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from cnnkit.grading import CheckFailed, Exercise, expect_call, expect_device, randint, rng

EXERCISE = Exercise("06_batch_norm", title="Batch normalization")

NO_LIBRARY_BN = {
    "torch.nn.functional.batch_norm": "compute the mean and variance yourself",
    "torch.nn.BatchNorm1d": "", "torch.nn.BatchNorm2d": "", "torch.nn.BatchNorm3d": "",
    "torch.nn.functional.instance_norm": "", "torch.nn.functional.layer_norm": "",
    "cnnkit.ops": "write it yourself rather than calling the chapter's version",
}


def _randn(g: torch.Generator, *shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------ q1: batch norm for any number of axes

q1 = EXERCISE.question("q1", "batch_norm_nd", title="Batch norm for any number of spatial axes",
                       forbid=NO_LIBRARY_BN)


def _bn_ref(x, gamma, beta, eps=1e-5):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def _q1_hint(x, gamma, beta, eps):
    dims = [0] + list(range(2, x.dim()))

    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            return None
        unbiased = gamma.view(1, -1, *[1] * (x.dim() - 2)) * (x - x.mean(dims, keepdim=True)) / torch.sqrt(
            x.var(dims, keepdim=True, unbiased=True) + eps) + beta.view(1, -1, *[1] * (x.dim() - 2))
        if torch.allclose(got.double(), unbiased.double(), atol=1e-6):
            return ("you normalised with the unbiased variance (divide by N - 1); batch norm normalises with the "
                    "biased one: var(..., unbiased=False).")
        whole = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps)
        if torch.allclose(got.double(), (whole * gamma.view(1, -1, *[1] * (x.dim() - 2)) +
                                         beta.view(1, -1, *[1] * (x.dim() - 2))).double(), atol=1e-6):
            return ("you took one mean over the whole tensor; batch norm takes one per channel (axis 1), over "
                    "the batch axis and every spatial axis.")
        return None
    return hint


def _check_q1(batch_norm_nd, shapes, g, dtype=torch.float64, eps=1e-5):
    for shape in shapes:
        x = _randn(g, *shape, dtype=dtype) * 3 + 1
        c = shape[1]
        gamma, beta = _randn(g, c, dtype=dtype).abs() + 0.5, _randn(g, c, dtype=dtype)
        expect_call(batch_norm_nd, x, gamma, beta, eps, expected=_bn_ref(x, gamma, beta, eps),
                    hint=_q1_hint(x, gamma, beta, eps))


@q1.test("(N, C, H, W), as in the chapter", points=1)
def _(batch_norm_nd):
    g = torch.Generator().manual_seed(0)
    _check_q1(batch_norm_nd, [(8, 3, 5, 5), (2, 4, 3, 6)], g, torch.float32)


@q1.test("(N, C) and (N, C, L): fewer axes", points=1)
def _(batch_norm_nd):
    g = rng()
    n, c, length = randint(g, 2, 9), randint(g, 1, 6), randint(g, 1, 7)
    # float64: with a batch of 2 the normalisation magnifies float32 rounding past the tolerance
    _check_q1(batch_norm_nd, [(n, c), (n, c, length), (5, 3)], g, torch.float64)


@q1.test("(N, C, D, H, W), random sizes, float64, other eps", points=1)
def _(batch_norm_nd):
    g = rng()
    shape = (randint(g, 1, 4), randint(g, 1, 5), randint(g, 1, 4), randint(g, 2, 5), randint(g, 1, 6))
    _check_q1(batch_norm_nd, [shape, (randint(g, 2, 6), 3, randint(g, 1, 9), randint(g, 1, 9))], g,
              torch.float64, eps=1e-3)


@q1.test("works on the input's device", points=1)
def _(batch_norm_nd):
    g = rng()
    x = _randn(g, 4, 3, 5, 7)
    expect_device(batch_norm_nd, x, torch.ones(3, dtype=x.dtype), torch.zeros(3, dtype=x.dtype), 1e-5)


# ------------------------------------------------------------------ q2: the running statistics

q2 = EXERCISE.question("q2", "update_running", title="Updating the running statistics", forbid=NO_LIBRARY_BN)


def _running_ref(mean, var, x, momentum):
    bn = nn.BatchNorm2d(x.shape[1], momentum=momentum).to(x.dtype)
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn(x)
    return bn.running_mean.detach().clone(), bn.running_var.detach().clone()


def _q2_hint(mean, var, x, momentum):
    n = x.numel() // x.shape[1]

    def hint(got):
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            return "return a tuple (new_mean, new_var) of two tensors of shape (C,)."
        _, want_var = _running_ref(mean, var, x, momentum)
        biased = (1 - momentum) * var + momentum * x.var((0, 2, 3), unbiased=False)
        if got[1].shape == want_var.shape and torch.allclose(got[1].double(), biased.double(), atol=1e-6) \
                and n > 1:
            return "PyTorch moves the running variance towards the *unbiased* batch variance (divide by N - 1)."
        swapped = momentum * mean + (1 - momentum) * x.mean((0, 2, 3))
        if got[0].shape == swapped.shape and torch.allclose(got[0].double(), swapped.double(), atol=1e-6) \
                and momentum != 0.5:
            return ("momentum is the weight of the *new* batch statistic: new = (1 - momentum) * running + "
                    "momentum * batch.")
        return None
    return hint


def _check_q2(update_running, cases, g, dtype):
    for shape, momentum in cases:
        c = shape[1]
        x = _randn(g, *shape, dtype=dtype) * 2 + 0.5
        mean, var = _randn(g, c, dtype=dtype), _randn(g, c, dtype=dtype).abs() + 0.5
        expect_call(update_running, mean, var, x, momentum, expected=_running_ref(mean, var, x, momentum),
                    hint=_q2_hint(mean, var, x, momentum))


@q2.test("momentum 0.1, one step", points=1)
def _(update_running):
    _check_q2(update_running, [((4, 3, 5, 5), 0.1), ((2, 2, 3, 4), 0.1)], torch.Generator().manual_seed(1),
              torch.float32)


@q2.test("random sizes and momenta, tiny batches, float64", points=1)
def _(update_running):
    g = rng()
    cases = [((randint(g, 1, 6), randint(g, 1, 5), randint(g, 1, 6), randint(g, 2, 6)), 0.3),
             ((1, 2, 1, 2), 0.25), ((2, 1, 1, 1), 1.0),
             ((randint(g, 2, 5), 3, randint(g, 1, 4), randint(g, 1, 4)), randint(g, 1, 9) / 10)]
    _check_q2(update_running, cases, g, torch.float64)


@q2.test("works on the input's device", points=1)
def _(update_running):
    g = rng()
    x = _randn(g, 4, 3, 5, 5)
    expect_device(update_running, torch.zeros(3, dtype=x.dtype), torch.ones(3, dtype=x.dtype), x, 0.1)


# ------------------------------------------------------------------ q3: the backward pass on (N, C) inputs

q3 = EXERCISE.question("q3", "batch_norm_backward_1d", title="The backward pass for (N, C) features",
                       forbid={**NO_LIBRARY_BN, "autograd": "use the formula you derived"})


def _grads_ref(x, gamma, grad_y, eps):
    xr, gr = x.detach().clone().requires_grad_(), gamma.detach().clone().requires_grad_()
    br = torch.zeros_like(gamma, requires_grad=True)
    F.batch_norm(xr, None, None, gr, br, training=True, eps=eps).backward(grad_y)
    return xr.grad, gr.grad, br.grad


def _q3_hint(x, gamma, grad_y, eps):
    def hint(got):
        if not (isinstance(got, tuple) and len(got) == 3 and all(isinstance(t, torch.Tensor) for t in got)):
            return "return a tuple (grad_x, grad_gamma, grad_beta)."
        std = torch.sqrt(x.var(0, unbiased=False) + eps)
        const = gamma * grad_y / std
        if got[0].shape == const.shape and torch.allclose(got[0].double(), const.double(), atol=1e-6):
            return ("that gradient treats the batch mean and variance as constants; they depend on every x of "
                    "the channel, which adds the terms - mean(g) - x_hat * mean(g * x_hat).")
        return None
    return hint


def _check_q3(fn, shapes, g, dtype, eps=1e-5):
    for n, c in shapes:
        x = _randn(g, n, c, dtype=dtype) * 2 - 1
        gamma = _randn(g, c, dtype=dtype).abs() + 0.5
        grad_y = _randn(g, n, c, dtype=dtype)
        expect_call(fn, x, gamma, grad_y, eps, expected=_grads_ref(x, gamma, grad_y, eps),
                    hint=_q3_hint(x, gamma, grad_y, eps))


@q3.test("fixed small batches", points=1)
def _(batch_norm_backward_1d):
    _check_q3(batch_norm_backward_1d, [(4, 3), (6, 1)], torch.Generator().manual_seed(2), torch.float32)


@q3.test("random sizes, float64, other eps", points=1)
def _(batch_norm_backward_1d):
    g = rng()
    _check_q3(batch_norm_backward_1d, [(randint(g, 2, 12), randint(g, 1, 7)), (2, randint(g, 1, 4))], g,
              torch.float64, eps=randint(g, 1, 9) * 1e-4)


@q3.test("works on the input's device", points=1)
def _(batch_norm_backward_1d):
    g = rng()
    x = _randn(g, 5, 3)
    expect_device(batch_norm_backward_1d, x, torch.ones(3, dtype=x.dtype), torch.ones_like(x), 1e-5)


# ------------------------------------------------------------------ q4: folding BN into the convolution

q4 = EXERCISE.question("q4", "fold_bn", title="Folding a trained BN layer into its convolution",
                       forbid={"torch.nn.utils.fusion": "derive the folded weights yourself",
                               **NO_LIBRARY_BN})


def _fold_ref(w, b, gamma, beta, mean, var, eps):
    b0 = b if b is not None else torch.zeros_like(mean)
    fw, fb = fuse_conv_bn_weights(w, b0, mean, var, eps, gamma, beta)
    return fw.detach(), fb.detach()


def _q4_hint(w, b, gamma, beta, mean, var, eps):
    def hint(got):
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            return "return a tuple (new_weight, new_bias): new_bias is a tensor of shape (C_out,) even if bias is None."
        scale = gamma / torch.sqrt(var + eps)
        if got[0].shape == w.shape and torch.allclose(got[0].double(), (w * (gamma / var).view(-1, 1, 1, 1))
                                                      .double(), atol=1e-6):
            return "divide by the standard deviation sqrt(var + eps), not by the variance."
        if got[0].shape == w.shape and not torch.allclose(got[0].double(), (w * scale.view(-1, 1, 1, 1))
                                                          .double(), atol=1e-6) and w.shape[0] == w.shape[1]:
            return "scale each *output* channel (axis 0 of the weight) by its own gamma / std."
        return None
    return hint


def _check_q4(fold_bn, cases, g, dtype):
    for (c_out, c_in, k), with_bias in cases:
        w = _randn(g, c_out, c_in, k, k, dtype=dtype)
        b = _randn(g, c_out, dtype=dtype) if with_bias else None
        gamma, beta = _randn(g, c_out, dtype=dtype).abs() + 0.5, _randn(g, c_out, dtype=dtype)
        mean, var = _randn(g, c_out, dtype=dtype), _randn(g, c_out, dtype=dtype).abs() + 0.1
        eps = 1e-5
        got = expect_call(fold_bn, w, b, gamma, beta, mean, var, eps,
                          expected=_fold_ref(w, b, gamma, beta, mean, var, eps),
                          hint=_q4_hint(w, b, gamma, beta, mean, var, eps))
        x = _randn(g, 2, c_in, k + 3, k + 2, dtype=dtype)
        bn = F.batch_norm(F.conv2d(x, w, b), mean, var, gamma, beta, training=False, eps=eps)
        if not torch.allclose(F.conv2d(x, got[0], got[1]), bn, atol=1e-4, rtol=1e-4):
            raise CheckFailed("the folded convolution does not reproduce conv followed by BN in eval mode.")


@q4.test("a conv with bias, fixed sizes", points=1)
def _(fold_bn):
    _check_q4(fold_bn, [((3, 2, 3), True), ((4, 4, 1), True)], torch.Generator().manual_seed(3), torch.float32)


@q4.test("a conv without bias (bias=None), as before most BN layers", points=1)
def _(fold_bn):
    _check_q4(fold_bn, [((5, 3, 3), False), ((2, 2, 3), False)], torch.Generator().manual_seed(4), torch.float32)


@q4.test("random shapes, float64", points=1)
def _(fold_bn):
    g = rng()
    _check_q4(fold_bn, [((randint(g, 1, 6), randint(g, 1, 5), randint(g, 1, 5)), bool(randint(g, 0, 1))),
                        ((randint(g, 2, 4), randint(g, 2, 4), 3), True)], g, torch.float64)


@q4.test("works on the input's device", points=1)
def _(fold_bn):
    g = rng()
    w = _randn(g, 3, 2, 3, 3)
    ones = torch.ones(3, dtype=w.dtype)
    expect_device(fold_bn, w, None, ones, 0 * ones, 0 * ones, ones, 1e-5)
