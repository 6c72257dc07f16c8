"""cnnkit.grading in-process: correct answers score, and every kind of hostile answer gets zero with a message
that says what went wrong, without the checker ever raising (unless CNNKIT_STRICT=1)."""
import json
import signal
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sys
from pathlib import Path
import importlib.util

from cnnkit.grading import CheckFailed, Checker, call, Exercise, describe, expect_equal, expect_tensor, load_exercise

# The checker is tested on a fixed exercise (tests/grading_fixture.py), installed as cnnkit.checks.ch99, so these
# tests do not change whenever a chapter's exercises do.
_spec = importlib.util.spec_from_file_location("cnnkit.checks.ch99", Path(__file__).with_name("grading_fixture.py"))
_fixture = importlib.util.module_from_spec(_spec)
sys.modules["cnnkit.checks.ch99"] = _fixture
_spec.loader.exec_module(_fixture)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("CNNKIT_STRICT", "CNNKIT_GRADE_LOG", "CNNKIT_CHECK_TIMEOUT", "CNNKIT_DEFER_CHECKS"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- reference answers

def conv_output_size(size, kernel, padding=0, stride=1, dilation=1):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_loops(image, kernel):
    kh, kw = kernel.shape
    out = image.new_zeros(image.shape[0] - kh + 1, image.shape[1] - kw + 1)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (image[i:i + kh, j:j + kw] * kernel).sum()
    return out


def conv2d_vectorised(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)


def conv_params(c_in, c_out, kernel, bias=True):
    return c_out * c_in * kernel * kernel + (c_out if bias else 0)


def dense_params(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def messages(check, qid):
    return [t.message for t in check.results[qid].tests]


def run(qid, *fns, timeout=None):
    check = Checker("99_fixture", timeout=timeout)
    check(qid, *fns)
    return check


def assert_zero_with(check, qid, *fragments):
    result = check.results[qid]
    assert result.points == 0, [t.message for t in result.tests]
    for msg in messages(check, qid):
        for fragment in fragments:
            assert fragment in msg, msg


# ---------------------------------------------------------------- correct answers

def test_reference_answers_get_full_marks_and_a_running_score(capsys):
    check = Checker("99_fixture")
    for qid, fns in [("q1", (conv_output_size,)), ("q2", (conv2d_loops,)), ("q3", (conv2d_vectorised,)),
                     ("q4", (conv_params, dense_params))]:
        check(qid, *fns)
    out = capsys.readouterr().out
    assert "❌" not in out and out.count("✅") == sum(len(q.tests) for q in check.exercise.questions.values())
    assert "q1: 3/3 points · score so far: 3/12 points (1 of 4 questions checked)" in out
    assert check.points == check.max_points == 12
    assert check.report()["points"] == 12


def test_check_returns_none_so_the_cell_shows_no_repr():
    assert Checker("99_fixture")("q1", conv_output_size) is None


# ---------------------------------------------------------------- hostile answers, each with its message

def test_untouched_stub_scores_zero_and_says_what_to_do():
    def conv2d_loops(image, kernel):
        # YOUR CODE HERE
        raise NotImplementedError()
    check = run("q2", conv2d_loops)
    assert_zero_with(check, "q2", "raised NotImplementedError: replace `raise NotImplementedError()` with your code")
    assert "conv2d_loops(Tensor(5, 5) float32, Tensor(3, 3) float32)" in messages(check, "q2")[0]


def test_exception_is_reported_with_the_learner_line():
    def conv_output_size(size, kernel, padding=0, stride=1, dilation=1):
        return size // (stride - stride)
    check = run("q1", conv_output_size)
    assert_zero_with(check, "q1", "raised ZeroDivisionError", "in conv_output_size:", "size // (stride - stride)")


def test_system_exit_is_caught():
    def conv_output_size(*args, **kwargs):
        raise SystemExit(3)
    assert_zero_with(run("q1", conv_output_size), "q1", "raised SystemExit")


def test_endless_loop_is_stopped_even_if_it_catches_exception():
    def conv_output_size(size, kernel, padding=0, stride=1, dilation=1):
        while True:
            try:
                size += 1
            except Exception:  # the timeout is a BaseException, so this cannot swallow it
                pass
    start = time.perf_counter()
    check = run("q1", conv_output_size, timeout=0.3)
    assert time.perf_counter() - start < 5
    assert messages(check, "q1") == ["took longer than 0.3 s: is there an endless loop?"] + \
        ["not run: an earlier test ran out of time; fix that first"] * 2
    assert check.results["q1"].points == 0


def test_timeout_leaves_no_alarm_behind():
    before = signal.getsignal(signal.SIGALRM)
    run("q1", lambda *a, **k: time.sleep(5), timeout=0.2)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_timeout_outside_the_main_thread_uses_a_worker_thread():
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("check", run("q1", lambda *a, **k: time.sleep(1.5),
                                                                          timeout=0.2)))
    thread.start()
    thread.join(30)
    assert "took longer than 0.2 s: is there an endless loop? (it keeps running in the background: restart the " \
        "kernel to stop it)" == messages(box["check"], "q1")[0]


def test_wrong_shape():
    def conv2d_loops(image, kernel):
        return image.new_zeros(image.shape)  # forgets that the output is smaller
    check = run("q2", conv2d_loops)
    assert_zero_with(check, "q2", "returned shape")
    assert "returned shape (5, 5); expected (3, 3)" in messages(check, "q2")[0]


def test_wrong_dtype():
    def conv2d_loops(image, kernel):
        return conv2d_loops_ref(image.double(), kernel.double())
    check = run("q2", conv2d_loops)
    assert "returned dtype torch.float64; expected torch.float32" in messages(check, "q2")[0]
    assert check.results["q2"].tests[2].passed  # the float64 test passes: the dtype really is the input's


conv2d_loops_ref = conv2d_loops


torch.empty(1, device="meta")  # the first meta tensor loads torch's meta kernels: do it here, not under a timeout


def test_wrong_device():
    def conv2d_loops(image, kernel):
        return torch.empty(image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1,
                           dtype=image.dtype, device="meta")
    assert_zero_with(run("q2", conv2d_loops), "q2", "returned a tensor on meta; expected cpu")


def test_numpy_array_instead_of_tensor():
    def conv2d_loops(image, kernel):
        return conv2d_loops_ref(image, kernel).numpy()
    assert_zero_with(run("q2", conv2d_loops), "q2", "returned a NumPy array", "torch.as_tensor")


def test_list_instead_of_tensor():
    def conv2d_loops(image, kernel):
        return conv2d_loops_ref(image, kernel).tolist()
    assert_zero_with(run("q2", conv2d_loops), "q2", "returned a list", "expected a torch.Tensor of shape")


def test_missing_return():
    def conv2d_loops(image, kernel):
        conv2d_loops_ref(image, kernel)
    assert_zero_with(run("q2", conv2d_loops), "q2", "returned None (is a `return` missing?)")


def test_mutating_the_input_is_detected_and_the_caller_keeps_its_tensor():
    def conv2d_loops(image, kernel):
        image -= image.mean()  # centres the image in place
        return conv2d_loops_ref(image, kernel)
    check = run("q2", conv2d_loops)
    assert_zero_with(check, "q2", "changed its argument 1 (Tensor(", "in place", "x.clone()")
    assert "changed its argument 1 (Tensor(5, 5) float32) in place" in messages(check, "q2")[0]
    x = torch.ones(3)
    with pytest.raises(CheckFailed, match="changed its argument 1"):
        call(lambda t: t.add_(1), x)
    assert torch.equal(x, torch.ones(3))  # the caller's tensor is untouched: the function changed a copy


def test_float_instead_of_int():
    def conv_output_size(size, kernel, padding=0, stride=1, dilation=1):
        return (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
    msgs = messages(run("q1", conv_output_size), "q1")
    assert "returned 24.0 as a float: return an int; expected the int 24" in msgs[0]
    with pytest.raises(CheckFailed, match=r"returned 13.5, a float: use // \(floor division\); expected the int 14"):
        expect_equal(13.5, 14, "f()")


def test_flipped_kernel_gets_the_cross_correlation_hint():
    def conv2d_loops(image, kernel):
        return conv2d_loops_ref(image, kernel.flip(0, 1))
    assert_zero_with(run("q2", conv2d_loops), "q2", "max abs error", "kernel flipped")


def test_loop_over_positions_fails_the_vectorised_test_only():
    def conv2d_vectorised(x, weight, bias=None, stride=1, padding=0):
        from cnnkit.ops import conv2d_naive
        return conv2d_naive(x, weight, bias, stride, padding)
    result = run("q3", conv2d_vectorised).results["q3"]
    assert [t.passed for t in result.tests] == [True, True, True, False]
    assert "so it loops over positions" in result.tests[3].message


def test_keyboard_interrupt_stops_the_question_without_raising():
    def conv_output_size(*args, **kwargs):
        raise KeyboardInterrupt
    msgs = messages(run("q1", conv_output_size), "q1")
    assert msgs[0] == "interrupted (KeyboardInterrupt)"
    assert msgs[1:] == ["not run: the check was interrupted"] * 2


def test_not_a_function_and_wrong_number_of_functions():
    assert_zero_with(run("q4", 3, dense_params), "q4", "`conv_params` should be a function but is 3")
    assert_zero_with(run("q4", conv_params), "q4", "needs 2 function(s), in this order: conv_params, dense_params")


def test_check_does_not_touch_the_global_rng():
    state = torch.get_rng_state()
    run("q3", conv2d_vectorised)
    assert torch.equal(state, torch.get_rng_state())


# ---------------------------------------------------------------- modes and the machine-readable score

def test_unknown_exercise_and_question_print_instead_of_raising(capsys):
    bad = Checker("97_nothing")
    bad("q1", conv_output_size)
    check = Checker("99_fixture")
    check("q9", conv_output_size)
    out = capsys.readouterr().out
    assert "cannot load the checks for '97_nothing'" in out and "no checks available" in out
    assert "unknown question 'q9' for 99_fixture; the questions are q1, q2, q3, q4" in out


def test_strict_mode_raises_on_failure_only(monkeypatch):
    monkeypatch.setenv("CNNKIT_STRICT", "1")
    Checker("99_fixture")("q1", conv_output_size)
    with pytest.raises(CheckFailed, match=r"q1: 0/3 points.*NotImplementedError"):
        Checker("99_fixture")("q1", lambda *a, **k: (_ for _ in ()).throw(NotImplementedError()))
    with pytest.raises(ValueError, match="no checks for exercise '97_nothing'"):
        Checker("97_nothing")


def test_grade_log_has_one_json_line_per_check(monkeypatch, tmp_path):
    log = tmp_path / "scores.jsonl"
    monkeypatch.setenv("CNNKIT_GRADE_LOG", str(log))
    check = Checker("99_fixture")
    check("q1", conv_output_size)
    check("q4", conv_params, lambda *a, **k: 0)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(d["question"], d["points"], d["max_points"]) for d in lines] == [("q1", 3, 3), ("q4", 1, 2)]
    assert lines[1]["tests"][1]["passed"] is False and "returned 0; expected" in lines[1]["tests"][1]["message"]


def test_deferred_checks_only_print(monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_DEFER_CHECKS", "1")
    check = Checker("99_fixture")
    check("q1", conv_output_size)
    assert check.results == {} and "the instructor's grader checks it at the end" in capsys.readouterr().out


def test_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv("CNNKIT_CHECK_TIMEOUT", "0.2")
    assert messages(run("q1", lambda *a, **k: time.sleep(3)), "q1")[0] == \
        "took longer than 0.2 s: is there an endless loop?"


# ---------------------------------------------------------------- declarations and helpers

def test_declarations_are_validated():
    ex = Exercise("98_demo")
    with pytest.raises(ValueError, match="question ids look like 'q1'"):
        ex.question("one", "f")
    q = ex.question("q1", "f")
    with pytest.raises(ValueError, match="declared twice"):
        ex.question("q1", "f")
    with pytest.raises(ValueError, match="name the functions it grades"):
        ex.question("q2")
    with pytest.raises(ValueError, match="points must be a positive int"):
        q.test("t", points=0)
    q.test("t")(lambda f: None)
    with pytest.raises(ValueError, match="already has a test named 't'"):
        q.test("t")


def test_load_exercise_errors():
    with pytest.raises(ValueError, match="exercise names look like '01_convolution'"):
        load_exercise("convolution")
    with pytest.raises(ValueError, match="cnnkit.checks.ch97 does not exist"):
        load_exercise("97_nothing")
    with pytest.raises(ValueError, match="grades '01_convolution', not '01_other'"):
        load_exercise("01_other")


def test_comparison_helpers_can_fail():
    expect_tensor(torch.ones(2), torch.ones(2))
    with pytest.raises(CheckFailed, match=r"max abs error 0.5 at index \(1,\)"):
        expect_tensor(torch.tensor([1.0, 1.5]), torch.ones(2))
    with pytest.raises(CheckFailed, match="returned NaN at index"):
        expect_tensor(torch.tensor([1.0, float("nan")]), torch.ones(2))
    with pytest.raises(CheckFailed, match="wrong values"):
        expect_tensor(torch.tensor([1, 3]), torch.tensor([1, 2]))
    with pytest.raises(CheckFailed, match="plain Python int"):
        expect_equal(torch.tensor(3), 3)
    with pytest.raises(CheckFailed, match="returned bool"):
        expect_equal(True, 1)
    with pytest.raises(CheckFailed, match=r"\(item 1\)"):
        expect_equal((1, 2.5), (1, 2.0))
    assert describe(torch.zeros(2, 3, dtype=torch.float64)) == "Tensor(2, 3) float64"
    assert describe(np.zeros((2, 2))) == "NumPy ndarray(2, 2) float64"


# ---------------------------------------------------------------- feedback that names what went wrong (issue 9)

def test_feedback_names_tensors_once_and_lists_by_content():
    with pytest.raises(CheckFailed) as info:
        expect_equal(torch.tensor(3), 3, "f")
    assert "Tensor Tensor" not in str(info.value) and "Tensor() int64" in str(info.value)
    assert describe([torch.zeros(2, 3), torch.ones(4)]) == "a list of [Tensor(2, 3) float32, Tensor(4) float32]"
    assert describe([torch.zeros(1)] * 9) == "a list of 9 Tensors"


def test_an_infinite_result_is_named_as_such():
    with pytest.raises(CheckFailed) as info:
        expect_tensor(torch.tensor([1.0, -float("inf")]), torch.tensor([1.0, -3.0]), "f")
    assert "-inf" in str(info.value) and "1.8e+308" not in str(info.value)
