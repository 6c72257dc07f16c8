"""Grader tests for ``exercises/source/02_padding_stride.ipynb`` (chapter 2: padding and stride).

Expected values come from PyTorch (``F.conv1d``/``F.conv2d`` with ``padding="same"``, ``F.pad``) or from
``cnnkit.ops.receptive_field`` (itself tested against autograd), on inputs made with a seeded generator.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnkit.grading import CheckFailed, Exercise, call, expect_call, expect_equal
from cnnkit.ops import receptive_field

EXERCISE = Exercise("02_padding_stride", title="Padding and stride")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ q1: "same" padding for any stride

q1 = EXERCISE.question("q1", "same_padding", title='"Same" padding for any stride')


def _pad_pair(same_padding, size, kernel, stride, dilation) -> tuple[int, int]:
    got = call(same_padding, size, kernel, stride=stride, dilation=dilation)
    if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, int) for v in got)):
        raise CheckFailed(f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}) returned "
                          f"{got!r}; return a tuple of two ints (before, after).")
    if min(got) < 0:
        raise CheckFailed(f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}) returned {got}: "
                          "padding cannot be negative. When the windows already cover the input, pad 0.")
    return got


@q1.test("stride 1, odd kernels: symmetric", points=1)
def _(same_padding):
    for size, kernel, dilation in [(28, 3, 1), (28, 5, 1), (10, 3, 2), (7, 7, 1), (9, 1, 1)]:
        span = dilation * (kernel - 1) + 1
        expect_call(same_padding, size, kernel, stride=1, dilation=dilation,
                    expected=((span - 1) // 2, (span - 1) // 2),
                    hint="at stride 1 the total padding is span - 1 = dilation*(kernel-1), half on each side.")


@q1.test("stride 1, even spans: like PyTorch's padding='same'", points=1)
def _(same_padding):
    g = _gen(1)
    for size, kernel, dilation in [(9, 4, 1), (12, 2, 1), (10, 6, 1), (11, 4, 3)]:
        before, after = _pad_pair(same_padding, size, kernel, 1, dilation)
        x, w = torch.randn(1, 1, size, generator=g), torch.randn(1, 1, kernel, generator=g)  # (B, C, L), (O, I, k)
        want = F.conv1d(x, w, padding="same", dilation=dilation)                            # (1, 1, size)
        got = F.conv1d(F.pad(x, (before, after)), w, dilation=dilation)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-5):
            raise CheckFailed(
                f"for size={size}, kernel={kernel}, dilation={dilation} you return ({before}, {after}), but "
                f"PyTorch's padding='same' pads {(dilation * (kernel - 1)) // 2} before and "
                f"{dilation * (kernel - 1) - (dilation * (kernel - 1)) // 2} after: the odd pixel goes at the end.")


@q1.test("stride > 1: ceil(size / stride) outputs", points=1)
def _(same_padding):
    for size, kernel, stride, dilation in [(28, 3, 2, 1), (7, 3, 2, 1), (10, 4, 3, 1), (224, 7, 2, 1),
                                           (8, 1, 3, 1), (15, 3, 4, 2), (5, 5, 2, 1)]:
        before, after = _pad_pair(same_padding, size, kernel, stride, dilation)
        span = dilation * (kernel - 1) + 1
        n_out = (size + before + after - span) // stride + 1 if size + before + after >= span else 0
        total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
        if n_out != math.ceil(size / stride):
            raise CheckFailed(
                f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}) = ({before}, {after}) "
                f"gives {n_out} outputs, but 'same' with stride {stride} means ceil({size}/{stride}) = "
                f"{math.ceil(size / stride)}. The last window must start at (out - 1)*stride and still fit.")
        expect_equal((before, after), (total // 2, total - total // 2),
                     where=f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}): the smallest "
                           "total padding, split with the extra pixel after")


# ------------------------------------------------------------------ q2: reflect padding by hand

q2 = EXERCISE.question("q2", "pad_reflect", title="Reflect padding by hand")


def _reflect_hint(x, p):
    symmetric = torch.cat([x[..., :p, :].flip(-2), x, x[..., -p:, :].flip(-2)], dim=-2) if p else x
    symmetric = torch.cat([symmetric[..., :p].flip(-1), symmetric, symmetric[..., -p:].flip(-1)], dim=-1) if p else x

    def hint(got):
        if isinstance(got, torch.Tensor) and got.shape == symmetric.shape and torch.equal(got, symmetric):
            return ("you repeated the edge pixel in the mirror ('symmetric' padding). Reflect mirrors around the "
                    "edge pixel: for a row 1 2 3 4, padding 2 gives 3 2 | 1 2 3 4 | 3 2.")
        return "pad the rows (dim -2) and the columns (dim -1), each with the mirror image of the p pixels next to the edge."
    return hint


def _check_reflect(pad_reflect, shapes, seed, dtype=torch.float32):
    g = _gen(seed)
    for shape, p in shapes:
        x = torch.randn(*shape, generator=g, dtype=dtype)  # (B, C, H, W)
        expect_call(pad_reflect, x, p, expected=F.pad(x, (p, p, p, p), mode="reflect"), hint=_reflect_hint(x, p))


@q2.test("a 1×1×4×5 image, padding 1 and 2", points=1)
def _(pad_reflect):
    _check_reflect(pad_reflect, [((1, 1, 4, 5), 1), ((1, 1, 4, 5), 2)], seed=2)


@q2.test("batches, channels, non-square, padding 0 and 3, float64", points=1)
def _(pad_reflect):
    _check_reflect(pad_reflect, [((2, 3, 6, 9), 3), ((3, 2, 5, 4), 0), ((1, 2, 7, 7), 1)], seed=3,
                   dtype=torch.float64)


@q2.test("without F.pad", points=1)
def _(pad_reflect):
    x = torch.randn(1, 2, 5, 6, generator=_gen(4))
    want = F.pad(x, (2, 2, 2, 2), mode="reflect")
    real_pad = F.pad

    def forbidden(*args, **kwargs):
        raise CheckFailed("pad_reflect called F.pad; build the padding yourself with indexing, flip and cat.")

    F.pad = forbidden
    try:
        got = pad_reflect(x.clone(), 2)
    finally:
        F.pad = real_pad
    if not (isinstance(got, torch.Tensor) and got.shape == want.shape and torch.equal(got, want)):
        raise CheckFailed("the result is wrong on a 1×2×5×6 input with padding 2; pass the other tests first.")


# ------------------------------------------------------------------ q3: receptive field of a stack

q3 = EXERCISE.question("q3", "receptive_field_of", title="Receptive field of a stack")


def _check_rf(receptive_field_of, stacks, hint):
    for layers in stacks:
        rf = receptive_field(layers)
        expect_call(receptive_field_of, [tuple(layer) for layer in layers],
                    expected=(rf.size, rf.jump, float(rf.start)), hint=hint)


@q3.test("stride 1 stacks", points=1)
def _(receptive_field_of):
    _check_rf(receptive_field_of, [[(3, 1, 1, 1)], [(3, 1, 1, 1)] * 4, [(5, 1, 0, 1), (3, 1, 0, 1)],
                                   [(1, 1, 0, 1), (7, 1, 3, 1)]],
              "each layer adds (span - 1) pixels at stride 1; start moves by (span - 1)/2 - padding.")


@q3.test("strides multiply the jump", points=1)
def _(receptive_field_of):
    _check_rf(receptive_field_of, [[(3, 2, 1, 1)] * 4, [(2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1)],
                                   [(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 0, 1)], [(4, 3, 1, 1), (4, 3, 1, 1)]],
              "a layer's kernel steps over its own input, whose neighbouring pixels are 'jump' input pixels "
              "apart: size += (span - 1) * jump, and only then jump *= stride.")


@q3.test("dilation", points=1)
def _(receptive_field_of):
    _check_rf(receptive_field_of, [[(3, 1, d, d) for d in (1, 2, 4, 8)], [(3, 1, 2, 2)] * 3,
                                   [(3, 2, 1, 1), (3, 1, 3, 3), (2, 1, 0, 2)]],
              "a dilated kernel spans dilation*(kernel-1) + 1 pixels of its input.")


# ------------------------------------------------------------------ q4: which input pixels does one output read?

q4 = EXERCISE.question("q4", "input_indices", title="Which input pixels does one output read?")


def _read_by_torch(size, kernel, padding, stride, dilation, i) -> list[int]:
    """Indices j with input[j] feeding output[i], found by pushing one-hot rows through F.conv1d."""
    eye = torch.eye(size, dtype=torch.float64).unsqueeze(1)                                   # (size, 1, size)
    out = F.conv1d(eye, torch.ones(1, 1, kernel, dtype=torch.float64), padding=padding, stride=stride,
                   dilation=dilation)                                                       # (size, 1, L)
    return torch.nonzero(out[:, 0, i]).flatten().tolist()


def _check_indices(input_indices, cases, hint):
    for size, kernel, padding, stride, dilation, i in cases:
        expect_call(input_indices, size, kernel, padding=padding, stride=stride, dilation=dilation, i=i,
                    expected=_read_by_torch(size, kernel, padding, stride, dilation, i), hint=hint)


@q4.test("no padding", points=1)
def _(input_indices):
    _check_indices(input_indices, [(7, 3, 0, 1, 1, 0), (7, 3, 0, 1, 1, 4), (9, 3, 0, 2, 1, 3), (10, 4, 0, 3, 1, 2)],
                   "output i starts reading at i*stride and reads kernel pixels in a row.")


@q4.test("padding: indices outside the image are left out", points=1)
def _(input_indices):
    _check_indices(input_indices, [(7, 3, 1, 1, 1, 0), (7, 3, 1, 1, 1, 6), (8, 5, 2, 2, 1, 0), (5, 5, 4, 1, 1, 1)],
                   "count in the padded input, subtract the padding to get image indices, then drop those < 0 "
                   "or >= size (they read padding).")


@q4.test("dilation", points=1)
def _(input_indices):
    _check_indices(input_indices, [(9, 3, 0, 1, 2, 1), (12, 3, 2, 2, 3, 2), (10, 2, 1, 1, 4, 0)],
                   "with dilation d the taps are d pixels apart.")
