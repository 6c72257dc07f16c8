"""Looking inside and attacking CNNs (chapter 12): saliency, Grad-CAM by hand, FGSM and pruning helpers.

Shapes in comments are ``(B, C, H, W)``. Every function takes the device from its inputs.
"""
from __future__ import annotations

import copy
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

__all__ = ["saliency", "cam_from", "grad_cam", "fgsm", "accuracy_under_fgsm", "prunable",
           "prune_global", "sparsity"]


def _check_batch(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (B, C, H, W), got {type(x).__name__}; "
                        f"convert it with torch.as_tensor(...).")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}; "
                         f"add a batch axis with {name}.unsqueeze(0) for one image.")


def _targets(target, batch: int, device) -> torch.Tensor:
    t = torch.as_tensor(target, device=device).long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"target must be one class index or one per image ({batch}), got {t.numel()}.")
    return t


def saliency(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """|d score[target] / d x|, the largest over channels: ``(B, C, H, W) -> (B, H, W)``.

    Same as ``captum.attr.Saliency(model).attribute(x, target)`` followed by ``.amax(1)``.
    """
    _check_batch(x)
    x = x.detach().clone().requires_grad_(True)
    t = _targets(target, x.shape[0], x.device)
    scores = model(x).gather(1, t[:, None]).sum()
    (grad,) = torch.autograd.grad(scores, x)
    return grad.abs().amax(dim=1)


def cam_from(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's combination step: ``acts, grads (B, C, h, w) -> (B, h, w)``.

    Weights are the gradients averaged over space (one per channel); the map is the ReLU of the
    activations weighted by them and summed over channels.
    """
    _check_batch(acts, "acts")
    if grads.shape != acts.shape:
        raise ValueError(f"acts and grads must have the same shape, got {tuple(acts.shape)} and "
                         f"{tuple(grads.shape)}; take both from the same layer.")
    weights = grads.mean(dim=(2, 3), keepdim=True)            # (B, C, 1, 1)
    return F.relu((weights * acts).sum(dim=1))                # (B, h, w)


def grad_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target,
             upsample: bool = False) -> torch.Tensor:
    """Grad-CAM of ``target`` at ``layer``: ``(B, h, w)``, or ``(B, H, W)`` with ``upsample=True``.

    Hooks record the layer's output and the gradient of the class score with respect to it.
    """
    _check_batch(x)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be a module of the model (e.g. model.features[3]), got "
                        f"{type(layer).__name__}.")
    if not any(m is layer for m in model.modules()):
        raise ValueError("layer is not a submodule of model; pass a layer of this model, e.g. model.features[3].")
    saved = {}
    handle = layer.register_forward_hook(lambda m, i, out: saved.update(a=out))
    try:
        t = _targets(target, x.shape[0], x.device)
        scores = model(x).gather(1, t[:, None]).sum()
    finally:
        handle.remove()
    acts = saved["a"]
    (grads,) = torch.autograd.grad(scores, acts)
    cam = cam_from(acts.detach(), grads)
    if upsample:
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, lo: float, hi: float) -> torch.Tensor:
    """One fast-gradient-sign step: ``clamp(x + eps * sign(d loss / d x), lo, hi)``.

    ``lo`` and ``hi`` are the valid pixel range in the space ``x`` lives in (for standardised
    images: ``(0 - mean) / std`` and ``(1 - mean) / std``); ``eps`` is measured in that space too.
    """
    _check_batch(x)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}.")
    if lo >= hi:
        raise ValueError(f"the pixel range needs lo < hi, got lo={lo}, hi={hi}.")
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y.to(x.device))
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(lo, hi).detach()


def accuracy_under_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilons: Sequence[float],
                        lo: float, hi: float, batch_size: int = 500) -> list[float]:
    """Test accuracy of ``model`` on FGSM examples of ``(x, y)``, one value per epsilon (same images for all)."""
    model.eval()
    out = []
    for eps in epsilons:
        correct = 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            adv = fgsm(model, xb, yb, eps, lo, hi) if eps > 0 else xb
            with torch.no_grad():
                correct += (model(adv).argmax(1) == yb.to(adv.device)).sum().item()
        out.append(correct / len(x))
    return out


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """The ``(module, "weight")`` pairs of every ``Conv2d`` and ``Linear`` layer, for ``prune.global_unstructured``."""
    pairs = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not pairs:
        raise ValueError("the model has no Conv2d or Linear layer to prune.")
    return pairs


def prune_global(model: nn.Module, amount: float) -> nn.Module:
    """A pruned copy of ``model``: the ``amount`` fraction of conv and linear weights smallest in |w|
    (ranked over all those layers together) set to zero by ``torch.nn.utils.prune`` (global L1)."""
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount is the fraction of weights to remove, in [0, 1]; got {amount}.")
    pruned = copy.deepcopy(model)
    prune.global_unstructured(prunable(pruned), pruning_method=prune.L1Unstructured, amount=float(amount))
    return pruned


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the conv and linear weights (after pruning, ``weight`` holds the masked values)."""
    weights: Iterable[torch.Tensor] = [getattr(m, name) for m, name in prunable(model)]
    total = sum(w.numel() for w in weights)
    return sum((w == 0).sum().item() for w in weights) / total
