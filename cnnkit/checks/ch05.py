"""Grader tests for ``exercises/source/05_resnets.ipynb`` (chapter 5: vanishing gradients and ResNets).

Expected values come from autograd (q1, q3), ``F.conv2d`` (q2), slicing and ``torch.cat`` (q4) and the
parameter counts of ``cnnkit.deepnets.Block`` (q4). Fixed teaching cases sit beside cases drawn fresh
each grading run with ``rng()`` (the checker prints the seed).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnkit.deepnets import Block, pad_shortcut
from cnnkit.grading import CheckFailed, Exercise, expect_call, expect_device, expect_equal, randint, rng
from cnnkit.models import count_parameters

EXERCISE = Exercise("05_resnets", title="Vanishing gradients and ResNets")
F64 = torch.float64


def _warm_up_meta() -> None:
    """The first operations on the 'meta' device import parts of torch lazily (seconds on a busy machine):
    pay that once here, not inside a learner's timed test."""
    z = torch.zeros(1, 1, 3, 3, device="meta")
    F.relu(F.conv2d(torch.sigmoid(z), z, padding=1) @ z)
    torch.cat([z, z.new_zeros(1, 1, 3, 3)], dim=1)


_warm_up_meta()


def _close(got, want, rtol: float = 1e-6) -> bool:
    return isinstance(got, torch.Tensor) and got.shape == want.shape and got.device == want.device and \
        torch.allclose(got.detach().double(), want.double(), rtol=rtol, atol=1e-12)


# ------------------------------------------------------------------ q1: the gradient of a chain of sigmoids

q1 = EXERCISE.question("q1", "sigmoid_chain_grad", title="The gradient through a chain of sigmoids, by hand",
                       forbid={"autograd": "multiply the local derivatives w_l * s_l * (1 - s_l) yourself."})


def _chain_ref(x, w, b):
    xr = x.detach().clone().requires_grad_(True)
    a = xr
    for wl, bl in zip(w, b):
        a = torch.sigmoid(wl * a + bl)
    a.sum().backward()                                        # outputs depend on their own x only
    return xr.grad


def _chain_hint(x, w, b):
    acts, zs, a = [], [], x
    for wl, bl in zip(w, b):
        zs.append(wl * a + bl)
        a = torch.sigmoid(zs[-1])
        acts.append(a)
    mistakes = {
        "you dropped the weights: the derivative of s(w*a + b) with respect to a is w * s'(z).":
            torch.stack([s * (1 - s) for s in acts]).prod(0),
        "s'(z) is s(z) * (1 - s(z)); you used s(z) alone.": torch.stack([wl * s for wl, s in zip(w, acts)]).prod(0),
        "evaluate s' at the pre-activation z = w*a + b (s' = s(z)(1 - s(z)) uses the layer's output s(z)), "
        "not at the layer's input or output.":
            torch.stack([wl * torch.sigmoid(s) * (1 - torch.sigmoid(s)) for wl, s in zip(w, acts)]).prod(0),
        "1/4 is only the largest value of s'; use each layer's own s'(z).": (w / 4).prod().expand_as(x),
    }

    def hint(got):
        for text, value in mistakes.items():
            if _close(got, value.to(got.dtype) if isinstance(got, torch.Tensor) else value, 1e-5):
                return text
        return ("run the chain forward keeping every s_l = sigmoid(w_l * a_{l-1} + b_l); the derivative of the "
                "output with respect to x is the product over layers of w_l * s_l * (1 - s_l).")
    return hint


def _check_chain(fn, x, w, b, rtol=1e-6):
    expect_call(fn, x, w, b, expected=_chain_ref(x, w, b), atol=1e-12, rtol=rtol, hint=_chain_hint(x, w, b))


@q1.test("fixed cases: one layer at 0 gives 1/4; a five-layer chain", points=1)
def _(sigmoid_chain_grad):
    _check_chain(sigmoid_chain_grad, torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([0.0]), 1e-5)
    _check_chain(sigmoid_chain_grad, torch.tensor([-2.0, 0.0, 3.0]), torch.tensor([1.0]), torch.tensor([0.0]), 1e-5)
    w5, b5 = torch.tensor([2.0, -1.0, 3.0, 0.5, 1.5]), torch.tensor([0.0, 0.5, -1.0, 0.0, 0.2])
    _check_chain(sigmoid_chain_grad, torch.tensor([-1.0, 0.5, 2.0]), w5, b5, 1e-5)


