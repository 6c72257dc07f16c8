"""cnnkit.ops.norm: batch norm by hand matches nn.BatchNorm2d in both modes, forward and backward, including
the running statistics after several steps."""
import pytest
import torch
from torch import nn

from cnnkit.ops.norm import BatchNorm2dByHand, batch_norm, batch_norm_backward


def _pair(c=3, seed=0):
    torch.manual_seed(seed)
    ours, ref = BatchNorm2dByHand(c), nn.BatchNorm2d(c)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_steps_match_forward_backward_and_running_stats(dtype):
    ours, ref = _pair()
    ours, ref = ours.to(dtype), ref.to(dtype)
    for step in range(5):
        x = (torch.randn(4, 3, 5, 7, dtype=dtype) * (step + 1) + step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        y, y2 = ours(x), ref(x2)
        torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)
        g = torch.randn_like(y)
        y.backward(g)
        y2.backward(g)
        torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var, atol=1e-5, rtol=1e-5)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 5


def test_eval_mode_uses_running_statistics_forward_and_backward():
    ours, ref = _pair()
    for _ in range(3):
        x = torch.randn(8, 3, 4, 4) * 2 + 1
        ours(x), ref(x)
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    torch.testing.assert_close(ours(x), ref(x2), atol=1e-5, rtol=1e-5)
    ours(x).sum().backward()
    ref(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=1e-5)
    # one image's output no longer depends on its batch
    torch.testing.assert_close(ours(x[:1]), ours(x)[:1])


def test_hand_derived_backward_matches_autograd():
    x = torch.randn(3, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    gamma = torch.rand(2, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(2, dtype=torch.float64, requires_grad=True)
    y, _, _ = batch_norm(x, gamma, beta, torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64),
                         training=True)
    g = torch.randn_like(y)
    y.backward(g)
    gx, gg, gb = batch_norm_backward(x.detach(), gamma.detach(), g)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gg, gamma.grad)
    torch.testing.assert_close(gb, beta.grad)


def test_bad_inputs_get_clear_errors():
    bn = BatchNorm2dByHand(3)
    with pytest.raises(ValueError, match="unsqueeze"):
        bn(torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="floating point"):
        bn(torch.ones(2, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="more than one value"):
        bn(torch.randn(1, 3, 1, 1))
    with pytest.raises(ValueError, match="one value per channel"):
        batch_norm(torch.randn(2, 3, 4, 4), torch.ones(2), torch.zeros(2), torch.zeros(2), torch.ones(2), True)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2dByHand(0)
