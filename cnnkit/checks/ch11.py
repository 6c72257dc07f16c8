"""Grader tests for ``exercises/source/11_architectures.ipynb`` (chapter 11: a tour of CNN architectures).

Expected values come from PyTorch itself: parameter counts from ``nn.Conv2d`` built on the ``meta`` device,
multiply-accumulates from ``torch.utils.flop_counter.FlopCounterMode`` running that layer, and the tensors of
questions 3 and 4 from ``F.conv2d`` (with ``groups=`` for the depthwise step, with ``stride=patch`` for the patch
embedding). Each question checks fixed teaching cases and cases drawn at random for every grading run (``rng``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnkit.grading import CheckFailed, Exercise, LearnerError, call, expect_call, expect_device, randint, rng

EXERCISE = Exercise("11_architectures", title="A tour of CNN architectures")

_NO_LAYER = {
    "torch.nn.Conv2d": "count from the shapes", "torch.nn.functional.conv2d": "count from the shapes",
    "aten.convolution": "", "torch.utils.flop_counter": "count from the shapes",
    "cnnkit.arch": "write it yourself rather than calling the chapter's helpers", "cnnkit.ops": "",
    "torchinfo": "",
}
_NO_CONV = {
    "torch.nn.functional.conv2d": "use slicing, reshaping and products", "torch.conv2d": "",
    "torch.nn.Conv2d": "", "aten.convolution": "",
    "cnnkit.arch": "write it yourself rather than calling the chapter's helpers", "cnnkit.ops": "",
}


def _pair(k):
    return (k, k) if isinstance(k, int) else tuple(k)


def _layer(c_in, c_out, kernel, groups=1, bias=True, **kw):
    return nn.Conv2d(c_in, c_out, kernel, groups=groups, bias=bias, device="meta", **kw)


def _desc(name, *args, **kwargs):
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"`{name}({', '.join(parts)})`"


def _expect_int(got, want, desc, hint=""):
    if not isinstance(got, int) or isinstance(got, bool):
        raise CheckFailed(f"{desc} returned {type(got).__name__} {got!r}; return a plain Python int (use // for "
                          "division, int(...) around NumPy or torch numbers).")
    if got != want:
        raise CheckFailed(f"{desc} returned {got}; expected {want}.{hint}")


# ------------------------------------------------------------------ q1: parameters of any conv layer

q1 = EXERCISE.question("q1", "conv_params", title="Parameters of any convolution layer", forbid=_NO_LAYER)
# No meta-device test for q1 or q2: their functions take and return Python ints.


def _q1_hint(c_in, c_out, kernel, groups, bias, got):
    kh, kw = _pair(kernel)
    b = c_out if bias else 0
    if got == c_out * c_in * kh * kw + b and groups > 1:
        return " Hint: with groups=g each filter sees only c_in / g input channels."
    if groups > 1 and got == c_out * c_in * kh * kw // (groups * groups) + b:
        return " Hint: groups divides the input channels each filter sees, not the number of filters as well."
    if got == c_out * (c_in // groups) * kh * kw + (c_out if not bias else 0):
        return " Hint: there is one bias per output channel when bias=True and none when bias=False."
    if kh != kw and got in (c_out * (c_in // groups) * kh * kh + b, c_out * (c_in // groups) * kw * kw + b):
        return " Hint: a (kh, kw) kernel has kh * kw taps."
    return ""


def _check_q1(conv_params, cases):
    for c_in, c_out, kernel, groups, bias in cases:
        want = sum(p.numel() for p in _layer(c_in, c_out, kernel, groups, bias).parameters())
        got = call(conv_params, c_in, c_out, kernel, groups=groups, bias=bias)
        _expect_int(got, want, _desc("conv_params", c_in, c_out, kernel, groups=groups, bias=bias),
                    _q1_hint(c_in, c_out, kernel, groups, bias, got) if isinstance(got, int) else "")


@q1.test("the chapter's layers: 64 -> 128 channels 3x3, depthwise 3x3, pointwise 1x1", points=1)
def _(conv_params):
    _check_q1(conv_params, [(64, 128, 3, 1, True), (64, 64, 3, 64, False), (64, 128, 1, 1, False),
                            (3, 96, 11, 1, True)])


@q1.test("random channels, groups and rectangular kernels", points=1)
def _(conv_params):
    g = rng()
    cases = []
    for _ in range(5):
        groups = randint(g, 1, 6)
        kernel = (randint(g, 1, 7), randint(g, 1, 7)) if randint(g, 0, 1) else randint(g, 1, 7)
        cases.append((groups * randint(g, 1, 9), groups * randint(g, 1, 9), kernel, groups, bool(randint(g, 0, 1))))
    cases.append((2 * randint(g, 1, 4), 3 * randint(g, 1, 4), (1, 3), 1, True))   # always one non-square kernel
    cases.append((4, 8, (5, 2), 2, False))
    _check_q1(conv_params, cases)


@q1.test("groups that do not divide the channels raise ValueError", points=1)
def _(conv_params):
    g = rng()
    c = 4 * randint(g, 1, 5)
    for c_in, c_out, groups in [(c, c + 2, 4), (c + 1, c, 4), (6, 9, 4)]:
        desc = _desc("conv_params", c_in, c_out, 3, groups=groups)
        try:
            got = call(conv_params, c_in, c_out, 3, groups=groups)
        except LearnerError as exc:
            if exc.error.type_name == "ValueError":
                continue
            raise CheckFailed(f"{desc} raised {exc.error.type_name}: {exc.error.message}; raise a ValueError "
                              "instead.") from None
        raise CheckFailed(f"{desc} returned {got!r}; nn.Conv2d refuses groups that do not divide both channel "
                          "counts: raise ValueError with a message that says so.")


# ------------------------------------------------------------------ q2: multiply-accumulates of a conv layer

q2 = EXERCISE.question("q2", "conv_macs", title="Multiply-accumulates of a convolution layer", forbid=_NO_LAYER)


def _macs_ref(c_in, c_out, kernel, h, w, stride, padding, dilation, groups):
    layer = _layer(c_in, c_out, kernel, groups, True, stride=stride, padding=padding, dilation=dilation)
    with FlopCounterMode(display=False) as counter:
        layer(torch.empty(1, c_in, h, w, device="meta"))
    return counter.get_total_flops() // 2


def _out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _q2_hint(args, got):
    c_in, c_out, kernel, h, w, stride, padding, dilation, groups = args
    k = kernel
    per = c_out * (c_in // groups) * k * k
    if got == per * _out(h, k, stride, padding, 1) * _out(w, k, stride, padding, 1) and dilation > 1:
        return " Hint: a dilated kernel spans d * (k - 1) + 1 pixels."
    if got == per * _out(h, k, 1, padding, dilation) * _out(w, k, 1, padding, dilation) and stride > 1:
        return " Hint: with stride s the kernel visits only every s-th position: divide (rounding down), then + 1."
    if got == c_out * c_in * k * k * _out(h, k, stride, padding, dilation) * _out(w, k, stride, padding, dilation):
        return " Hint: with groups each output value sums over only c_in / groups channels."
    if got == (per + c_out) * _out(h, k, stride, padding, dilation) * _out(w, k, stride, padding, dilation):
        return " Hint: the bias is an addition, not a multiply-accumulate."
    return ""


def _check_q2(conv_macs, cases):
    for args in cases:
        c_in, c_out, kernel, h, w, stride, padding, dilation, groups = args
        want = _macs_ref(*args)
        got = call(conv_macs, c_in, c_out, kernel, h, w, stride=stride, padding=padding, dilation=dilation,
                   groups=groups)
        desc = _desc("conv_macs", c_in, c_out, kernel, h, w, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)
        _expect_int(got, want, desc, _q2_hint(args, got) if isinstance(got, int) else "")


@q2.test("the chapter's layer, AlexNet's first layer, a depthwise layer", points=1)
def _(conv_macs):
    _check_q2(conv_macs, [(64, 128, 3, 56, 56, 1, 1, 1, 1), (3, 64, 11, 224, 224, 4, 2, 1, 1),
                          (32, 32, 3, 112, 112, 2, 1, 1, 32)])


@q2.test("random sizes with stride, padding and remainders", points=1)
def _(conv_macs):
    g = rng()
    cases = []
    for _ in range(5):
        k = randint(g, 1, 5)
        groups = randint(g, 1, 4)
        cases.append((groups * randint(g, 1, 6), groups * randint(g, 1, 6), k, randint(g, k, 40),
                      randint(g, k, 40), randint(g, 1, 4), randint(g, 0, 2), 1, groups))
    _check_q2(conv_macs, cases)


@q2.test("dilation, non-square images, a kernel as large as the padded input", points=1)
def _(conv_macs):
    g = rng()
    d = randint(g, 2, 3)
    cases = [(4, 6, 3, 9 + randint(g, 0, 9), 20 + randint(g, 0, 9), randint(g, 1, 3), 0, d, 2),
             (5, 5, 3, 17, 11, 2, 1, 2, 5), (2, 3, 5, 3, 3, 1, 1, 1, 1)]
    _check_q2(conv_macs, cases)


# ------------------------------------------------------------------ q3: depthwise-separable convolution by hand

q3 = EXERCISE.question("q3", "depthwise_separable", title="A depthwise-separable convolution without conv2d",
                       forbid=_NO_CONV)


def _dsep_ref(x, w_dw, w_pw, padding):
    dw = F.conv2d(x, w_dw, padding=padding, groups=x.shape[1])
    return F.conv2d(dw, w_pw)


def _q3_hint(x, w_dw, w_pw, padding):
    def hint(got):
        if not isinstance(got, torch.Tensor):
            return None
        if padding and got.shape[-2:] == _dsep_ref(x, w_dw, w_pw, 0).shape[-2:]:
            return f"the output is too small: pad the input by {padding} on every side first."
        full = F.conv2d(F.conv2d(x, w_dw.expand(-1, x.shape[1], -1, -1), padding=padding), w_pw) \
            if w_pw.shape[1] == w_dw.shape[0] else None
        if full is not None and got.shape == full.shape and torch.allclose(got.double(), full.double(), atol=1e-6):
            return "each depthwise kernel must see only its own channel: no sum over channels in the first step."
        return None
    return hint


def _check_q3(fn, cases):
    for x, w_dw, w_pw, padding in cases:
        expect_call(fn, x, w_dw, w_pw, padding, expected=_dsep_ref(x, w_dw, w_pw, padding),
                    hint=_q3_hint(x, w_dw, w_pw, padding))


def _randn(g, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


@q3.test("a batch of two 3-channel images, 3x3 kernels, padding 1", points=1)
def _(depthwise_separable):
    g = torch.Generator().manual_seed(11)
    x = _randn(g, 2, 3, 6, 7, dtype=torch.float32)
    _check_q3(depthwise_separable, [(x, _randn(g, 3, 1, 3, 3, dtype=torch.float32),
                                     _randn(g, 4, 3, 1, 1, dtype=torch.float32), 1)])


@q3.test("random sizes, rectangular kernels, float64", points=1)
def _(depthwise_separable):
    g = rng()
    cases = []
    for _ in range(3):
        c, kh, kw = randint(g, 1, 5), randint(g, 1, 4), randint(g, 1, 4)
        pad = randint(g, 0, 2)
        x = _randn(g, randint(g, 1, 3), c, randint(g, kh, 9), randint(g, kw, 9))
        cases.append((x, _randn(g, c, 1, kh, kw), _randn(g, randint(g, 1, 6), c, 1, 1), pad))
    _check_q3(depthwise_separable, cases)


@q3.test("no padding, 1x1 depthwise kernels, one output channel", points=1)
def _(depthwise_separable):
    g = rng()
    c = randint(g, 2, 6)
    x = _randn(g, 3, c, 5, 8)
    cases = [(x, _randn(g, c, 1, 3, 3), _randn(g, 5, c, 1, 1), 0),
             (x, _randn(g, c, 1, 1, 1), _randn(g, 1, c, 1, 1), 0),
             (x.float(), _randn(g, c, 1, 5, 5, dtype=torch.float32), _randn(g, 2, c, 1, 1, dtype=torch.float32), 2)]
    _check_q3(depthwise_separable, cases)


@q3.test("works on the input's device", points=1)
def _(depthwise_separable):
    g = rng()
    expect_device(depthwise_separable, _randn(g, 2, 3, 6, 5), _randn(g, 3, 1, 3, 3), _randn(g, 4, 3, 1, 1), 1)


# ------------------------------------------------------------------ q4: a ViT's patch embedding by reshaping

q4 = EXERCISE.question("q4", "patch_embed", title="A ViT's patch embedding by reshaping",
                       forbid={**_NO_CONV, "torch.nn.functional.unfold": "reshape and permute instead",
                               "torch.nn.Unfold": "", "aten.im2col": ""})


def _patch_ref(x, weight, bias, patch):
    return F.conv2d(x, weight, bias, stride=patch).flatten(2).transpose(1, 2)


def _q4_hint(x, weight, bias, patch):
    want = _patch_ref(x, weight, bias, patch)

    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return None
        g = got.detach().double()
        b, n, d = want.shape
        hp, wp = x.shape[2] // patch, x.shape[3] // patch
        swapped = want.double().reshape(b, hp, wp, d).transpose(1, 2).reshape(b, n, d)
        if hp != wp and torch.allclose(g, swapped, atol=1e-6):
            return "the tokens come column by column; number the patches row by row (left to right, top to bottom)."
        if torch.allclose(g, want.double() - bias.double(), atol=1e-6):
            return "add the bias, one per embedding dimension."
        return None
    return hint


def _check_q4(fn, cases):
    for x, weight, bias, patch in cases:
        expect_call(fn, x, weight, bias, patch, expected=_patch_ref(x, weight, bias, patch),
                    hint=_q4_hint(x, weight, bias, patch))


@q4.test("two 3-channel 8x12 images, 4x4 patches, 5-dim tokens", points=1)
def _(patch_embed):
    g = torch.Generator().manual_seed(5)
    _check_q4(patch_embed, [(_randn(g, 2, 3, 8, 12, dtype=torch.float32),
                             _randn(g, 5, 3, 4, 4, dtype=torch.float32), _randn(g, 5, dtype=torch.float32), 4)])


@q4.test("random sizes and patch sizes, float64", points=1)
def _(patch_embed):
    g = rng()
    cases = []
    for _ in range(3):
        p, c = randint(g, 1, 5), randint(g, 1, 4)
        x = _randn(g, randint(g, 1, 3), c, p * randint(g, 1, 4), p * randint(g, 1, 4))
        d = randint(g, 1, 7)
        cases.append((x, _randn(g, d, c, p, p), _randn(g, d), p))
    _check_q4(patch_embed, cases)


@q4.test("sizes that are not multiples of the patch (the conv drops the rest)", points=1)
def _(patch_embed):
    g = rng()
    p = randint(g, 2, 4)
    x = _randn(g, 2, 2, 3 * p + randint(g, 1, p - 1), 2 * p + randint(g, 1, p - 1))
    cases = [(x, _randn(g, 3, 2, p, p), _randn(g, 3), p),
             (_randn(g, 1, 3, 7, 5), _randn(g, 4, 3, 5, 5), _randn(g, 4), 5)]
    _check_q4(patch_embed, cases)


@q4.test("works on the input's device", points=1)
def _(patch_embed):
    g = rng()
    expect_device(patch_embed, _randn(g, 2, 3, 8, 8), _randn(g, 6, 3, 4, 4), _randn(g, 6), 4)
