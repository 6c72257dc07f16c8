"""The grader's guard (cnnkit/checks/guard.py): forbidden calls are caught however they are reached, loops
are counted whatever they are written in, the device check works without a GPU, outcomes travel safely, and
the randomised cases change with the seed."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.functional import conv2d as imported_conv2d
from torch.nn.functional import pad as imported_pad

import cnnkit.ops
from cnnkit.checks import CheckFailed, count_steps, expect_device, rng
from cnnkit.checks.guard import Outcome, Rules, execute
from cnnkit.grading import Exercise, expect_call, run_question

CONV_RULES = Rules("q", {"torch.nn.functional.conv2d": "slide the window yourself", "torch.nn.Conv2d": "",
                         "cnnkit.ops": "", "autograd": ""})
X, W = torch.randn(1, 1, 6, 7), torch.randn(1, 1, 3, 3)

SHORTCUTS = {
    "F.conv2d": lambda x, w: F.conv2d(x, w),
    "imported by name": lambda x, w: imported_conv2d(x, w),
    "torch.conv2d": lambda x, w: torch.conv2d(x, w),
    "torch.ops.aten": lambda x, w: torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False,
                                                              [0, 0], 1),
    "an nn.Conv2d": lambda x, w: nn.Conv2d(1, 1, 3, bias=False)(x),
    "cnnkit.ops": lambda x, w: cnnkit.ops.conv2d(x, w),
    "autograd.grad": lambda x, w: torch.autograd.grad((x.requires_grad_() * 2).sum(), x)[0],
    ".backward()": lambda x, w: (lambda y: (y.sum().backward(), y.detach())[1])(x.requires_grad_() * 2),
    "a caught forbidden call": lambda x, w: _swallowed(x, w),
}


def _swallowed(x, w):
    try:
        F.conv2d(x, w)
    except Exception:  # noqa: BLE001 - hiding the call must not help
        pass
    return x


@pytest.mark.parametrize("name", list(SHORTCUTS))
def test_forbidden_calls_are_caught_however_reached(name):
    outcome = execute(SHORTCUTS[name], (X, W), {}, CONV_RULES)
    assert outcome.violations, f"{name} was not caught"
    assert "forbids" in outcome.violations[0]


def test_allowed_code_is_not_flagged_and_advice_is_shown():
    unfold = lambda x, w: (F.unfold(x, 3).transpose(1, 2) @ w.reshape(1, -1).T)  # noqa: E731
    assert execute(unfold, (X, W), {}, CONV_RULES).violations == []
    message = execute(SHORTCUTS["F.conv2d"], (X, W), {}, CONV_RULES).violations[0]
    assert "torch.nn.functional.conv2d" in message and "slide the window yourself" in message


def test_numpy_and_padding_shortcuts_are_caught():
    rules = Rules("q", {"numpy.pad": "", "torch.nn.functional.pad": ""})
    by_numpy = lambda x: torch.from_numpy(np.pad(x.numpy(), 1, mode="reflect"))  # noqa: E731
    by_name = lambda x: imported_pad(x, (1, 1, 1, 1), mode="reflect")  # noqa: E731
    by_module = lambda x: nn.ReflectionPad2d(1)(x)  # noqa: E731
    by_hand = lambda x: torch.cat([x[..., 1:2], x, x[..., -2:-1]], -1)  # noqa: E731
    for fn in (by_numpy, by_name, by_module):
        assert execute(fn, (X,), {}, rules).violations
    assert execute(by_hand, (X,), {}, rules).violations == []


def _loops_numpy(img):
    a = img.numpy()
    out = np.zeros((a.shape[0] - 2, a.shape[1] - 2), dtype=a.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = a[i:i + 3, j:j + 3].sum()
    return torch.from_numpy(out)


def _loops_torch(img):
    out = img.new_zeros(img.shape[0] - 2, img.shape[1] - 2)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = img[i:i + 3, j:j + 3].sum()
    return out


def _vectorised(img):
    return F.avg_pool2d(img[None, None], 3, 1)[0, 0] * 9


def _taps(img):  # a loop over the 3x3 kernel taps, not over positions: constant in the image size
    h, w = img.shape[0] - 2, img.shape[1] - 2
    return sum(img[di:di + h, dj:dj + w] for di in range(3) for dj in range(3))


@pytest.mark.parametrize("fn,loops", [(_loops_numpy, True), (_loops_torch, True), (_vectorised, False),
                                      (_taps, False)])
def test_steps_grow_with_the_input_only_for_loops_over_positions(fn, loops):
    small = execute(fn, (torch.randn(8, 8),), {}, Rules(count_steps=True)).steps
    large = execute(fn, (torch.randn(24, 24),), {}, Rules(count_steps=True)).steps
    assert (large > 2 * small) == loops, (small, large)


def test_count_steps_helper_returns_result_and_steps():
    result, steps = count_steps(_loops_numpy, torch.ones(5, 5))
    assert torch.equal(result, torch.full((3, 3), 9.0)) and steps > 9


def test_in_place_changes_are_reported():
    outcome = execute(lambda x: x.add_(1), (X.clone(),), {}, Rules())
    assert outcome.mutated and "argument 1" in outcome.mutated[0]


def test_device_check_catches_cpu_tensors_and_numpy():
    good = lambda x: x.new_zeros(2) + x.sum()  # noqa: E731
    cpu_zeros = lambda x: torch.zeros(2) + 0 * x.sum()  # noqa: E731
    numpy = lambda x: torch.from_numpy(x.numpy() * 2)  # noqa: E731
    assert expect_device(good, X).device.type == "meta"
    for fn in (cpu_zeros, numpy):
        with pytest.raises(CheckFailed, match="meta"):
            expect_device(fn, X)


def test_outcome_travels_through_weights_only_loading():
    value = (torch.arange(3), np.arange(4.0), [1, 2.5, "a", None], {"k": torch.ones(1)}, torch.ones(2, device="meta"),
             nn.Linear(1, 1))
    outcome = execute(lambda: value, (), {}, Rules())
    buffer = io.BytesIO()
    torch.save(outcome.to_wire(), buffer)
    buffer.seek(0)
    back = Outcome.from_wire(torch.load(buffer, weights_only=True))
    t, arr, lst, dct, meta, opaque = back.result
    assert torch.equal(t, torch.arange(3)) and isinstance(arr, np.ndarray) and arr.tolist() == [0, 1, 2, 3]
    assert lst == [1, 2.5, "a", None] and torch.equal(dct["k"], torch.ones(1)) and meta.device.type == "meta"
    assert "Linear" in repr(opaque)
    err = execute(lambda: 1 / 0, (), {}, Rules())
    assert Outcome.from_wire(err.to_wire()).error.type_name == "ZeroDivisionError"


def test_randomised_cases_depend_on_the_seed_and_repeat_with_it():
    ex = Exercise("99_demo")
    q = ex.question("q1", "f", forbid={"torch.nn.functional.conv2d": ""})
    drawn = []

    @q.test("draw")
    def _(f):
        drawn.append(torch.randint(0, 10**6, (1,), generator=rng()).item())

    for seed in (1, 1, 2):
        run_question(ex, "q1", (lambda: None,), seed=seed)
    assert drawn[0] == drawn[1] != drawn[2]


def test_a_question_enforces_its_rules_in_every_test():
    ex = Exercise("99_demo")
    q = ex.question("q1", "conv", forbid={"torch.nn.functional.conv2d": "use unfold"})

    @q.test("values")
    def _(conv):
        expect_call(conv, X, W, expected=F.conv2d(X, W))  # the test itself may use the forbidden function

    cheat = run_question(ex, "q1", (lambda x, w: imported_conv2d(x, w),), seed=0)
    honest = run_question(ex, "q1", (lambda x, w: (F.unfold(x, 3).transpose(1, 2) @ w.reshape(1, -1).T)
                                     .transpose(1, 2).reshape(1, 1, 4, 5),), seed=0)
    assert cheat.points == 0 and "use unfold" in cheat.tests[0].message
    assert honest.points == honest.max_points, honest.tests[0].message


def test_bad_forbid_names_are_rejected():
    with pytest.raises(ValueError, match="forbid names"):
        Exercise("99_demo").question("q1", "f", forbid={"F.conv2d()": ""})
