"""Grader tests for ``exercises/source/04_activations.ipynb`` (chapter 4: activations, dead units, softmax).

Expected values come from PyTorch (``F.silu`` and autograd through it, ``F.log_softmax``, ``F.cross_entropy``)
or from short reference computations here (the dead-unit masks, the layer-by-layer product), computed outside
the learner's code. Every question mixes fixed teaching cases with cases drawn fresh each grading run (``rng``),
float64 among them, and ends with the ``meta``-device check.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.grading import (CheckFailed, Exercise, LearnerError, call, describe, expect_call, expect_device,
                            expect_tensor, randint, rng)

EXERCISE = Exercise("04_activations", title="Activations and a first full CNN")


def _randn(g: torch.Generator, *shape: int, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def _close(got, want: torch.Tensor, atol: float = 1e-6) -> bool:
    return (isinstance(got, torch.Tensor) and got.shape == want.shape and got.device == want.device
            and torch.allclose(got.detach().double(), want.double(), atol=atol, rtol=1e-5))


# ------------------------------------------------------------------ q1: SiLU and a derivative you derive

q1 = EXERCISE.question("q1", "silu", "silu_grad", title="SiLU and its derivative, derived by hand",
                       forbid={"torch.nn.functional.silu": "write x * sigmoid(x) yourself",
                               "torch.nn.SiLU": "",
                               "autograd": "derive the slope on paper (product rule, then the sigmoid's "
                                           "slope) and compute it with tensor operations"})


def _silu_slope(x: torch.Tensor) -> torch.Tensor:
    xt = x.detach().clone().requires_grad_(True)
    F.silu(xt).sum().backward()
    return xt.grad


def _slope_hint(x: torch.Tensor):
    s = torch.sigmoid(x)
    candidates = [
        (s, "sigmoid(x), only the first term of the product rule: d/dx [x * s(x)] = s(x) + x * s'(x)."),
        (s * (1 - s), "the sigmoid's own slope s(x) * (1 - s(x)); silu(x) = x * s(x) needs the product "
                      "rule."),
        (s + x * s, "s(x) + x * s(x): the second term needs the sigmoid's slope s'(x) = s(x) * (1 - s(x)), "
                    "not s(x)."),
        (s + s * (1 - s), "s(x) + s'(x): the product rule gives s(x) + x * s'(x), so the factor x is "
                          "missing."),
    ]

    def hint(got):
        if isinstance(got, torch.Tensor) and got.shape == x.shape and torch.isnan(got).any():
            return ("NaN for large |x|: a formula like exp(-x) / (1 + exp(-x))**2 gives inf / inf. Build it "
                    "from s = torch.sigmoid(x), which stays finite, as s * (1 + x * (1 - s)).")
        for value, text in candidates:
            if _close(got, value, atol=1e-6):
                return "your values equal " + text
        return None
    return hint


def _check_silu(silu, silu_grad, x: torch.Tensor, atol: float) -> None:
    expect_call(silu, x, expected=F.silu(x), atol=atol, rtol=1e-6,
                hint=lambda got: ("NaN: exp overflowed; x * torch.sigmoid(x) stays finite."
                                  if isinstance(got, torch.Tensor) and torch.isnan(got).any() else None))
    expect_call(silu_grad, x, expected=_silu_slope(x), atol=atol, rtol=1e-6, hint=_slope_hint(x))


@q1.test("silu: teaching points and random shapes", points=1)
def _(silu, silu_grad):
    g = rng()
    cases = [torch.linspace(-6, 6, 25), _randn(g, randint(g, 1, 4), randint(g, 2, 7), scale=3.0),
             _randn(g, randint(g, 2, 9), dtype=torch.float64, scale=4.0)]
    for x in cases:
        expect_call(silu, x, expected=F.silu(x), atol=1e-6, rtol=1e-6)


@q1.test("silu_grad: teaching points, exact (finite differences are not enough)", points=1)
def _(silu, silu_grad):
    x = torch.linspace(-6, 6, 25, dtype=torch.float64)       # includes x = 0
    expect_call(silu_grad, x, expected=_silu_slope(x), atol=1e-10, rtol=1e-10, hint=_slope_hint(x))


@q1.test("silu_grad: random shapes, float32 and float64", points=1)
def _(silu, silu_grad):
    g = rng()
    for dtype, atol in [(torch.float32, 1e-6), (torch.float64, 1e-10)]:
        x = _randn(g, randint(g, 1, 3), randint(g, 1, 6), randint(g, 2, 5), dtype=dtype, scale=3.0)
        _check_silu(silu, silu_grad, x, atol)


@q1.test("far from zero: |x| up to 1000 stays finite", points=1)
def _(silu, silu_grad):
    g = rng()
    big = float(randint(g, 90, 1000))
    x = torch.tensor([-big, -100.0, -30.0, 0.0, 30.0, 100.0, big])
    _check_silu(silu, silu_grad, x, 1e-5)


@q1.test("device: results are made on the input's device", points=1)
def _(silu, silu_grad):
    x = _randn(rng(), 3, 4)
    expect_device(silu, x)
    expect_device(silu_grad, x)


# ------------------------------------------------------------------ q2: count dead units

q2 = EXERCISE.question("q2", "dead_units", title="Which units are dead on this batch?",
                       forbid={"torch.nn.functional.linear": "write each layer as h @ W.T + b",
                               "torch.nn.Linear": ""})


def _dead_reference(weights, biases, x, strict: bool = False, relu: bool = True,
                    any_input: bool = False) -> list[torch.Tensor]:
    """The dead masks (and, with the flags, what common mistakes compute instead)."""
    h, masks = x, []
    for w, b in zip(weights[:-1], biases[:-1]):
        pre = h @ w.T + b                                      # (N, units)
        off = pre < 0 if strict else pre <= 0
        masks.append(off.any(0) if any_input else off.all(0))
        h = pre.clamp_min(0) if relu else pre
    return masks


def _dead_hint(weights, biases, x):
    wrong = [
        (dict(strict=True), "a unit whose pre-activation is exactly 0 on every input also outputs 0 and gets "
                            "no gradient: it is dead too (use <= 0)."),
        (dict(relu=False), "the next layer reads the ReLU outputs, not the pre-activations: apply ReLU "
                           "before multiplying by the next weight matrix."),
        (dict(any_input=True), "a unit is dead only if it is off for *every* input in the batch "
                               "(.all over the batch dimension), not for some input."),
    ]

    def hint(got):
        if not isinstance(got, (list, tuple)):
            return None
        if len(got) == len(weights):
            return ("the last layer gives the logits and has no ReLU: return one mask per *hidden* layer "
                    f"({len(weights) - 1} here).")
        for flags, text in wrong:
            masks = _dead_reference(weights, biases, x, **flags)
            if len(got) == len(masks) and all(isinstance(m, torch.Tensor) and m.shape == r.shape
                                              and torch.equal(m.bool(), r) for m, r in zip(got, masks)):
                return text
        return None
    return hint


def _check_dead(dead_units, weights, biases, x) -> None:
    expect_call(dead_units, weights, biases, x, expected=_dead_reference(weights, biases, x),
                hint=_dead_hint(weights, biases, x))


def _teaching_net():
    x = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]])              # (N=2, 3)
    w1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0], [0.0, 1.0, -1.0]])
    b1 = torch.zeros(4)
    w2 = torch.tensor([[0.0, 5.0, 5.0, 0.0], [1.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, 1.0]])
    b2 = torch.tensor([-0.5, 0.0, 0.0])
    w3 = torch.arange(30.0).reshape(10, 3) / 10 - 1.0
    b3 = torch.zeros(10)
    return [w1, w2, w3], [b1, b2, b3], x


def _random_net(g, widths, n, dtype, shift=0.6):
    weights = [_randn(g, b, a, dtype=dtype) / a ** 0.5 for a, b in zip(widths[:-1], widths[1:])]
    biases = [_randn(g, b, dtype=dtype) * 0.3 - shift for b in widths[1:]]   # pushed negative: some die
    x = _randn(g, n, widths[0], dtype=dtype)
    return weights, biases, x


@q2.test("teaching net: zero and negative pre-activations, a unit that fires once", points=1)
def _(dead_units):
    weights, biases, x = _teaching_net()
    _check_dead(dead_units, weights, biases, x)


@q2.test("random nets: 2 to 4 layers, batches of 1 to 40, float32 and float64", points=1)
def _(dead_units):
    g = rng()
    for dtype in (torch.float32, torch.float64, torch.float64):
        widths = [randint(g, 2, 12) for _ in range(randint(g, 3, 5))]
        _check_dead(dead_units, *_random_net(g, widths, randint(g, 1, 40), dtype))


@q2.test("edge cases: a whole layer dead, one example, one hidden layer", points=1)
def _(dead_units):
    g = rng()
    weights, biases, x = _random_net(g, [5, 6, 4, 3], randint(g, 3, 9), torch.float64)
    biases[0] = biases[0] - 100.0          # every unit of layer 1 dies, so layer 2 sees only zeros
    _check_dead(dead_units, weights, biases, x)
    _check_dead(dead_units, *_random_net(g, [4, 7, 5, 2], 1, torch.float32, shift=0.0))
    _check_dead(dead_units, *_random_net(g, [6, 8, 3], randint(g, 2, 6), torch.float64))


@q2.test("device: the masks are made on the input's device", points=1)
def _(dead_units):
    expect_device(dead_units, *_random_net(rng(), [4, 5, 3, 2], 6, torch.float32))


# ------------------------------------------------------------------ q3: stable log-softmax and cross-entropy

q3 = EXERCISE.question(
    "q3", "log_softmax", "cross_entropy", title="Stable log-softmax and cross-entropy",
    forbid={"torch.logsumexp": "subtract each row's maximum, then use torch.exp, .sum and torch.log",
            "torch.nn.functional.log_softmax": "", "torch.log_softmax": "",
            "torch.nn.functional.softmax": "", "torch.softmax": "",
            "torch.nn.functional.cross_entropy": "", "torch.nn.functional.nll_loss": "pick each row's target "
            "entry by indexing", "torch.nn.CrossEntropyLoss": "", "torch.nn.NLLLoss": "",
            "torch.nn.LogSoftmax": "", "torch.nn.Softmax": "", "torch.special": ""})


def _logits(g, n: int, k: int, scale: float, dtype=torch.float32, lacking_last: bool = False):
    z = _randn(g, n, k, dtype=dtype, scale=scale)
    high = k - 1 if lacking_last else k
    y = torch.randint(0, high, (n,), generator=g)
    return z, y


def _nan_hint(got):
    if isinstance(got, torch.Tensor) and got.is_floating_point() and not torch.isfinite(got).all():
        return ("subtract each row's own maximum (keepdim=True) before exp, and never take the log of a "
                "softmax: log p = z - max - log(sum(exp(z - max))).")
    return None


@q3.test("log_softmax: teaching logits", points=1)
def _(log_softmax, cross_entropy):
    z = torch.tensor([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0], [-1.0, 3.0, 0.5]])
    expect_call(log_softmax, z, expected=F.log_softmax(z, dim=1),
                hint=lambda got: ("normalise each row (dim=1), not each column."
                                  if _close(got, F.log_softmax(z, dim=0)) else None))


@q3.test("log_softmax: huge logits (rows far up, far down, huge gaps), float64", points=1)
def _(log_softmax, cross_entropy):
    g = rng()
    for dtype in (torch.float32, torch.float64):
        z, _ = _logits(g, randint(g, 4, 9), randint(g, 2, 12), 1.0, dtype)
        z[0] += float(randint(g, 500, 5000))          # one row far up ...
        z[1] -= float(randint(g, 500, 5000))          # ... one far down
        z[2] *= float(randint(g, 200, 2000))          # and one with huge gaps
        expect_call(log_softmax, z, expected=F.log_softmax(z, dim=1), atol=1e-4, hint=_nan_hint)


def _check_ce(cross_entropy, z, y, where: str) -> None:
    try:
        got = call(cross_entropy, z, y)
    except LearnerError as exc:
        hint = ""
        lacks_last = len(y) > 0 and int(y.max()) < z.shape[1] - 1
        if lacks_last and ("one_hot" in str(exc) or "size of tensor" in str(exc) or "must match" in str(exc)):
            hint = (" Hint: this batch never contains the last class, so F.one_hot(targets) has too few "
                    "columns; pass num_classes=logits.shape[1], or pick the target entries by indexing.")
        msg = exc.error.message.rstrip(".")
        raise CheckFailed(f"{where}: `{exc.call}` raised {exc.error.type_name}: {msg}.{hint}") from None
    want = F.cross_entropy(z, y)
    if isinstance(got, torch.Tensor) and got.dim() != 0:
        raise CheckFailed(f"{where}: cross_entropy returned shape {tuple(got.shape)}; return the mean over the "
                          "batch, a 0-dimensional tensor.")
    if (isinstance(got, torch.Tensor) and got.shape == () and len(y) > 1
            and _close(got, want * len(y), atol=1e-4) and not _close(got, want, atol=1e-4)):
        raise CheckFailed(f"{where}: your loss is the *sum* over the batch; return the mean.")
    expect_tensor(got, want, where=where, atol=1e-4, rtol=1e-5)


@q3.test("cross_entropy: a batch that lacks the last class", points=1)
def _(log_softmax, cross_entropy):
    g = rng()
    z, y = _logits(g, 6, 5, 2.0, lacking_last=True)
    _check_ce(cross_entropy, z, y, "cross_entropy on 6 examples whose targets never include class 4")


@q3.test("cross_entropy: random batches, logits up to 1e4, float64, differentiable", points=1)
def _(log_softmax, cross_entropy):
    g = rng()
    for scale, dtype in [(1.0, torch.float32), (100.0, torch.float64), (1e4, torch.float32)]:
        z, y = _logits(g, randint(g, 1, 20), randint(g, 2, 10), scale, dtype)
        _check_ce(cross_entropy, z, y, f"cross_entropy({describe(z)} scaled by {scale:g}, targets)")
    z, y = _logits(g, 8, 5, 1.0)
    call(cross_entropy, z, y)                          # the rules apply to this call too
    zt = z.clone().requires_grad_(True)
    loss = cross_entropy(zt, y)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise CheckFailed("the loss is detached from the logits (no gradient flows back): compute it with torch "
                          "operations only, without .item(), .numpy() or .detach().")
    loss.backward()
    want = torch.softmax(z, 1)
    want[torch.arange(len(y)), y] -= 1
    expect_tensor(zt.grad, want / len(y), where="the gradient of your loss", atol=1e-5)


@q3.test("device: results are made on the input's device", points=1)
def _(log_softmax, cross_entropy):
    z, y = _logits(rng(), 5, 4, 1.0)
    expect_device(log_softmax, z)
    expect_device(cross_entropy, z, y)


# ------------------------------------------------------------------ q4: collapse a linear stack

q4 = EXERCISE.question("q4", "collapse_linear", title="A linear stack is one linear layer",
                       forbid={"autograd": "multiply the weight matrices: the answer is exact"})


def _stack(g, widths, dtype=torch.float64):
    weights = [_randn(g, b, a, dtype=dtype) / a ** 0.5 for a, b in zip(widths[:-1], widths[1:])]  # (out, in)
    biases = [_randn(g, b, dtype=dtype) for b in widths[1:]]
    return weights, biases


def _check_collapse(collapse_linear, weights, biases) -> None:
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    dtype = weights[0].dtype
    result = call(collapse_linear, weights, biases)
    where = f"collapse_linear on layers {' -> '.join(map(str, widths))} ({str(dtype).replace('torch.', '')})"
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(f"{where} should return a tuple (W, b); got {describe(result)}.")
    W, b = result
    ref_W = torch.eye(widths[0], dtype=dtype)
    ref_b = torch.zeros(widths[0], dtype=dtype)
    for w_i, b_i in zip(weights, biases):        # apply the layers one after the other
        ref_W, ref_b = w_i @ ref_W, w_i @ ref_b + b_i
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    same_shape = all(bi.shape == biases[0].shape for bi in biases)
    if (isinstance(b, torch.Tensor) and len(biases) > 1 and same_shape
            and _close(b, sum(biases), atol=tol) and not _close(b, ref_b, atol=tol)):
        raise CheckFailed(f"{where}: b is the plain sum of the biases; each later layer's weights also act on "
                          "the earlier biases (b = W2 b1 + b2 for two layers).")
    expect_tensor(W, ref_W, where=where + ", W", atol=tol)
    expect_tensor(b, ref_b, where=where + ", b", atol=tol)


@q4.test("teaching stacks: two layers, three non-square layers", points=1)
def _(collapse_linear):
    g = torch.Generator().manual_seed(30)
    _check_collapse(collapse_linear, *_stack(g, [6, 4, 3]))
    _check_collapse(collapse_linear, *_stack(g, [7, 9, 5, 2]))


@q4.test("random stacks of 1 to 6 layers, float64 and float32", points=1)
def _(collapse_linear):
    g = rng()
    for dtype in (torch.float64, torch.float64, torch.float32):
        widths = [randint(g, 1, 9) for _ in range(randint(g, 2, 7))]
        _check_collapse(collapse_linear, *_stack(g, widths, dtype))


@q4.test("device: W and b are made on the input's device", points=1)
def _(collapse_linear):
    expect_device(collapse_linear, *_stack(rng(), [4, 6, 3, 2]))


def _warm_up() -> None:
    """Resolve each question's forbidden names now, when the Checker is created, not inside the first test
    (the first resolution can take seconds on a busy machine and would count against a test's time limit)."""
    from cnnkit.checks.guard import execute
    import torch._dynamo  # noqa: F401

    for question in EXERCISE.questions.values():
        execute(lambda: None, (), {}, question.rules)


_warm_up()