@q1.test("random chains of 2 to 40 layers, float64", points=2)
def _(sigmoid_chain_grad):
    g = rng()
    for _ in range(3):
        n, depth = randint(g, 1, 9), randint(g, 2, 40)
        x = torch.randn(n, generator=g, dtype=F64) * 3
        w = torch.randn(depth, generator=g, dtype=F64) * 2
        b = torch.randn(depth, generator=g, dtype=F64)
        _check_chain(sigmoid_chain_grad, x, w, b)


@q1.test("inputs on another device stay there", points=1, timeout=30)
def _(sigmoid_chain_grad):
    expect_device(sigmoid_chain_grad, torch.zeros(4), torch.ones(3), torch.zeros(3))


# ------------------------------------------------------------------ q2: a residual block with a projection

q2 = EXERCISE.question("q2", "residual_block", title="A residual block with a projection shortcut",
                       forbid={"cnnkit.deepnets": "write the block with F.conv2d and F.relu.",
                               "torchvision.models": "write the block with F.conv2d and F.relu."})


def _block_ref(x, w1, w2, w_proj=None, stride=1):
    out = F.relu(F.conv2d(x, w1, stride=stride, padding=1))
    out = F.conv2d(out, w2, padding=1)
    skip = x if w_proj is None else F.conv2d(x, w_proj, stride=stride)
    return F.relu(out + skip)


def _block_hint(x, w1, w2, w_proj, stride):
    out = F.conv2d(F.relu(F.conv2d(x, w1, stride=stride, padding=1)), w2, padding=1)
    skip = x if w_proj is None else F.conv2d(x, w_proj, stride=stride)
    mistakes = {"apply ReLU after the addition: y = relu(F(x) + shortcut(x)).": out + skip,
                "the residual branch F(x) = conv2(relu(conv1(x))) has no ReLU of its own before the addition.":
                    F.relu(F.relu(out) + skip)}
    if w_proj is not None or stride != 1:
        mistakes["the shortcut must be added: y = relu(F(x) + shortcut(x)) (is it missing?)."] = F.relu(out)
    if stride != 1:
        late = F.conv2d(F.relu(F.conv2d(x, w1, padding=1)), w2, stride=stride, padding=1)
        mistakes["the stride belongs to the first 3×3 convolution (and to the projection), not the second."] = \
            F.relu(late + skip)

    def hint(got):
        for text, value in mistakes.items():
            if _close(got, value, 1e-4):
                return text
        if isinstance(got, torch.Tensor) and got.dim() == 4 and got.shape[-2:] != out.shape[-2:]:
            return f"with stride {stride} the output is {tuple(out.shape)}; both paths must use the stride."
        return ("conv1 (3×3, stride, padding 1), ReLU, conv2 (3×3, padding 1); shortcut: x, or a 1×1 conv of x "
                "with w_proj and the same stride; add the two, then ReLU.")
    return hint


def _block_case(g, c_in, c_out, h, w, stride, batch=1, dtype=torch.float32, proj=True):
    x = torch.randn(batch, c_in, h, w, generator=g, dtype=dtype)
    w1 = torch.randn(c_out, c_in, 3, 3, generator=g, dtype=dtype) / 3
    w2 = torch.randn(c_out, c_out, 3, 3, generator=g, dtype=dtype) / 3
    w_proj = torch.randn(c_out, c_in, 1, 1, generator=g, dtype=dtype) if proj else None
    return x, w1, w2, w_proj, stride


def _check_block(fn, case):
    x, w1, w2, w_proj, stride = case
    expect_call(fn, x, w1, w2, w_proj, stride, expected=_block_ref(x, w1, w2, w_proj, stride),
                hint=_block_hint(x, w1, w2, w_proj, stride))


@q2.test("same shape: the identity shortcut (w_proj=None, stride 1)", points=1)
def _(residual_block):
    g = torch.Generator().manual_seed(5)
    _check_block(residual_block, _block_case(g, 2, 2, 4, 4, 1, proj=False))
    _check_block(residual_block, _block_case(g, 3, 3, 5, 7, 1, batch=2, proj=False))


@q2.test("projection: 8 -> 16 channels, stride 2, even and odd sizes", points=1)
def _(residual_block):
    g = torch.Generator().manual_seed(6)
    _check_block(residual_block, _block_case(g, 8, 16, 8, 8, 2))
    _check_block(residual_block, _block_case(g, 3, 5, 7, 9, 2, batch=2))
    _check_block(residual_block, _block_case(g, 4, 6, 5, 5, 1))


@q2.test("random shapes and strides, float64", points=1)
def _(residual_block):
    g = rng()
    for _ in range(3):
        c_in, stride = randint(g, 1, 5), randint(g, 1, 2)
        c_out = c_in + randint(g, 0, 4) * (stride - 1) + randint(g, 1, 3)
        case = _block_case(g, c_in, c_out, randint(g, 3, 10), randint(g, 3, 10), stride, randint(g, 1, 3), F64)
        _check_block(residual_block, case)
    c = randint(g, 1, 4)
    _check_block(residual_block, _block_case(g, c, c, randint(g, 3, 8), randint(g, 3, 8), 1, 2, F64, proj=False))


