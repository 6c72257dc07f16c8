"""Chapter 2's grader: hints fire only on the mistake they describe, and the blind-spot cases are graded."""
import torch

from cnnkit.grading import load_exercise, run_question

EX = load_exercise("02_padding_stride")


def messages(qid, fn):
    result = run_question(EX, qid, (fn,))
    return [t.message for t in result.tests if not t.passed]


def test_q3_jump_hint_only_for_the_jump_mistake():
    def no_jump(layers, i):
        size, jump, start = 1, 1, 0.0
        for k, s, p, d in layers:
            span = d * (k - 1) + 1
            size += span - 1
            start += ((span - 1) / 2 - p) * jump
            jump *= s
        first = start + i * jump - (size - 1) / 2
        return first, first + size - 1

    failed = messages("q3", no_jump)
    assert failed and any("`jump` input pixels apart" in m for m in failed)
    assert not any("padding shifts" in m for m in failed)
    assert not any("Hint" in m for m in messages("q3", lambda layers, i: (0, 0)))


def test_q3_negative_start_is_graded():
    failed = messages("q3", lambda layers, i: (0, 0))
    assert any("(3, 1, 4, 1), (3, 3, 2, 2)" in m or "expected (first, last) = (-" in m for m in failed)


def test_q2_symmetric_hint_only_for_symmetric_padding():
    def symmetric(x, p):
        if p == 0:
            return x.clone()
        x = torch.cat([x[..., :p, :].flip(-2), x, x[..., -p:, :].flip(-2)], dim=-2)
        return torch.cat([x[..., :p].flip(-1), x, x[..., -p:].flip(-1)], dim=-1)

    assert any("symmetric" in m for m in messages("q2", symmetric))
    zeros = messages("q2", lambda x, p: torch.zeros(*x.shape[:2], x.shape[2] + 2 * p, x.shape[3] + 2 * p,
                                                    dtype=x.dtype, device=x.device))
    assert zeros and not any("Hint" in m for m in zeros)


def test_q4_padding_hint_only_when_padding_taps_are_kept():
    keeps = messages("q4", lambda size, kernel, padding=0, stride=1, dilation=1, i=0:
                     [i * stride - padding + t * dilation for t in range(kernel)])
    assert any("read zeros" in m for m in keeps)
    empty = messages("q4", lambda size, kernel, padding=0, stride=1, dilation=1, i=0: [])
    assert empty and not any("read zeros" in m for m in empty)


def test_q4_grades_the_last_output_under_a_stride():
    def drops_last_window(size, kernel, padding=0, stride=1, dilation=1, i=0):
        first = i * stride - padding
        taps = [first + t * dilation for t in range(kernel)]
        if taps[-1] >= size:  # wrongly treats a window that reaches the padding as missing
            return []
        return [j for j in taps if 0 <= j < size]

    assert any("the last output under a stride" in n for n in
               [t.name for t in run_question(EX, "q4", (drops_last_window,)).tests if not t.passed])
