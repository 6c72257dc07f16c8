"""Chapter 1's grader gives a hint only when the failure matches it (issue 9): a forgotten bias, a missing flip,
a batch that is not summed, a missing bias in a parameter count each get their hint, and other mistakes don't."""
import torch.nn.functional as F

from cnnkit.grading import Checker


def _grade(qid, *fns):
    check = Checker("01_convolution")
    check(qid, *fns)
    result = check.results[qid]
    return result, " ".join(t.message for t in result.tests)


def _conv(x, weight, bias=None, stride=1, padding=0):
    b, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    out = weight.reshape(c_out, -1) @ F.unfold(x, (kh, kw), padding=padding, stride=stride)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(b, c_out, (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1)


def test_the_bias_hint_fires_for_a_forgotten_bias_only():
    result, text = _grade("q1", lambda x, weight, bias=None, stride=1, padding=0: _conv(x, weight, None, stride,
                                                                                         padding))
    assert result.points < result.max_points and "*without* the bias" in text
    result, text = _grade("q1", lambda x, weight, bias=None, stride=1, padding=0: 2 * _conv(x, weight, bias, stride,
                                                                                             padding))
    assert result.points < result.max_points and "without* the bias" not in text


def _backward(x, weight, grad_out, flip=True, whole_batch=True):
    b, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    xs, gs = (x, grad_out) if whole_batch else (x[:1], grad_out[:1])
    grad_w = (gs.flatten(2) @ F.unfold(xs, (kh, kw)).transpose(1, 2)).sum(0).view(weight.shape)
    g_cols = F.unfold(F.pad(grad_out, (kw - 1, kw - 1, kh - 1, kh - 1)), (kh, kw))
    k = weight.flip(2, 3) if flip else weight
    return (k.transpose(0, 1).reshape(c_in, -1) @ g_cols).view(b, c_in, h, w), grad_w


def test_the_backward_hints_name_the_flip_and_the_batch_sum_only_when_they_apply():
    result, text = _grade("q2", _backward)
    assert result.points == result.max_points
    result, text = _grade("q2", lambda x, w, g: _backward(x, w, g, flip=False))
    assert result.points < result.max_points and "flip the kernel" in text and "sum over the batch" not in text
    result, text = _grade("q2", lambda x, w, g: _backward(x, w, g, whole_batch=False))
    assert result.points < result.max_points and "sum over the batch" in text and "flip the kernel" not in text


def test_the_parameter_hints_match_the_mistake():
    def dense_cost(n_in, n_out):
        return n_in * n_out + n_out, n_in * n_out

    def no_bias(c_in, c_out, k, h, w, padding=0):
        return c_out * c_in * k * k, c_out * c_in * k * k * (h + 2 * padding - k + 1) * (w + 2 * padding - k + 1)

    result, text = _grade("q4", no_bias, dense_cost)
    assert result.points < result.max_points and "one bias per filter short" in text

    def macs_wrong(c_in, c_out, k, h, w, padding=0):
        return c_out * (c_in * k * k + 1), 3

    result, text = _grade("q4", macs_wrong, dense_cost)
    assert result.tests[0].passed and "bias per filter" not in text