@q2.test("inputs on another device stay there", points=1, timeout=30)
def _(residual_block):
    x, w1, w2, w_proj, _ = _block_case(torch.Generator().manual_seed(7), 2, 4, 6, 6, 2)
    expect_device(residual_block, x, w1, w2, w_proj, 2)


# ------------------------------------------------------------------ q3: gradients through linear chains

q3 = EXERCISE.question("q3", "linear_chain_grad", "predicted_norm_ratio",
                       title="Predict, then verify: gradients through plain and residual chains",
                       forbid={"autograd": "walk the chain backwards yourself: one matrix product per layer."})


def _linear_ref(W, g, residual):
    y0 = torch.zeros_like(g, requires_grad=True)
    y = y0
    for Wl in W:
        y = y @ Wl.T + (y if residual else 0)
    (y * g).sum().backward()
    return y0.grad


def _linear_hint(W, g, residual):
    eye = torch.eye(W.shape[-1], dtype=W.dtype)
    mistakes = {"transposes: if y_l = y_{l-1} @ W_l.T, the gradient goes back as grad @ W_l (no .T).":
                [Wl.T + (eye if residual else 0) for Wl in W],
                "order: the gradient meets the last layer first; go through W in reverse.":
                [Wl + (eye if residual else 0) for Wl in W.flip(0)]}
    if residual:
        mistakes["a residual layer's Jacobian is I + W_l: the gradient also goes back unchanged through the skip."] \
            = list(W)

    def hint(got):
        for text, mats in mistakes.items():
            value = g
            for M in reversed(mats):
                value = value @ M
            if _close(got, value, 1e-5):
                return text
        return "start from g and, for l = L, ..., 1, set grad = grad @ W_l (+ grad for a residual layer)."
    return hint


def _check_linear(fn, W, g, residual):
    expect_call(fn, W, g, residual, expected=_linear_ref(W, g, residual), hint=_linear_hint(W, g, residual))


@q3.test("linear_chain_grad, fixed cases (plain and residual)", points=1)
def _(linear_chain_grad, predicted_norm_ratio):
    W = torch.tensor([[[1.0, 2.0], [0.0, 1.0]], [[0.0, 1.0], [-1.0, 0.5]]])  # (L=2, D=2, D=2)
    g = torch.tensor([[1.0, 0.0], [0.5, -2.0]])                                # (B=2, D=2)
    _check_linear(linear_chain_grad, W, g, False)
    _check_linear(linear_chain_grad, W, g, True)


@q3.test("linear_chain_grad, random chains, float64", points=1)
def _(linear_chain_grad, predicted_norm_ratio):
    gen = rng()
    for residual in (False, True, True):
        depth, d, b = randint(gen, 1, 12), randint(gen, 2, 7), randint(gen, 1, 4)
        W = torch.randn(depth, d, d, generator=gen, dtype=F64) / math.sqrt(d)
        _check_linear(linear_chain_grad, W, torch.randn(b, d, generator=gen, dtype=F64), residual)


@q3.test("linear_chain_grad keeps the inputs' device", points=1, timeout=30)
def _(linear_chain_grad, predicted_norm_ratio):
    expect_device(linear_chain_grad, torch.zeros(3, 4, 4), torch.zeros(2, 4), True)


def _ratio(eps, depth, residual):
    return (1 + eps ** 2) ** (depth / 2) if residual else eps ** depth


@q3.test("predicted_norm_ratio: eps**L plain, (1 + eps**2)**(L/2) residual", points=1)
def _(linear_chain_grad, predicted_norm_ratio):
    g = rng()
    cases = [(0.5, 10, False), (0.5, 10, True), (0.1, 20, True), (2.0, 3, False)]
    cases += [(0.05 + torch.rand(1, generator=g).item(), randint(g, 2, 60), r) for r in (False, True)]
    for eps, depth, residual in cases:
        want = _ratio(eps, depth, residual)
        got = expect_call(predicted_norm_ratio, eps, depth, residual, expected=float(want))
        if not isinstance(got, float):
            raise CheckFailed(f"predicted_norm_ratio({eps}, {depth}, {residual}) should return a Python float.")


# ------------------------------------------------------------------ q4: identity shortcut and parameter costs

