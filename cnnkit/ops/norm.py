"""Batch normalisation by hand, in training and evaluation mode, with its backward pass derived by hand.

Training mode normalises each channel with the statistics of the current batch (over B, H and W) and updates
running estimates; evaluation mode uses those running estimates, so one image's output no longer depends on
the rest of its batch. Both match ``torch.nn.BatchNorm2d`` (tests/test_norm.py), including PyTorch's choice of
the *unbiased* batch variance for the running estimate and the *biased* one for normalising.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["batch_norm", "batch_norm_backward", "BatchNorm2dByHand"]


def _check(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"batch_norm: x must be a tensor of shape (B, C, H, W), got {got}; add a batch axis "
                         "with x.unsqueeze(0) for one image.")
    if not x.is_floating_point():
        raise ValueError(f"batch_norm: x must be floating point, got {x.dtype}; convert it with x.float().")
    c = x.shape[1]
    if gamma.shape != (c,) or beta.shape != (c,):
        raise ValueError(f"batch_norm: gamma and beta need shape ({c},), one value per channel of x; got "
                         f"{tuple(gamma.shape)} and {tuple(beta.shape)}.")


def batch_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
               running_mean: torch.Tensor, running_var: torch.Tensor,
               training: bool, momentum: float = 0.1, eps: float = 1e-5
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, new_running_mean, new_running_var)`` for ``x (B, C, H, W)``.

    Training: ``y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta`` per
    channel, with the batch's mean and biased variance; the running estimates
    move ``momentum`` of the way towards the batch's mean and unbiased
    variance. Evaluation: the running estimates replace the batch statistics
    and are returned unchanged. The inputs are left unchanged.
    """
    _check(x, gamma, beta)
    if training:
        n = x.numel() // x.shape[1]  # values per channel: B * H * W
        if n < 2:
            raise ValueError(
                "batch_norm in training mode needs more than one value per "
                "channel (B*H*W > 1), as nn.BatchNorm2d does; use a bigger "
                "batch or evaluation mode.")
        mean = x.mean(dim=(0, 2, 3))                 # (C,)
        var = x.var(dim=(0, 2, 3), unbiased=False)   # (C,), to normalise
        unbiased = var * n / (n - 1)  # what PyTorch keeps as running var
        new_mean = (1 - momentum) * running_mean + momentum * mean.detach()
        new_var = ((1 - momentum) * running_var
                   + momentum * unbiased.detach())
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean, running_var
    shape = (1, -1, 1, 1)  # broadcast per channel
    x_hat = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    y = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    return y, new_mean, new_var


def batch_norm_backward(x: torch.Tensor, gamma: torch.Tensor, grad_y: torch.Tensor, eps: float = 1e-5
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(grad_x, grad_gamma, grad_beta)`` of training-mode batch norm, derived by hand.

    With ``x_hat = (x - mean) / std`` per channel and ``N = B*H*W``, the batch statistics depend on every
    input, which gives ``grad_x = gamma / std * (g - mean(g) - x_hat * mean(g * x_hat))`` with
    ``g = grad_y`` and the means taken over the ``N`` values of each channel.
    """
    dims, shape = (0, 2, 3), (1, -1, 1, 1)
    mean = x.mean(dim=dims, keepdim=True)
    std = torch.sqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)
    x_hat = (x - mean) / std
    grad_beta = grad_y.sum(dim=dims)
    grad_gamma = (grad_y * x_hat).sum(dim=dims)
    g_mean = grad_y.mean(dim=dims, keepdim=True)
    gx_mean = (grad_y * x_hat).mean(dim=dims, keepdim=True)
    grad_x = gamma.reshape(shape) / std * (grad_y - g_mean - x_hat * gx_mean)
    return grad_x, grad_gamma, grad_beta


class BatchNorm2dByHand(nn.Module):
    """A drop-in for ``nn.BatchNorm2d(num_features)`` built on :func:`batch_norm` (same state-dict keys)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int (the channels of the input), got "
                             f"{num_features!r}")
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        y, mean, var = batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                                  self.training, self.momentum, self.eps)
        if self.training:
            with torch.no_grad():
                self.running_mean.copy_(mean)
                self.running_var.copy_(var)
                self.num_batches_tracked += 1
        return y
