"""Grader tests for ``exercises/source/03_pooling.ipynb`` (chapter 3: pooling).

Expected values come from PyTorch itself (``F.max_pool2d``/``F.avg_pool2d`` with ``ceil_mode``, autograd
through them, one-hot images pooled by ``F.max_pool2d``, ``nn.Linear`` on the meta device), computed here,
outside the learner's code. Every question mixes fixed teaching cases with cases drawn fresh each grading run
(``rng``): odd and non-square sizes, batches, float64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.grading import CheckFailed, Exercise, call, expect_call, expect_device, randint, rng

EXERCISE = Exercise("03_pooling", title="Pooling")

_NO_POOL = {
    "torch.nn.functional.max_pool2d": "slide the windows yourself (Tensor.unfold, reshape or slicing)",
    "torch.nn.functional.avg_pool2d": "", "torch.nn.functional.max_pool1d": "",
    "torch.nn.functional.avg_pool1d": "", "torch.nn.functional.adaptive_avg_pool2d": "",
    "torch.nn.functional.adaptive_max_pool2d": "", "torch.nn.functional.max_unpool2d": "",
    "torch.nn.functional.lp_pool2d": "", "torch.nn.functional.fractional_max_pool2d": "",
    "torch.max_pool2d": "", "torch.avg_pool1d": "", "torch.adaptive_avg_pool1d": "",
    "torch.nn.MaxPool2d": "", "torch.nn.AvgPool2d": "", "torch.nn.AdaptiveAvgPool2d": "",
    "torch.nn.AdaptiveMaxPool2d": "", "torch.nn.MaxUnpool2d": "",
    "aten.max_pool2d_with_indices": "", "aten.avg_pool2d": "", "aten._adaptive_avg_pool2d": "",
    "cnnkit.ops": "the point is to write it yourself",
}
_NO_AUTOGRAD = {"autograd": "derive the gradient and compute it with tensor operations"}


def _randn(g: torch.Generator, *shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def _close(a, b, atol=1e-5) -> bool:
    return (isinstance(a, torch.Tensor) and a.shape == b.shape and a.device == b.device
            and torch.allclose(a.detach().double(), b.double(), atol=atol))


# ------------------------------------------------------------------ q1: max pooling with ceil_mode

q1 = EXERCISE.question("q1", "max_pool2d", title="Max pooling with a stride and ceil_mode", forbid=_NO_POOL)


def _max_hint(x, k, s, ceil_mode):
    want = F.max_pool2d(x, k, s, ceil_mode=ceil_mode)
    floor = F.max_pool2d(x, k, s)

    def hint(got):
        if not isinstance(got, torch.Tensor):
            return None
        if ceil_mode and got.shape == floor.shape != want.shape:
            return ("that is the floor-mode size. With ceil_mode=True a last, partial window is kept as long "
                    "as it starts inside the input: pad the bottom/right with -inf (it never wins) up to the "
                    "size those windows need.")
        if ceil_mode and got.shape[-2:] > want.shape[-2:] and got.dim() == 4:
            return ("one window too many: ceil_mode keeps a partial window only if it *starts* inside the "
                    "input; drop a last window that would start past the input's edge.")
        if got.shape == want.shape and _close(got, want.clamp(min=0)) and (want < 0).any():
            return ("values below zero come back as 0: you padded with zeros, which beat a window of negative "
                    "values. Pad with -inf (F.pad(..., value=float('-inf'))).")
        return None
    return hint


def _check_max(fn, cases) -> None:
    for x, k, s, ceil_mode in cases:
        expect_call(fn, x, k, s, ceil_mode=ceil_mode, expected=F.max_pool2d(x, k, s, ceil_mode=ceil_mode),
                    hint=_max_hint(x, k, s, ceil_mode))


@q1.test("teaching cases: floor mode, windows side by side and overlapping", points=1)
def _(max_pool2d):
    g = torch.Generator().manual_seed(30)
    _check_max(max_pool2d, [(_randn(g, 1, 1, 4, 4), 2, 2, False), (_randn(g, 2, 3, 7, 7), 3, 2, False),
                            (_randn(g, 1, 2, 9, 6), 2, 3, False)])


@q1.test("ceil_mode: a partial last window, and one that would start outside", points=1)
def _(max_pool2d):
    g = rng()
    cases = [(_randn(g, 1, 1, 5, 5), 2, 2, True),      # 3×3 output: the last window holds 1 row/column
             (-_randn(g, 2, 2, 7, 6).abs() - 1, 3, 2, True),  # all negative: padding must be -inf
             (_randn(g, 1, 1, 5, 7), 1, 3, True)]      # a 3rd window would start at 6 > 4: dropped
    for _ in range(2):
        k, s = randint(g, 1, 4), randint(g, 1, 4)
        cases.append((_randn(g, randint(g, 1, 3), randint(g, 1, 3), randint(g, k, 11), randint(g, k, 11),
                             dtype=torch.float64), k, s, True))
    _check_max(max_pool2d, cases)


@q1.test("random sizes, strides and both modes, float64 and negative values", points=1)
def _(max_pool2d):
    g = rng()
    cases = []
    for i in range(5):
        k, s = randint(g, 1, 4), randint(g, 1, 4)
        x = _randn(g, randint(g, 1, 3), randint(g, 1, 3), randint(g, k, 12), randint(g, k, 12),
                   dtype=torch.float64 if i % 2 else torch.float32)
        cases.append((x - 3.0 if i == 4 else x, k, s, bool(randint(g, 0, 1))))
    _check_max(max_pool2d, cases)


@q1.test("device: the output is made on the input's device", points=1)
def _(max_pool2d):
    g = rng()
    expect_device(max_pool2d, _randn(g, 2, 3, 7, 6), 2, 2, ceil_mode=True)


# ------------------------------------------------------------------ q2: backward pass of average pooling

q2 = EXERCISE.question("q2", "avg_pool2d_backward", title="The backward pass of average pooling, by hand",
                       forbid={**_NO_POOL, **_NO_AUTOGRAD})


def _grad_through(pool, x, grad_out, k, s):
    xr = x.detach().clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(pool(xr, k, s), xr, grad_out)
    return gx                                                  # (B, C, H, W)


def _avg_hint(x, grad_out, k, s):
    def hint(got):
        if not (isinstance(got, torch.Tensor) and got.shape == x.shape):
            return (f"the gradient has the shape of x, {tuple(x.shape)}; inputs that are in no window get 0."
                    if isinstance(got, torch.Tensor) else None)
        want = _grad_through(F.avg_pool2d, x, grad_out, k, s)
        if s < k and _close(got, _overwrite_avg(x, grad_out, k, s)):
            return ("where windows overlap an input belongs to several windows, and its gradient is the *sum* "
                    "of what each of them sends back: add (+=), don't assign.")
        if _close(got * k, want):
            return f"your values are {k} times too large: a {k}×{k} window holds k·k = {k * k} values."
        if _close(got / (k * k), want):
            return "you forgot to divide: each input gets 1/k² of its window's gradient."
        return None
    return hint


def _overwrite_avg(x, grad_out, k, s):
    """What 'assign instead of add' gives: later windows overwrite earlier ones."""
    out = torch.zeros_like(x)
    for i in range(grad_out.shape[2]):
        for j in range(grad_out.shape[3]):
            out[:, :, i * s:i * s + k, j * s:j * s + k] = (grad_out[:, :, i, j] / (k * k))[..., None, None]
    return out


def _check_avg_backward(fn, cases) -> None:
    for x, k, s in cases:
        grad_out = torch.randn(F.avg_pool2d(x, k, s).shape, dtype=x.dtype,
                               generator=torch.Generator().manual_seed(x.numel() + k))
        expect_call(fn, x, grad_out, k, s, expected=_grad_through(F.avg_pool2d, x, grad_out, k, s),
                    hint=_avg_hint(x, grad_out, k, s))


@q2.test("teaching case: windows side by side", points=1)
def _(avg_pool2d_backward):
    g = torch.Generator().manual_seed(40)
    _check_avg_backward(avg_pool2d_backward, [(_randn(g, 1, 1, 4, 4), 2, 2), (_randn(g, 2, 3, 6, 9), 3, 3)])


@q2.test("overlapping windows: an input in several windows collects all their gradients", points=1)
def _(avg_pool2d_backward):
    g = rng()
    cases = [(_randn(g, 1, 1, 5, 5, dtype=torch.float64), 3, 1), (_randn(g, 2, 2, 7, 6), 3, 2)]
    for _ in range(2):
        k = randint(g, 2, 4)
        s = randint(g, 1, k - 1)
        cases.append((_randn(g, randint(g, 1, 3), randint(g, 1, 3), randint(g, k, 11), randint(g, k, 11),
                             dtype=torch.float64), k, s))
    _check_avg_backward(avg_pool2d_backward, cases)


@q2.test("gaps and leftovers: stride above the kernel, sizes that do not divide, float64", points=1)
def _(avg_pool2d_backward):
    g = rng()
    cases = [(_randn(g, 2, 1, 9, 8, dtype=torch.float64), 2, 3), (_randn(g, 1, 2, 7, 10), 3, 3)]
    for _ in range(2):
        k, s = randint(g, 1, 3), randint(g, 2, 4)
        cases.append((_randn(g, randint(g, 1, 3), randint(g, 1, 3), randint(g, k, 12), randint(g, k, 12),
                             dtype=torch.float64), k, s))
    _check_avg_backward(avg_pool2d_backward, cases)


@q2.test("device: the gradient is made on the input's device", points=1)
def _(avg_pool2d_backward):
    g = rng()
    x = _randn(g, 2, 3, 7, 6)
    expect_device(avg_pool2d_backward, x, _randn(g, 2, 3, 3, 2), 3, 2)


# ------------------------------------------------------------------ q3: backward pass of max pooling

q3 = EXERCISE.question("q3", "max_pool2d_backward", title="The backward pass of max pooling, by hand",
                       forbid={**_NO_POOL, **_NO_AUTOGRAD})


def _max_backward_hint(x, grad_out, k, s):
    def hint(got):
        if not isinstance(got, torch.Tensor):
            return None
        if got.shape != x.shape:
            return f"the gradient has the shape of x, {tuple(x.shape)}; inputs that are in no window get 0."
        want = _grad_through(F.max_pool2d, x, grad_out, k, s)
        if (got != 0).sum() > (want != 0).sum() and (x == x.round()).all():
            return ("more inputs received a gradient than PyTorch gives one: when values tie for a window's "
                    "maximum, the whole gradient goes to the first of them in row-major order (argmax).")
        if s < k and _close(got, _overwrite_max(x, grad_out, k, s)):
            return ("an input that wins several overlapping windows must collect the sum of their gradients: "
                    "use scatter_add / index_add (or +=), not scatter or assignment.")
        return ("for every window find its arg-max (the first maximum), turn it into a position in x (row "
                "i·stride + a // k, column j·stride + a % k), and add that window's grad_out there.")
    return hint


def _overwrite_max(x, grad_out, k, s):
    b, c, h, w = x.shape
    win = x.unfold(2, k, s).unfold(3, k, s).flatten(-2)               # (B, C, Ho, Wo, k*k)
    a = win.argmax(-1)
    rows = torch.arange(win.shape[2]).view(1, 1, -1, 1) * s + a // k
    cols = torch.arange(win.shape[3]).view(1, 1, 1, -1) * s + a % k
    idx = (rows * w + cols).flatten(2)
    return torch.zeros(b, c, h * w, dtype=x.dtype).scatter(-1, idx, grad_out.flatten(2)).view(b, c, h, w)


def _check_max_backward(fn, cases) -> None:
    for x, k, s in cases:
        grad_out = torch.randn(F.max_pool2d(x, k, s).shape, dtype=x.dtype,
                               generator=torch.Generator().manual_seed(x.numel() + 7 * k))
        expect_call(fn, x, grad_out, k, s, expected=_grad_through(F.max_pool2d, x, grad_out, k, s),
                    hint=_max_backward_hint(x, grad_out, k, s))


@q3.test("teaching case: windows side by side", points=1)
def _(max_pool2d_backward):
    g = torch.Generator().manual_seed(50)
    _check_max_backward(max_pool2d_backward, [(_randn(g, 1, 1, 4, 4), 2, 2), (_randn(g, 2, 3, 7, 9), 3, 3)])


@q3.test("overlapping windows: one input can win several windows", points=1)
def _(max_pool2d_backward):
    g = rng()
    peak = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    peak[0, 0, 2, 2] = 5.0                                             # wins all four 3×3 windows (stride 2)
    cases = [(peak + 0.01 * _randn(g, 1, 1, 5, 5, dtype=torch.float64), 3, 2), (_randn(g, 2, 2, 8, 7), 3, 1)]
    for _ in range(2):
        k = randint(g, 2, 4)
        s = randint(g, 1, k - 1)
        cases.append((_randn(g, randint(g, 1, 3), randint(g, 1, 3), randint(g, k, 11), randint(g, k, 11),
                             dtype=torch.float64), k, s))
    _check_max_backward(max_pool2d_backward, cases)


@q3.test("ties go to the first maximum; gaps, leftovers, float64", points=1)
def _(max_pool2d_backward):
    g = rng()
    cases = [(torch.zeros(1, 1, 2, 2), 2, 2),                          # four tied zeros: [1, 0, 0, 0]
             ((2 * _randn(g, 2, 2, 7, 6, dtype=torch.float64)).round(), 3, 2),   # many exact ties
             (_randn(g, 1, 3, 9, 10, dtype=torch.float64), 2, 3)]     # stride above the kernel
    for _ in range(2):
        k, s = randint(g, 1, 4), randint(g, 1, 4)
        cases.append(((_randn(g, randint(g, 1, 3), randint(g, 1, 3), randint(g, k, 11), randint(g, k, 11),
                               dtype=torch.float64) * 1.5).round(), k, s))
    _check_max_backward(max_pool2d_backward, cases)


@q3.test("device: the gradient is made on the input's device", points=1)
def _(max_pool2d_backward):
    g = rng()
    expect_device(max_pool2d_backward, _randn(g, 2, 3, 7, 6), _randn(g, 2, 3, 3, 2), 3, 2)


# ------------------------------------------------------------------ q4: predict, then verify: shift robustness

q4 = EXERCISE.question("q4", "unchanged_fraction", title="Which shifts does max pooling absorb?",
                       forbid=_NO_POOL)
# No meta-device or float64 test for q4: it takes and returns plain Python numbers.


def _unchanged_reference(k: int, s: int, dy: int, dx: int) -> float:
    """Brute force: one lit pixel at each position of one stride period, max-pooled before and after the move."""
    base = k + s                                             # far enough from the border for every window
    size = base + s + max(dy, dx) + k + s
    same = 0
    for py in range(base, base + s):
        for px in range(base, base + s):
            imgs = torch.zeros(2, 1, size, size)
            imgs[0, 0, py, px] = 1.0
            imgs[1, 0, py + dy, px + dx] = 1.0
            pooled = F.max_pool2d(imgs, k, s)
            same += bool(torch.equal(pooled[0], pooled[1]))
    return same / (s * s)


def _fraction_hint(k, s, dy, dx):
    def one_axis(d):
        return sum(1 for p in range(s) if {j for j in range(-k, p // s + 2) if j * s <= p < j * s + k}
                   == {j for j in range(-k, (p + d) // s + 2) if j * s <= p + d < j * s + k}) / s

    def hint(got):
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return None
        if abs(got - (1 - _unchanged_reference(k, s, dy, dx))) < 1e-9:
            return "that is the fraction of positions whose pooled output *changes*; the question asks for unchanged."
        if s > k and abs(got - one_axis(dy) * one_axis(dx)) < 1e-9:
            return ("with a stride above the kernel some rows and columns are in no window: a pixel there "
                    "leaves the pooled map all zero, so two such positions give the same output even when "
                    "the rows or columns alone would differ.")
        if s != k and abs(got - max(0, k - dy) * max(0, k - dx) / (k * k)) < 1e-9:
            return ("(k − d)/k per axis holds only for windows side by side (stride = kernel). With another "
                    "stride, list which windows contain a position p and which contain p + d.")
        return None
    return hint


def _check_fraction(fn, cases) -> None:
    for k, s, dy, dx in cases:
        expect_call(fn, k, s, dy, dx, expected=_unchanged_reference(k, s, dy, dx), hint=_fraction_hint(k, s, dy, dx))


@q4.test("teaching cases: 2×2 windows side by side", points=1)
def _(unchanged_fraction):
    _check_fraction(unchanged_fraction, [(2, 2, 1, 0), (2, 2, 1, 1), (2, 2, 2, 0), (2, 2, 0, 0)])


@q4.test("other kernels, and overlapping windows (stride below the kernel)", points=1)
def _(unchanged_fraction):
    g = rng()
    cases = [(3, 2, 1, 0), (3, 3, 1, 2), (4, 2, 2, 0)]
    for _ in range(3):
        k = randint(g, 2, 5)
        s = randint(g, 1, k)
        cases.append((k, s, randint(g, 0, k), randint(g, 0, k)))
    _check_fraction(unchanged_fraction, cases)


@q4.test("gaps: stride above the kernel", points=1)
def _(unchanged_fraction):
    g = rng()
    cases = [(1, 2, 1, 0), (2, 3, 1, 1)]
    for _ in range(2):
        k = randint(g, 1, 3)
        cases.append((k, randint(g, k + 1, 5), randint(g, 0, 4), randint(g, 0, 4)))
    _check_fraction(unchanged_fraction, cases)


# ------------------------------------------------------------------ q5: global average pooling and head sizes

q5 = EXERCISE.question("q5", "global_avg_pool2d", "head_params",
                       title="Global average pooling and the size of the classifier head",
                       forbid={**_NO_POOL, "torch.nn.Linear": "count from the shapes",
                               "torch.nn.functional.linear": ""})


@q5.test("global_avg_pool2d: (B, C, H, W) -> (B, C), float32 and float64", points=1)
def _(global_avg_pool2d, head_params):
    g = rng()
    shapes = [(2, 3, 5, 5), (1, 8, 7, 3), (4, 2, 1, 9)]
    shapes += [(randint(g, 1, 4), randint(g, 1, 6), randint(g, 1, 9), randint(g, 1, 9)) for _ in range(2)]
    for i, shape in enumerate(shapes):
        x = _randn(g, *shape, dtype=torch.float64 if i % 2 else torch.float32)   # (B, C, H, W)
        expect_call(global_avg_pool2d, x, expected=x.mean(dim=(2, 3)),
                    hint=lambda got: ("return (B, C): no trailing 1×1 axes (keepdim=False)."
                                      if isinstance(got, torch.Tensor) and got.dim() == 4 else
                                      "average over H and W only (dims 2 and 3)."
                                      if isinstance(got, torch.Tensor) else None))


def _head_reference(c, h, w, k, global_pool):
    lin = nn.Linear(c if global_pool else c * h * w, k, device="meta")
    return sum(p.numel() for p in lin.parameters())


@q5.test("head_params: flatten + linear and global pooling + linear", points=1)
def _(global_avg_pool2d, head_params):
    g = rng()
    cases = [(16, 5, 5, 10), (64, 7, 7, 10), (8, 3, 4, 5)]
    cases += [(randint(g, 1, 128), randint(g, 1, 9), randint(g, 1, 9), randint(g, 2, 100)) for _ in range(2)]
    for c, h, w, k in cases:
        for global_pool in (False, True):
            want = _head_reference(c, h, w, k, global_pool)
            inputs = c if global_pool else c * h * w

            def hint(got, k=k, inputs=inputs, global_pool=global_pool, c=c, h=h, w=w):
                if got == inputs * k:
                    return (f"that is the weights only: the linear layer also has one bias per class, "
                            f"+{k}.")
                if global_pool and got in (c * h * w * k + k, c * h * w * k):
                    return ("after global pooling each channel is one number, whatever h and w are: the "
                            "layer has c inputs.")
                return None
            expect_call(head_params, c, h, w, k, global_pool=global_pool, expected=want, hint=hint)


@q5.test("device: global_avg_pool2d keeps the input's device", points=1)
def _(global_avg_pool2d, head_params):
    expect_device(global_avg_pool2d, _randn(rng(), 2, 3, 5, 4))


def _warm_up() -> None:
    """Resolve each question's forbidden names now, when the Checker is created, not inside the first test."""
    from cnnkit.checks.guard import execute
    import torch._dynamo  # noqa: F401  (see cnnkit.checks.ch01._warm_up)

    for question in EXERCISE.questions.values():
        execute(lambda: None, (), {}, question.rules)


_warm_up()