q4 = EXERCISE.question("q4", "pad_shortcut", "block_params", title="The identity shortcut and what a projection costs",
                       forbid={"torch.nn.functional.pad": "append zero channels with x.new_zeros and torch.cat.",
                               "cnnkit.deepnets": "", "torch.nn.Conv2d": "count with the formula instead.",
                               "torch.nn.BatchNorm2d": "count with the formula instead."})


def _pad_hint(x, c_out, stride):
    def hint(got):
        if isinstance(got, torch.Tensor) and got.dim() == 4 and got.shape[-2:] == x.shape[-2:] and stride > 1:
            return f"keep every {stride}-th row and column first: x[:, :, ::{stride}, ::{stride}]."
        if isinstance(got, torch.Tensor) and got.dim() == 4 and got.shape[1] == c_out and \
                got.shape[-2:] == x[:, :, ::stride, ::stride].shape[-2:]:
            sub = x[:, :, ::stride, ::stride]
            if got.device == x.device and got.dtype == x.dtype and torch.equal(got[:, -x.shape[1]:], sub):
                return "the input's channels come first (channels 0..C-1); the zero channels go after them."
        return "out = cat([x[:, :, ::s, ::s], zeros of shape (B, c_out - C, H', W') on x's device], dim=1)."
    return hint


def _check_pad(fn, x, c_out, stride):
    expect_call(fn, x, c_out, stride, expected=pad_shortcut(x, c_out, stride), hint=_pad_hint(x, c_out, stride))


@q4.test("pad_shortcut, fixed case: 1 -> 3 channels, stride 2", points=1)
def _(pad_shortcut_fn, block_params):
    _check_pad(pad_shortcut_fn, torch.arange(16.0).view(1, 1, 4, 4), 3, 2)
    _check_pad(pad_shortcut_fn, torch.arange(18.0).view(2, 1, 3, 3), 2, 1)


@q4.test("pad_shortcut, random odd sizes, float64", points=1)
def _(pad_shortcut_fn, block_params):
    g = rng()
    for _ in range(3):
        c = randint(g, 1, 5)
        x = torch.randn(randint(g, 1, 3), c, randint(g, 3, 11), randint(g, 3, 11), generator=g, dtype=F64)
        _check_pad(pad_shortcut_fn, x, c + randint(g, 0, 6), randint(g, 1, 3))


@q4.test("pad_shortcut keeps the input's device", points=1, timeout=30)
def _(pad_shortcut_fn, block_params):
    expect_device(pad_shortcut_fn, torch.zeros(2, 3, 5, 5), 6, 2)


def _block_count(c_in, c_out, stride, shortcut):
    return count_parameters(Block(c_in, c_out, stride, residual=True, bn=True, shortcut=shortcut))


def _params_hint(c_in, c_out, stride, shortcut):
    def hint(got):
        if not isinstance(got, int):
            return None
        want = _block_count(c_in, c_out, stride, shortcut)
        if got - want == 2 * c_out + (c_out if shortcut == "projection" and want > _block_count(
                c_in, c_out, stride, "identity") else 0):
            return "with batch norm after every convolution the convolutions have no bias (BN's shift replaces it)."
        if got < want and want - got in (4 * c_out, 6 * c_out, 2 * c_out):
            return "each BatchNorm2d has 2 parameters per channel (a scale and a shift); count every BN."
        if shortcut == "projection" and c_in == c_out and stride == 1 and got > want:
            return "when the shapes already match, the shortcut is the identity even in a projection network."
        return ("two 3×3 convolutions without bias (9*c_in*c_out + 9*c_out*c_out), a BN after each (2*c_out), and "
                "for a projection where the shape changes a 1×1 convolution (c_in*c_out) with its BN (2*c_out).")
    return hint


@q4.test("block_params, fixed cases", points=1)
def _(pad_shortcut_fn, block_params):
    for c_in, c_out, stride, kind in [(8, 16, 2, "identity"), (8, 16, 2, "projection"), (16, 16, 1, "projection"),
                                      (16, 16, 1, "identity")]:
        expect_call(block_params, c_in, c_out, stride, kind, expected=_block_count(c_in, c_out, stride, kind),
                    hint=_params_hint(c_in, c_out, stride, kind))


@q4.test("block_params, random widths and strides", points=1)
def _(pad_shortcut_fn, block_params):
    g = rng()
    for kind in ("identity", "projection", "projection"):
        c_in, stride = randint(g, 1, 64), randint(g, 1, 2)
        c_out = c_in + (randint(g, 1, 64) if randint(g, 0, 1) else 0)
        want = _block_count(c_in, c_out, stride, kind)
        got = expect_call(block_params, c_in, c_out, stride, kind, expected=want,
                          hint=_params_hint(c_in, c_out, stride, kind))
        expect_equal(got, want, f"block_params({c_in}, {c_out}, {stride}, {kind!r})")
