"""Grader tests for ``exercises/source/02_padding_stride.ipynb`` (chapter 2: padding and stride).

Expected values come from PyTorch (``F.conv1d`` with ``padding="same"``, ``F.pad``, one-hot rows pushed through
``F.conv1d``) or from the update rule of the chapter, written here independently of the learner's code. Every
question mixes fixed teaching cases with cases drawn fresh each grading run (``rng``), and covers the edge
cases of the geometry: a padding remainder under a stride (size 10, k 3, p 1, s 3), a strided dilated case that
does not divide evenly (size 10, k 2, s 2, d 2), stacks whose field starts in the padding (negative start).
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from cnnkit.grading import CheckFailed, Exercise, call, expect_call, expect_equal
from cnnkit.checks import expect_device, randint, rng

EXERCISE = Exercise("02_padding_stride", title="Padding and stride")

# The blind spots issue 9 lists: a padding remainder under a stride, a strided dilated case that does not
# divide evenly. (size, kernel, padding, stride, dilation)
REMAINDER = (10, 3, 1, 3, 1)
DILATED_UNEVEN = (10, 2, 0, 2, 2)


# ------------------------------------------------------------------ q1: "same" padding for any stride

q1 = EXERCISE.question(
    "q1", "same_padding", title='"Same" padding for any stride',
    forbid={"cnnkit.ops": "Derive the padding from the output-size formula instead.",
            "aten.convolution": "Do not search by running convolutions: derive the padding from the formula."})


def _same_expected(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    span = dilation * (kernel - 1) + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _same_hint(size, kernel, stride, dilation):
    span = dilation * (kernel - 1) + 1
    before, after = _same_expected(size, kernel, stride, dilation)

    def hint(got):
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            return None
        if tuple(got) == (after, before) and before != after:
            return "the odd pixel goes at the end (after), as in PyTorch's padding='same'."
        if stride > 1 and sum(got) == span - 1 and span - 1 != before + after:
            return ("that is the stride-1 total (span - 1). With a stride, the output has ceil(size/stride) "
                    "pixels; the last window starts at (n_out - 1)*stride and must end inside the padded input.")
        if min(got) < 0:
            return "padding cannot be negative: when the windows already cover the input, the total is 0."
        if (size // stride - 1) * stride + span - size == sum(got) and size % stride:
            return "use ceil(size / stride) outputs, not size // stride."
        return None
    return hint


def _pad_pair(same_padding, size, kernel, stride, dilation) -> tuple[int, int]:
    got = call(same_padding, size, kernel, stride=stride, dilation=dilation)
    if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, int) for v in got)):
        raise CheckFailed(f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}) returned "
                          f"{got!r}; return a tuple of two ints (before, after).")
    if min(got) < 0:
        raise CheckFailed(f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}) returned {got}: "
                          "padding cannot be negative. When the windows already cover the input, pad 0.")
    return got


def _check_same(same_padding, cases):
    for size, kernel, stride, dilation in cases:
        expect_call(same_padding, size, kernel, stride=stride, dilation=dilation,
                    expected=_same_expected(size, kernel, stride, dilation),
                    hint=_same_hint(size, kernel, stride, dilation))


@q1.test("stride 1, odd kernels: symmetric", points=1)
def _(same_padding):
    _check_same(same_padding, [(28, 3, 1, 1), (28, 5, 1, 1), (10, 3, 1, 2), (7, 7, 1, 1), (9, 1, 1, 1)])


@q1.test("stride 1, even spans: like PyTorch's padding='same'", points=1)
def _(same_padding):
    g = rng("even")
    for size, kernel, dilation in [(9, 4, 1), (12, 2, 1), (10, 6, 1), (11, 4, 3)]:
        before, after = _pad_pair(same_padding, size, kernel, 1, dilation)
        x = torch.randn(1, 1, size, generator=g, dtype=torch.float64)       # (B, C, L)
        w = torch.randn(1, 1, kernel, generator=g, dtype=torch.float64)     # (O, I, k)
        with warnings.catch_warnings():  # PyTorch notes that even kernels need a padded copy
            warnings.simplefilter("ignore", UserWarning)
            want = F.conv1d(x, w, padding="same", dilation=dilation)        # (1, 1, size)
        got = F.conv1d(F.pad(x, (before, after)), w, dilation=dilation)
        if got.shape != want.shape or not torch.allclose(got, want):
            total = dilation * (kernel - 1)
            raise CheckFailed(
                f"for size={size}, kernel={kernel}, dilation={dilation} you return ({before}, {after}), but "
                f"PyTorch's padding='same' pads {total // 2} before and {total - total // 2} after: the odd "
                "pixel goes at the end.")


@q1.test("stride > 1: ceil(size / stride) outputs", points=1)
def _(same_padding):
    for size, kernel, stride, dilation in [(28, 3, 2, 1), (7, 3, 2, 1), (10, 4, 3, 1), (224, 7, 2, 1),
                                           (8, 1, 3, 1), (15, 3, 4, 2), (5, 5, 2, 1), (10, 3, 3, 1),
                                           (10, 2, 2, 2)]:
        before, after = _pad_pair(same_padding, size, kernel, stride, dilation)
        span = dilation * (kernel - 1) + 1
        n_out = (size + before + after - span) // stride + 1 if size + before + after >= span else 0
        if n_out != math.ceil(size / stride):
            raise CheckFailed(
                f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}) = ({before}, {after}) "
                f"gives {n_out} outputs, but 'same' with stride {stride} means ceil({size}/{stride}) = "
                f"{math.ceil(size / stride)}. The last window must start at (out - 1)*stride and still fit.")
        expect_equal((before, after), _same_expected(size, kernel, stride, dilation),
                     where=f"same_padding({size}, {kernel}, stride={stride}, dilation={dilation}): the smallest "
                           "total padding, split with the extra pixel after")


@q1.test("random sizes, kernels, strides and dilations", points=1)
def _(same_padding):
    g = rng()
    cases = [(randint(g, 1, 40), randint(g, 1, 7), randint(g, 1, 4), randint(g, 1, 3)) for _ in range(12)]
    _check_same(same_padding, cases)


# ------------------------------------------------------------------ q2: reflect padding by hand

q2 = EXERCISE.question(
    "q2", "pad_reflect", title="Reflect padding by hand",
    forbid={"torch.nn.functional.pad": "Build the padding from slicing, torch.flip and torch.cat.",
            "torch.nn.modules.padding": "Build the padding from slicing, torch.flip and torch.cat.",
            "numpy.pad": "Stay in torch and build the padding from slicing, torch.flip and torch.cat.",
            "cnnkit.ops": ""})


def _reflect_hint(x, p):
    if p == 0:
        return "p = 0 returns the image unchanged (same shape, dtype and values)."
    symmetric = torch.cat([x[..., :p, :].flip(-2), x, x[..., -p:, :].flip(-2)], dim=-2)
    symmetric = torch.cat([symmetric[..., :p].flip(-1), symmetric, symmetric[..., -p:].flip(-1)], dim=-1)
    no_flip = torch.cat([x[..., 1:p + 1, :], x, x[..., -p - 1:-1, :]], dim=-2)
    no_flip = torch.cat([no_flip[..., 1:p + 1], no_flip, no_flip[..., -p - 1:-1]], dim=-1)
    cols_only = torch.cat([x[..., 1:p + 1].flip(-1), x, x[..., -p - 1:-1].flip(-1)], dim=-1)

    def hint(got):
        if not isinstance(got, torch.Tensor) or got.device.type == "meta":
            return None
        if got.shape == symmetric.shape and torch.equal(got.to(x.dtype), symmetric):
            return ("you repeated the edge pixel in the mirror ('symmetric' padding). Reflect mirrors around the "
                    "edge pixel: for a row 1 2 3 4, padding 2 gives 3 2 | 1 2 3 4 | 3 2.")
        if got.shape == no_flip.shape and torch.equal(got.to(x.dtype), no_flip):
            return "the strips next to the edges must be flipped (torch.flip) before they are attached."
        if got.shape == cols_only.shape and torch.equal(got.to(x.dtype), cols_only):
            return "pad the rows (dim -2) as well as the columns (dim -1)."
        return None
    return hint


def _check_reflect(pad_reflect, cases):
    for x, p in cases:
        expect_call(pad_reflect, x, p, expected=F.pad(x, (p, p, p, p), mode="reflect"), hint=_reflect_hint(x, p))


@q2.test("the teaching image 1×1×4×5 (values 0..19), padding 1 and 2", points=1)
def _(pad_reflect):
    x = torch.arange(20.0).view(1, 1, 4, 5)  # (B, C, H, W)
    _check_reflect(pad_reflect, [(x, 1), (x, 2)])


@q2.test("batches, channels, non-square, padding 0 and 3, float64", points=1)
def _(pad_reflect):
    g = rng()
    _check_reflect(pad_reflect, [(torch.randn(2, 3, 6, 9, generator=g, dtype=torch.float64), 3),
                                 (torch.randn(3, 2, 5, 4, generator=g, dtype=torch.float64), 0),
                                 (torch.randn(1, 2, 7, 7, generator=g), 1)])


@q2.test("random shapes and paddings (float32 and float64)", points=1)
def _(pad_reflect):
    g = rng()
    cases = []
    for dtype in (torch.float32, torch.float64, torch.float64):
        h, w = randint(g, 2, 9), randint(g, 2, 9)
        p = randint(g, 1, min(h, w) - 1)
        cases.append((torch.randn(randint(g, 1, 3), randint(g, 1, 3), h, w, generator=g, dtype=dtype), p))
    _check_reflect(pad_reflect, cases)


@q2.test("stays on the input's device", points=1)
def _(pad_reflect):
    expect_device(pad_reflect, torch.randn(2, 3, 5, 6, dtype=torch.float64), 2)


# ------------------------------------------------------------------ q3: the input window of one output pixel

q3 = EXERCISE.question(
    "q3", "pixel_field", title="Where does one output pixel look?",
    forbid={"cnnkit.ops": "Update size, jump and start yourself (cnnkit.ops.receptive_field is what the "
                          "check compares with)."})


def _field(layers, i) -> tuple[int, int]:
    """First and last input coordinate seen by output pixel i: walk the interval [i, i] back to the input."""
    lo = hi = i
    for k, s, p, d in reversed(layers):
        lo, hi = lo * s - p, hi * s - p + d * (k - 1)
    return lo, hi


def _field_variants(layers, i) -> dict[str, tuple[float, float]]:
    """Answers of the common mistakes, for hints that fire only when they match."""
    out = {}
    for name in ("no_jump", "early_jump", "no_padding", "no_dilation"):
        size, jump, start = 1, 1, 0.0
        for k, s, p, d in layers:
            span = (k - 1) + 1 if name == "no_dilation" else d * (k - 1) + 1
            if name == "early_jump":
                jump *= s
            size += (span - 1) * (1 if name == "no_jump" else jump)
            start += ((span - 1) / 2 - (0 if name == "no_padding" else p)) * jump
            if name != "early_jump":
                jump *= s
        first = start + i * jump - (size - 1) / 2
        out[name] = (first, first + size - 1)
    lo, hi = _field(layers, i)
    out["off_by_one"] = (lo, hi + 1)
    if lo < 0:
        out["clamped"] = (0, hi)
    return out


_FIELD_HINTS = {
    "no_jump": "a layer's kernel steps over its own input, whose neighbouring pixels are `jump` input pixels "
               "apart: size += (span - 1) * jump.",
    "early_jump": "use the jump of the layers *below* before multiplying in this layer's stride.",
    "no_padding": "padding shifts every window back: start += ((span - 1) / 2 - padding) * jump.",
    "no_dilation": "a dilated kernel spans dilation * (kernel - 1) + 1 pixels of its input.",
    "off_by_one": "the window holds `size` pixels, so last = first + size - 1.",
    "clamped": "the padding counts: when the field starts in the padding, first is negative.",
}


def _check_field(pixel_field, cases):
    for layers, i in cases:
        want = _field(layers, i)
        got = call(pixel_field, [tuple(layer) for layer in layers], i)
        desc = f"pixel_field({[tuple(layer) for layer in layers]}, {i})"
        ok = (isinstance(got, (tuple, list)) and len(got) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in got)
              and all(math.isclose(g, w) for g, w in zip(got, want)))
        if ok:
            continue
        message = f"`{desc}` returned {got!r}; expected (first, last) = {want}."
        if isinstance(got, (tuple, list)) and len(got) == 2:
            for name, value in _field_variants(layers, i).items():
                if all(isinstance(v, (int, float)) for v in got) and \
                        all(math.isclose(g, v) for g, v in zip(got, value)):
                    message += " Hint: " + _FIELD_HINTS[name]
                    break
        else:
            message += " Return a tuple of two numbers."
        raise CheckFailed(message)


# No device test: the function takes and returns plain Python numbers, no tensors.
@q3.test("stride-1 stacks", points=1)
def _(pixel_field):
    _check_field(pixel_field, [([(3, 1, 1, 1)], 0), ([(3, 1, 1, 1)] * 4, 5), ([(5, 1, 0, 1), (3, 1, 0, 1)], 2),
                               ([(1, 1, 0, 1), (7, 1, 3, 1)], 0)])


@q3.test("strides, dilation, and fields that start in the padding", points=1)
def _(pixel_field):
    _check_field(pixel_field, [([(3, 2, 1, 1)] * 4, 0), ([(3, 2, 1, 1)] * 4, 3),
                               ([(2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1)], 1),
                               ([(3, 1, d, d) for d in (1, 2, 4, 8)], 0),
                               ([(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 0, 1)], 2),
                               ([(3, 1, 4, 1), (3, 3, 2, 2)], 0),        # start -5: deep in the padding
                               ([(4, 3, 1, 1), (4, 3, 1, 1)], 1)])


@q3.test("random stacks and pixels", points=1)
def _(pixel_field):
    g = rng()
    cases = []
    for n in range(8):
        layers = [(randint(g, 1, 5), randint(g, 1, 3), randint(g, 0, 3), randint(g, 1, 3))
                  for _ in range(randint(g, 1, 5))]
        if n < 2:  # force a field that starts in the padding
            k, s, _, d = layers[0]
            layers[0] = (k, s, d * (k - 1) // 2 + randint(g, 1, 3), d)
        cases.append((layers, randint(g, 0, 6)))
    _check_field(pixel_field, cases)


# ------------------------------------------------------------------ q4: which input pixels does one output read?

q4 = EXERCISE.question(
    "q4", "input_indices", title="Which input pixels does one output read?",
    forbid={"aten.convolution": "Work the taps out from the geometry instead of probing a convolution.",
            "torch.nn.functional.unfold": "Work the taps out from the geometry.",
            "cnnkit.ops": "", "cnnkit.widgets": "The explorer computes these taps: work them out yourself."})


def _read_by_torch(size, kernel, padding, stride, dilation, i) -> list[int]:
    """Indices j with input[j] feeding output[i], found by pushing one-hot rows through F.conv1d."""
    eye = torch.eye(size, dtype=torch.float64).unsqueeze(1)                        # (size, 1, size)
    out = F.conv1d(eye, torch.ones(1, 1, kernel, dtype=torch.float64), padding=padding, stride=stride,
                   dilation=dilation)                                            # (size, 1, L)
    return torch.nonzero(out[:, 0, i]).flatten().tolist()


def _indices_hint(size, kernel, padding, stride, dilation, i):
    first = i * stride - padding
    taps = [first + t * dilation for t in range(kernel)]

    def hint(got):
        if not isinstance(got, list):
            return "return a sorted Python list of ints."
        if got == taps:
            return "taps that land in the padding (index < 0 or >= size) read zeros: leave them out."
        if got == [j + padding for j in taps if 0 <= j + padding < size + 2 * padding]:
            return "those are positions in the padded input: subtract the padding to get image indices."
        if got == [j for j in range(first, first + dilation * (kernel - 1) + 1) if 0 <= j < size]:
            return "with dilation d the taps are d pixels apart, with holes between them."
        return None
    return hint


def _check_indices(input_indices, cases):
    for size, kernel, padding, stride, dilation, i in cases:
        expect_call(input_indices, size, kernel, padding=padding, stride=stride, dilation=dilation, i=i,
                    expected=_read_by_torch(size, kernel, padding, stride, dilation, i),
                    hint=_indices_hint(size, kernel, padding, stride, dilation, i))


@q4.test("no padding", points=1)
def _(input_indices):
    _check_indices(input_indices, [(7, 3, 0, 1, 1, 0), (7, 3, 0, 1, 1, 4), (9, 3, 0, 2, 1, 3),
                                   (10, 4, 0, 3, 1, 2)])


@q4.test("padding: indices outside the image are left out", points=1)
def _(input_indices):
    _check_indices(input_indices, [(7, 3, 1, 1, 1, 0), (7, 3, 1, 1, 1, 6), (8, 5, 2, 2, 1, 0),
                                   (5, 5, 4, 1, 1, 1)])


@q4.test("dilation", points=1)
def _(input_indices):
    _check_indices(input_indices, [(9, 3, 0, 1, 2, 1), (12, 3, 2, 2, 3, 2), (10, 2, 1, 1, 4, 0)])


@q4.test("the last output under a stride, and random geometries", points=1)
def _(input_indices):
    cases = []
    for size, kernel, padding, stride, dilation in (REMAINDER, DILATED_UNEVEN):
        n_out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        cases += [(size, kernel, padding, stride, dilation, n_out - 1),
                  (size, kernel, padding, stride, dilation, 0)]
    g = rng()
    while len(cases) < 14:
        size, kernel = randint(g, 1, 16), randint(g, 1, 5)
        padding, stride, dilation = randint(g, 0, 3), randint(g, 1, 4), randint(g, 1, 3)
        span = dilation * (kernel - 1) + 1
        if size + 2 * padding < span:
            continue
        n_out = (size + 2 * padding - span) // stride + 1
        cases.append((size, kernel, padding, stride, dilation, randint(g, 0, n_out - 1)))
    _check_indices(input_indices, cases)
