"""Grader tests for ``exercises/source/09_gans.ipynb`` (chapter 9: generative adversarial networks).

Expected values come from PyTorch (``F.binary_cross_entropy_with_logits``, autograd, ``F.conv_transpose2d``,
``torch.softmax``) computed in float64. Each question checks fixed teaching cases and cases drawn at random for
every grading run (``rng``), in float32 and float64, and on the ``meta`` device.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnkit.grading import CheckFailed, Exercise, count_steps, expect_call, expect_device, randint, rng

EXERCISE = Exercise("09_gans", title="Generative adversarial networks")

NO_LIBRARY_LOSS = {
    "torch.nn.functional.binary_cross_entropy_with_logits": "write the log-sum-exp form yourself",
    "torch.nn.functional.binary_cross_entropy": "work from the logits",
    "torch.nn.functional.logsigmoid": "write the log-sum-exp form yourself",
    "torch.nn.functional.softplus": "write log(1 + exp(x)) in a stable form yourself",
    "torch.nn.BCEWithLogitsLoss": "", "torch.nn.BCELoss": "", "torch.nn.Softplus": "", "torch.nn.LogSigmoid": "",
    "torch.logaddexp": "write the log-sum-exp trick yourself",
    "aten.softplus": "", "aten.log_sigmoid_forward": "", "aten.binary_cross_entropy_with_logits": "",
    "aten.logaddexp": "",
    "cnnkit.gan": "write it yourself rather than calling the chapter's helpers",
}


def _rand(g: torch.Generator, *shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=dtype)


def _randn(g: torch.Generator, *shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------ q1: losses from logits, stably

q1 = EXERCISE.question("q1", "gan_losses", title="The GAN losses from logits, without overflow",
                       forbid=NO_LIBRARY_LOSS)


def _losses_ref(real, fake):
    r, f = real.double(), fake.double()
    d = F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + \
        F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    g = F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
    return d.to(real.dtype), g.to(real.dtype)


def _q1_hint(real, fake):
    def hint(got):
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            return None
        d, g = (t.detach().double() for t in got)
        if not (torch.isfinite(d) and torch.isfinite(g)):
            return ("a loss came back inf or nan: log(sigmoid(x)) or log(1 + exp(x)) overflows for large |x|. "
                    "Use log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)), whose exp never exceeds 1.")
        f = fake.double()
        minimax = torch.log1p(-torch.sigmoid(f)).mean()
        if torch.isfinite(minimax) and torch.allclose(g, minimax, atol=1e-5):
            return ("your generator loss is the minimax one, mean log(1 - D(G(z))); the question asks for the "
                    "non-saturating loss, -mean log D(G(z)).")
        _, g_ref = _losses_ref(real, fake)
        if torch.allclose(g, g_ref.double() * len(fake), atol=1e-4) and len(fake) > 1:
            return "average over the batch (mean), don't sum."
        return None
    return hint


def _check_q1(gan_losses, cases):
    for real, fake in cases:
        expect_call(gan_losses, real, fake, expected=_losses_ref(real, fake), hint=_q1_hint(real, fake))


@q1.test("small logits, a discriminator that is unsure", points=1)
def _(gan_losses):
    _check_q1(gan_losses, [(torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5, 0.3]))])


@q1.test("very large logits (a confident D) stay finite, float64, random batches", points=1)
def _(gan_losses):
    g = rng()
    big = torch.tensor([-200.0, 150.0, 1000.0, -1000.0])
    cases = [(big, -big), (big.double(), big.flip(0).double()),
             (_randn(g, randint(g, 1, 9)) * 30, _randn(g, randint(g, 1, 9)) * 30),
             (_randn(g, randint(g, 2, 6), dtype=torch.float32) * 5, _randn(g, 3, dtype=torch.float32) * 5)]
    _check_q1(gan_losses, cases)


@q1.test("works on the input's device", points=1)
def _(gan_losses):
    g = rng()
    expect_device(gan_losses, _randn(g, 5, dtype=torch.float32), _randn(g, 7, dtype=torch.float32))


# ------------------------------------------------------------------ q2: generator gradients by hand

q2 = EXERCISE.question("q2", "generator_logit_grads", title="The generator's gradients at the logit, by hand",
                       forbid={"autograd": "derive the derivatives with the chain rule on paper",
                               "torch.func": "", "cnnkit.gan": ""})


def _grads_ref(logits):
    x = logits.detach().double().clone().requires_grad_(True)
    cols = []
    for loss_fn in (lambda p: torch.log1p(-p), lambda p: -torch.log(p), lambda p: 0.5 * (p - 1) ** 2):
        (gr,) = torch.autograd.grad(loss_fn(torch.sigmoid(x)).sum(), x)
        cols.append(gr)
    out = torch.stack(cols, dim=1)
    # at |logit| of a few hundred log(p) is -inf in float64 too: the limits are known in closed form
    s = torch.sigmoid(logits.double())
    exact = torch.stack([-s, s - 1, (s - 1) * s * (1 - s)], dim=1)
    out = torch.where(torch.isfinite(out), out, exact)
    return out.to(logits.dtype)


def _q2_hint(logits):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != (len(logits), 3):
            return None
        g = got.detach().double()
        s = torch.sigmoid(logits.double())
        if torch.allclose(g[:, 0], s, atol=1e-6):
            return "column 0 has the wrong sign: d/dl log(1 - sigmoid(l)) = -sigmoid(l)."
        if torch.allclose(g[:, 1], -1 / s, atol=1e-6, rtol=1e-4):
            return ("column 1 is the derivative with respect to D = sigmoid(l), not the logit: multiply by "
                    "dD/dl = sigmoid(l)(1 - sigmoid(l)).")
        if torch.allclose(g[:, 2], s - 1, atol=1e-6):
            return ("column 2 forgot the chain rule through the sigmoid: d/dl of (D - 1)^2 / 2 is "
                    "(D - 1) * dD/dl.")
        return None
    return hint


def _check_q2(fn, cases):
    for logits in cases:
        expect_call(fn, logits, expected=_grads_ref(logits), hint=_q2_hint(logits), atol=1e-6)


@q2.test("five logits from a confident rejection to a confident acceptance", points=1)
def _(generator_logit_grads):
    _check_q2(generator_logit_grads, [torch.tensor([-6.0, -2.0, 0.0, 1.0, 4.0])])


@q2.test("random logits, float64, extreme logits stay finite", points=1)
def _(generator_logit_grads):
    g = rng()
    _check_q2(generator_logit_grads, [_randn(g, randint(g, 1, 12)) * 4,
                                      _randn(g, randint(g, 2, 7), dtype=torch.float32) * 2,
                                      torch.tensor([-500.0, -40.0, 40.0, 500.0])])


@q2.test("works on the input's device", points=1)
def _(generator_logit_grads):
    expect_device(generator_logit_grads, _randn(rng(), 6, dtype=torch.float32))


# ------------------------------------------------------------------ q3: a transposed convolution by hand

q3 = EXERCISE.question("q3", "conv_transpose2d", title="A transposed convolution by scatter-adding the kernel",
                       forbid={"torch.nn.functional.conv_transpose2d": "scatter-add the kernel yourself",
                               "torch.nn.ConvTranspose2d": "", "torch.nn.functional.conv2d": "",
                               "torch.nn.functional.fold": "scatter-add with slices instead",
                               "torch.nn.Fold": "", "aten.col2im": "", "aten.convolution": "",
                               "autograd": "", "cnnkit.ops": "", "cnnkit.gan": ""})


def _ct_ref(x, w, stride, padding):
    return F.conv_transpose2d(x.double(), w.double(), stride=stride, padding=padding).to(x.dtype)


def _q3_hint(x, w, stride, padding):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.dim() != 4:
            return None
        k, h = w.shape[-1], x.shape[-2]
        full = (h - 1) * stride + k
        if padding and got.shape[-2] == full:
            return (f"padding={padding} crops {padding} rows and columns from each side of the full "
                    f"{full}-pixel output: out = full[..., p:-p, p:-p].")
        if got.shape[1] == w.shape[0] and w.shape[0] != w.shape[1]:
            return "the weight is (C_in, C_out, k, k) for a transposed convolution: output channels are dim 1."
        return None
    return hint


def _check_q3(fn, cases):
    for x, w, stride, padding in cases:
        expect_call(fn, x, w, stride, padding, expected=_ct_ref(x, w, stride, padding),
                    hint=_q3_hint(x, w, stride, padding))


@q3.test("one channel, a 2x2 input, a 3x3 kernel, stride 2", points=1)
def _(conv_transpose2d):
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = torch.arange(9.0).reshape(1, 1, 3, 3)
    _check_q3(conv_transpose2d, [(x, w, 2, 0), (x, w, 1, 0)])


@q3.test("random shapes: channels, non-square inputs, strides 1-3, padding, float64", points=1)
def _(conv_transpose2d):
    g = rng()
    cases = []
    for dtype in (torch.float64, torch.float32, torch.float64):
        b, ci, co = randint(g, 1, 3), randint(g, 1, 4), randint(g, 1, 4)
        k, s = randint(g, 1, 4), randint(g, 1, 3)
        x = _randn(g, b, ci, randint(g, 1, 6), randint(g, 1, 6), dtype=dtype)
        cases.append((x, _randn(g, ci, co, k, k, dtype=dtype), s, randint(g, 0, (k - 1) // 2)))
    _check_q3(conv_transpose2d, cases)


@q3.test("the generator's layer: 4x4 kernel, stride 2, padding 1 doubles the size", points=1)
def _(conv_transpose2d):
    g = rng()
    x = _randn(g, 2, 3, 7, 5, dtype=torch.float32)
    _check_q3(conv_transpose2d, [(x, _randn(g, 3, 2, 4, 4, dtype=torch.float32), 2, 1)])


@q3.test("no loop over the input's pixels", points=1)
def _(conv_transpose2d):
    g = rng()
    w = _randn(g, 2, 3, 3, 3)
    steps = {}
    for n in (3, 24):
        x = _randn(g, 1, 2, n, n)
        got, steps[n] = count_steps(conv_transpose2d, x, w, 2, 0)
        if not (isinstance(got, torch.Tensor) and torch.allclose(got, _ct_ref(x, w, 2, 0), atol=1e-6)):
            raise CheckFailed(f"wrong result for a {n}x{n} input; pass the other tests first.")
    if steps[24] > steps[3] * 1.5 + 20:
        raise CheckFailed(f"your function takes {steps[3]} Python steps for a 3x3 input and {steps[24]} for "
                          "24x24, so it loops over pixels. Loop over the k*k kernel positions instead and add "
                          "each one's contribution to a strided slice of the output for all pixels at once.")


@q3.test("works on the input's device", points=1)
def _(conv_transpose2d):
    g = rng()
    expect_device(conv_transpose2d, _randn(g, 2, 3, 5, 4, dtype=torch.float32),
                  _randn(g, 3, 2, 4, 4, dtype=torch.float32), 2, 1)


# ------------------------------------------------------------------ q4: the digit score from logits

q4 = EXERCISE.question("q4", "digit_score", title="Confident share and class coverage from classifier logits",
                       forbid={"torch.softmax": "write the softmax yourself (subtract the row maximum)",
                               "torch.nn.functional.softmax": "", "torch.nn.Softmax": "",
                               "torch.nn.functional.log_softmax": "", "torch.log_softmax": "",
                               "torch.nn.LogSoftmax": "", "torch.special": "", "torch.bincount": "",
                               "torch.histc": "", "numpy.bincount": "stay in torch",
                               "cnnkit.gan": ""})


def _score_ref(logits, threshold):
    p = torch.softmax(logits.double(), dim=1)
    top, label = p.max(dim=1)
    keep = top >= threshold
    counts = torch.zeros(logits.shape[1], dtype=torch.float64)
    counts.index_add_(0, label[keep], torch.ones(int(keep.sum()), dtype=torch.float64))
    share = counts / counts.sum().clamp(min=1)
    logs = torch.where(share > 0, share.log(), torch.zeros_like(share))
    entropy = -(share * logs).sum()
    out = torch.cat([keep.double().mean().reshape(1), (counts > 0).double().sum().reshape(1),
                     entropy.reshape(1)])
    return out.to(logits.dtype)


def _q4_hint(logits, threshold):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != (3,):
            return None
        g = got.detach().double()
        if not torch.isfinite(g).all():
            return ("nan or inf: exp of a large logit overflows (subtract each row's maximum first), and "
                    "0 * log 0 must count as 0 in the entropy.")
        p = torch.softmax(logits.double(), 1)
        top, label = p.max(1)
        keep = top >= threshold
        if keep.any() and abs(g[1] - len(torch.unique(label))) < 1e-6 and len(torch.unique(label)) != \
                len(torch.unique(label[keep])):
            return "count only the classes of confident images (top probability >= threshold)."
        ent_all = -(p.mean(0) * p.mean(0).clamp(min=1e-300).log()).sum()
        if abs(g[2] - ent_all) < 1e-6:
            return ("the entropy is that of the confident images' *predicted classes* (a histogram), not of "
                    "the averaged probabilities.")
        if keep.any() and abs(g[2] - math.log(max(1, int(keep.sum())))) < 1e-9 and int(keep.sum()) > 1:
            return "normalise the class counts to shares (divide by the number of confident images)."
        return None
    return hint


def _check_q4(fn, cases):
    for logits, threshold in cases:
        expect_call(fn, logits, threshold, expected=_score_ref(logits, threshold),
                    hint=_q4_hint(logits, threshold), atol=1e-6)


@q4.test("six images, three classes", points=1)
def _(digit_score):
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 4.0, 0.0], [1.0, 1.0, 0.0],
                           [6.0, 1.0, 0.0], [0.0, 0.5, 0.2], [0.0, 0.0, 3.0]])
    _check_q4(digit_score, [(logits, 0.9), (logits, 0.5)])


@q4.test("random batches of 10 classes, float64, huge logits, no confident image", points=1)
def _(digit_score):
    g = rng()
    n = randint(g, 5, 40)
    cases = [(_randn(g, n, 10) * 4, 0.9),
             (_randn(g, randint(g, 2, 9), 10, dtype=torch.float32) * 6, 0.8),
             (torch.tensor([[800.0, 0.0, -3.0], [0.0, 900.0, 0.0], [700.0, 0.0, 0.0]]), 0.9),
             (torch.zeros(4, 10, dtype=torch.float64), 0.9),
             (_randn(g, n, 10) * 3, 0.0)]
    _check_q4(digit_score, cases)


@q4.test("one class only: entropy 0 (a collapsed generator)", points=1)
def _(digit_score):
    g = rng()
    n = randint(g, 2, 20)
    logits = _randn(g, n, 10) * 0.1
    logits[:, randint(g, 0, 9)] += 10
    _check_q4(digit_score, [(logits, 0.9)])


@q4.test("works on the input's device", points=1)
def _(digit_score):
    expect_device(digit_score, _randn(rng(), 8, 10, dtype=torch.float32), 0.9)
