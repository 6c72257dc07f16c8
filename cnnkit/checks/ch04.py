"""Grader tests for ``exercises/source/04_activations.ipynb`` (chapter 4: activations, softmax, collapse).

Every expected value comes from PyTorch (``F.leaky_relu``, ``F.gelu``, autograd, ``F.log_softmax``,
``F.cross_entropy``, layer-by-layer matrix products) on inputs made with a seeded generator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.grading import CheckFailed, Exercise, call, describe, expect_call, expect_tensor

EXERCISE = Exercise("04_activations", title="Activations and a first full CNN")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inputs(seed: int, dtype=torch.float32) -> torch.Tensor:
    """A (3, 40) tensor of points in [-6, 6] that includes exact zeros."""
    x = torch.rand(3, 40, generator=_gen(seed), dtype=dtype) * 12 - 6
    x[0, :3] = 0.0
    return x


def _autograd_slope(fn, x: torch.Tensor) -> torch.Tensor:
    xt = x.clone().requires_grad_(True)
    fn(xt).sum().backward()
    return xt.grad


# ------------------------------------------------------------------ q1: leaky ReLU and its slope

q1 = EXERCISE.question("q1", "leaky_relu", "leaky_relu_grad", title="Leaky ReLU and its derivative")


@q1.test("values match F.leaky_relu", points=1)
def _(leaky_relu, leaky_relu_grad):
    for seed, slope in [(0, 0.01), (1, 0.2), (2, 0.5)]:
        x = _inputs(seed)
        expect_call(leaky_relu, x, slope, expected=F.leaky_relu(x, slope),
                    hint="x where x > 0, slope * x elsewhere.")


@q1.test("derivative matches autograd (including x = 0)", points=1)
def _(leaky_relu, leaky_relu_grad):
    for seed, slope in [(3, 0.01), (4, 0.3)]:
        x = _inputs(seed)
        expect_call(leaky_relu_grad, x, slope, expected=_autograd_slope(lambda t: F.leaky_relu(t, slope), x),
                    hint="the slope is 1 where x > 0 and `slope` where x <= 0 (PyTorch uses `slope` at exactly 0).")


@q1.test("float64 in, float64 out", points=1)
def _(leaky_relu, leaky_relu_grad):
    x = _inputs(5, torch.float64)
    expect_call(leaky_relu, x, 0.1, expected=F.leaky_relu(x, 0.1))
    expect_call(leaky_relu_grad, x, 0.1, expected=_autograd_slope(lambda t: F.leaky_relu(t, 0.1), x),
                hint="torch.where(cond, 1.0, slope) with Python numbers makes a float32 tensor; build the "
                     "result from x (torch.ones_like(x), torch.full_like(x, slope)).")


# ------------------------------------------------------------------ q2: GELU and its derivative

q2 = EXERCISE.question("q2", "gelu", "gelu_grad", title="GELU and its derivative")


@q2.test("values match F.gelu (exact, erf form)", points=1)
def _(gelu, gelu_grad):
    for seed in (10, 11):
        x = _inputs(seed)
        expect_call(gelu, x, expected=F.gelu(x),
                    hint="use the exact form x * Phi(x) with Phi(x) = (1 + erf(x / sqrt(2))) / 2, "
                         "not the tanh approximation.")


@q2.test("derivative matches autograd", points=2)
def _(gelu, gelu_grad):
    for seed, dtype in [(12, torch.float32), (13, torch.float64)]:
        x = _inputs(seed, dtype)
        expect_call(gelu_grad, x, expected=_autograd_slope(F.gelu, x),
                    hint="product rule: d/dx [x * Phi(x)] = Phi(x) + x * phi(x), with the normal density "
                         "phi(x) = exp(-x**2 / 2) / sqrt(2 * pi).")


# ------------------------------------------------------------------ q3: stable log-softmax and cross-entropy

q3 = EXERCISE.question("q3", "log_softmax", "cross_entropy", title="Stable log-softmax and cross-entropy")


def _logits(seed: int, scale: float, n: int = 8, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return torch.randn(n, k, generator=g) * scale, torch.randint(0, k, (n,), generator=g)


@q3.test("log_softmax on ordinary logits", points=1)
def _(log_softmax, cross_entropy):
    for seed in (20, 21):
        z, _ = _logits(seed, 2.0)
        expect_call(log_softmax, z, expected=F.log_softmax(z, dim=1), hint="normalise each row (dim=1).")


@q3.test("log_softmax on huge logits (no overflow)", points=1)
def _(log_softmax, cross_entropy):
    z, _ = _logits(22, 1.0)
    z[0] += 1000.0                    # one row far up ...
    z[1] -= 1000.0                    # ... one far down
    z[2] *= 500.0                     # and one with huge gaps
    expect_call(log_softmax, z, expected=F.log_softmax(z, dim=1), atol=1e-4,
                hint="subtract each row's own maximum (keepdim=True) before exp, and never take the log of a "
                     "softmax: log p = z - max - log(sum(exp(z - max))).")


@q3.test("cross_entropy matches F.cross_entropy", points=1)
def _(log_softmax, cross_entropy):
    for seed, scale in [(23, 1.0), (24, 100.0), (25, 1e4)]:
        z, y = _logits(seed, scale, n=16, k=10)
        want = F.cross_entropy(z, y)
        got = call(cross_entropy, z, y)
        expect_tensor(got, want, where=f"cross_entropy(logits scaled by {scale:g})", atol=1e-4,
                      rtol=1e-5)


@q3.test("cross_entropy returns a differentiable scalar", points=1)
def _(log_softmax, cross_entropy):
    z, y = _logits(26, 1.0)
    zt = z.clone().requires_grad_(True)
    loss = cross_entropy(zt, y)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise CheckFailed("cross_entropy should return a 0-dimensional tensor (the mean over the batch), got "
                          f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}.")
    if not loss.requires_grad:
        raise CheckFailed("the loss is detached from the logits (no gradient flows back): compute it with torch "
                          "operations only, without .item(), .numpy() or .detach().")
    loss.backward()
    want = torch.softmax(z, 1)
    want[torch.arange(len(y)), y] -= 1
    expect_tensor(zt.grad, want / len(y), where="the gradient of your loss", atol=1e-5)


# ------------------------------------------------------------------ q4: collapse a linear stack

q4 = EXERCISE.question("q4", "collapse_linear", title="A linear stack is one linear layer")


def _check_collapse(collapse_linear, seed: int, widths: list[int]) -> None:
    g = _gen(seed)
    weights = [torch.randn(b, a, generator=g, dtype=torch.float64) / a ** 0.5   # (out, in), like nn.Linear
               for a, b in zip(widths[:-1], widths[1:])]
    biases = [torch.randn(b, generator=g, dtype=torch.float64) for b in widths[1:]]
    result = call(collapse_linear, weights, biases)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(f"collapse_linear should return a tuple (W, b); got {describe(result)}.")
    W, b = result
    ref_W = torch.eye(widths[0], dtype=torch.float64)
    ref_b = torch.zeros(widths[0], dtype=torch.float64)
    for w_i, b_i in zip(weights, biases):        # apply the layers one after the other
        ref_W, ref_b = w_i @ ref_W, w_i @ ref_b + b_i
    where = f"collapse_linear on layers {' -> '.join(map(str, widths))}"
    expect_tensor(W, ref_W, where=where + ", W", atol=1e-10)
    expect_tensor(b, ref_b, where=where + ", b", atol=1e-10)
    x = torch.randn(5, widths[0], generator=g, dtype=torch.float64)   # (B, in)
    h = x
    for w_i, b_i in zip(weights, biases):
        h = h @ w_i.T + b_i
    expect_tensor(x @ W.T + b, h, where=where + ": x @ W.T + b against the stack", atol=1e-10)


@q4.test("two layers", points=1)
def _(collapse_linear):
    _check_collapse(collapse_linear, 30, [6, 4, 3])


@q4.test("three layers, non-square", points=1)
def _(collapse_linear):
    _check_collapse(collapse_linear, 31, [7, 9, 5, 2])


@q4.test("one layer and five layers", points=1)
def _(collapse_linear):
    _check_collapse(collapse_linear, 32, [4, 6])
    _check_collapse(collapse_linear, 33, [3, 5, 5, 4, 6, 2])
