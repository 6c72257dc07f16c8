"""The proxies of the instructor CLI against one real kernel: a call through the checker comes back as the same
Outcome as in-process; a test's direct call keeps autograd working (backward asks the kernel); the learner's
exceptions keep their type; a replaced runner is named. The package is only read here (never restored)."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnkit import grade_integrity as integrity
from cnnkit import grade_remote as remote
from cnnkit.checks import guard
from cnnkit.grade import KernelSession

ROOT = Path(__file__).resolve().parents[1]

FUNCTIONS = """
import torch, torch.nn.functional as F
def ce(z, y):
    return F.cross_entropy(z, y)
def detached(z, y):
    return ce(z, y).detach()
def todo(*args):
    raise NotImplementedError()
def picky(x):
    raise KeyError('x')
def square(x):
    return x * x
def uses_conv(x, w):
    from torch.nn.functional import conv2d
    return conv2d(x, w)
not_a_function = 42
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    sub = tmp_path_factory.mktemp("sub") / "s.ipynb"
    sub.write_text("{}")
    snap = integrity.Snapshot.take(ROOT / "cnnkit")
    box = integrity.make_sandbox(sub, snap)
    try:
        with KernelSession(box.work, integrity.kernel_env(box), inherit=False) as session:
            rk = remote.RemoteKernel(session, box.calls, "02_padding_stride",
                                     (snap.text("grade_runner.py"), str(box.package / "grade_runner.py")),
                                     (snap.text("checks/guard.py"), str(box.package / "checks" / "guard.py")))
            assert session.run(FUNCTIONS, 120).status == "ok"
            found, run = rk.start(["ce", "detached", "todo", "picky", "square", "uses_conv", "not_a_function",
                                   "missing"])
            assert found == {"ce": None, "detached": None, "todo": None, "picky": None, "square": None,
                             "uses_conv": None, "not_a_function": "42"}, run
            yield rk
    finally:
        box.cleanup()


def test_a_checked_call_is_the_same_outcome_as_in_process(kernel):
    x, w = torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3)
    rules = guard.Rules("q1", {"torch.nn.functional.conv2d": "slide the kernel yourself"})
    got = remote.RemoteFunction(kernel, "uses_conv").__cnnkit_remote__((x, w), {}, rules)
    assert got.violations and "torch.nn.functional.conv2d" in got.violations[0]
    assert torch.allclose(got.result, F.conv2d(x, w))
    todo = remote.RemoteFunction(kernel, "todo").__cnnkit_remote__((x,), {}, guard.Rules())
    assert todo.error.type_name == "NotImplementedError" and todo.error.not_implemented


def test_a_direct_call_keeps_autograd(kernel):
    z, y = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 1])
    loss = remote.RemoteFunction(kernel, "ce")(z, y)
    assert loss.requires_grad
    loss.backward()
    z2 = z.detach().clone().requires_grad_(True)
    F.cross_entropy(z2, y).backward()
    assert torch.allclose(z.grad, z2.grad)
    assert not remote.RemoteFunction(kernel, "detached")(z, y).requires_grad
    x = torch.randn(3, requires_grad=True)
    remote.RemoteFunction(kernel, "square")(x).backward(torch.ones(3))
    assert torch.allclose(x.grad, 2 * x.detach())


def test_direct_calls_raise_the_learners_exception_type(kernel):
    with pytest.raises(NotImplementedError):
        remote.RemoteFunction(kernel, "todo")(1)
    with pytest.raises(KeyError):
        remote.RemoteFunction(kernel, "picky")(1)


def test_a_replaced_runner_is_named(kernel):
    assert kernel.session.run("_saved_ = _cnnkit_grader_\n_cnnkit_grader_ = None", 30).status == "ok"
    try:
        out = remote.RemoteFunction(kernel, "square").__cnnkit_remote__((torch.ones(2),), {}, guard.Rules())
        assert out.error.type_name == "GraderError"
        assert [t["name"] for t in kernel.tampering] == ["_cnnkit_grader_"]
    finally:
        kernel.session.run("_cnnkit_grader_ = _saved_", 30)
