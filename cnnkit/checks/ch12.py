"""Grader tests for ``exercises/source/12_inside_cnns.ipynb`` (chapter 12: looking inside and attacking CNNs).

Expected values come from the definitions written with ``torch.clamp`` / ``torch.sign`` (FGSM, the projection
step of PGD), from captum's ``LayerGradCam`` combination rule (Grad-CAM), and from ``torch.nn.utils.prune``
(global magnitude masks). Each question checks fixed teaching cases and cases drawn at random for every grading
run (``rng``), in float32 and float64, and on the ``meta`` device.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from cnnkit.grading import CheckFailed, Exercise, call, expect_call, expect_device, randint, rng

EXERCISE = Exercise("12_inside_cnns", title="Looking inside and attacking CNNs")

NO_HELPERS = {
    "cnnkit.inside": "write it yourself rather than calling the chapter's helpers",
    "captum": "write the arithmetic yourself",
}


def _rand(g: torch.Generator, *shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=dtype)


def _randn(g: torch.Generator, *shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------ q1: FGSM step on standardised images

q1 = EXERCISE.question("q1", "fgsm_step", title="An FGSM step on standardised images", forbid=NO_HELPERS)


def _fgsm_ref(x, grad, eps, mean, std):
    lo, hi = (0 - mean) / std, (1 - mean) / std
    return (x + eps / std * grad.sign()).clamp(lo, hi)


def _q1_hint(x, grad, eps, mean, std):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            return None
        g = got.detach().double()
        xd, gd = x.double(), grad.double()
        lo, hi = (0 - mean) / std, (1 - mean) / std
        if torch.allclose(g, (xd + eps * gd.sign()).clamp(lo, hi), atol=1e-6):
            return ("eps is in raw pixel units; in the standardised space a raw change of eps is eps / std.")
        if torch.allclose(g, (xd + eps / std * gd.sign()).clamp(0, 1), atol=1e-6):
            return ("the valid range [0, 1] is in raw units; standardised it is [(0 - mean) / std, "
                    "(1 - mean) / std].")
        if torch.allclose(g, xd + eps / std * gd.sign(), atol=1e-6):
            return "clamp the result to the valid pixel range, or it is no longer an image."
        if torch.allclose(g, (xd - eps / std * gd.sign()).clamp(lo, hi), atol=1e-6):
            return "FGSM moves *up* the loss gradient (to increase the loss): +eps, not -eps."
        if torch.allclose(g, (xd + eps / std * gd).clamp(lo, hi), atol=1e-6):
            return "FGSM uses the *sign* of the gradient, so every pixel moves by the same amount."
        return None
    return hint


def _check_q1(fgsm_step, cases):
    for x, grad, eps, mean, std in cases:
        expect_call(fgsm_step, x, grad, eps, mean, std, expected=_fgsm_ref(x, grad, eps, mean, std),
                    hint=_q1_hint(x, grad, eps, mean, std))


@q1.test("MNIST statistics, eps 0.1 and 0, a zero gradient", points=1)
def _(fgsm_step):
    mean, std = 0.1307, 0.3081
    raw = torch.tensor([[[[0.0, 0.5, 1.0], [0.95, 0.02, 0.3]]]])      # (1, 1, 2, 3)
    x = (raw - mean) / std
    grad = torch.tensor([[[[1.0, -2.0, 3.0], [0.5, -0.1, 0.0]]]])
    _check_q1(fgsm_step, [(x, grad, 0.1, mean, std), (x, grad, 0.0, mean, std)])


@q1.test("random statistics and sizes, float64, batch > 1", points=1)
def _(fgsm_step):
    g = rng()
    mean, std = 0.2 + 0.6 * float(_rand(g, 1)), 0.1 + 0.5 * float(_rand(g, 1))
    shape = (randint(g, 2, 4), randint(g, 1, 3), randint(g, 2, 7), randint(g, 3, 8))
    x = (_rand(g, *shape) - mean) / std
    cases = [(x, _randn(g, *shape), 0.05 + 0.3 * float(_rand(g, 1)), mean, std),
             (x.float(), _randn(g, *shape, dtype=torch.float32), 0.2, mean, std)]
    _check_q1(fgsm_step, cases)


@q1.test("works on the input's device", points=1)
def _(fgsm_step):
    g = rng()
    expect_device(fgsm_step, _randn(g, 2, 1, 4, 4, dtype=torch.float32),
                  _randn(g, 2, 1, 4, 4, dtype=torch.float32), 0.1, 0.5, 0.25)


# ------------------------------------------------------------------ q2: projection step of PGD

q2 = EXERCISE.question("q2", "pgd_project", title="Keeping an iterated attack inside its budget",
                       forbid=NO_HELPERS)


def _project_ref(x_adv, x, eps, lo, hi):
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(lo, hi)


def _q2_hint(x_adv, x, eps, lo, hi):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            return None
        g, a, xd = got.detach().double(), x_adv.double(), x.double()
        if torch.allclose(g, a.clamp(lo, hi), atol=1e-6):
            return "you kept the pixel range but not the budget: each pixel may differ from x by at most eps."
        if torch.allclose(g, a.clamp(xd.min() - eps, xd.max() + eps).clamp(lo, hi), atol=1e-6):
            return "the budget is per pixel: clamp each pixel to [x - eps, x + eps] of that same pixel."
        if torch.allclose(g, torch.min(torch.max(a, xd - eps), xd + eps), atol=1e-6):
            return "after the budget, clamp to the valid pixel range [lo, hi] too."
        if torch.allclose(g, (xd + eps * (a - xd).sign()).clamp(lo, hi), atol=1e-6):
            return ("projection keeps pixels already inside the budget as they are; only those outside "
                    "move to the nearest edge.")
        return None
    return hint


def _check_q2(pgd_project, cases):
    for x_adv, x, eps, lo, hi in cases:
        expect_call(pgd_project, x_adv, x, eps, lo, hi, expected=_project_ref(x_adv, x, eps, lo, hi),
                    hint=_q2_hint(x_adv, x, eps, lo, hi))


@q2.test("a 1x1x2x3 image, eps 0.1, pixels in [0, 1]", points=1)
def _(pgd_project):
    x = torch.tensor([[[[0.0, 0.5, 1.0], [0.3, 0.96, 0.05]]]])
    x_adv = torch.tensor([[[[-0.2, 0.55, 1.3], [0.1, 1.02, 0.0]]]])
    _check_q2(pgd_project, [(x_adv, x, 0.1, 0.0, 1.0)])


@q2.test("random sizes, budgets and ranges, float64", points=1)
def _(pgd_project):
    g = rng()
    shape = (randint(g, 2, 4), randint(g, 1, 3), randint(g, 3, 7), randint(g, 2, 9))
    lo, hi = -0.5 * float(_rand(g, 1)), 1 + float(_rand(g, 1))
    x = lo + (hi - lo) * _rand(g, *shape)
    eps = 0.05 + 0.2 * float(_rand(g, 1))
    cases = [(x + 3 * eps * _randn(g, *shape), x, eps, lo, hi),
             ((x + 3 * eps * _randn(g, *shape)).float(), x.float(), eps, lo, hi)]
    _check_q2(pgd_project, cases)


@q2.test("works on the input's device", points=1)
def _(pgd_project):
    g = rng()
    expect_device(pgd_project, _rand(g, 2, 1, 4, 5, dtype=torch.float32), _rand(g, 2, 1, 4, 5,
                  dtype=torch.float32), 0.1, 0.0, 1.0)


# ------------------------------------------------------------------ q3: Grad-CAM's combination step

q3 = EXERCISE.question("q3", "cam_combine", title="Grad-CAM's combination step, normalised", forbid=NO_HELPERS)


def _cam_ref(acts, grads):
    w = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((w * acts).sum(dim=1))
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(cam))


def _q3_hint(acts, grads):
    def hint(got):
        if not isinstance(got, torch.Tensor):
            return None
        if got.dim() == 4 and got.shape[1] == 1:
            return "return (B, H, W): sum over the channel axis without keepdim (or squeeze it)."
        if got.shape != _cam_ref(acts, grads).shape:
            return None
        g = got.detach().double()
        if torch.isnan(g).any():
            return "a map that is zero everywhere must come back as zeros, not 0 / 0 = nan."
        a, gr = acts.double(), grads.double()
        raw = torch.relu((gr * a).sum(dim=1))
        if torch.allclose(g, raw / raw.amax(dim=(1, 2), keepdim=True).clamp_min(1e-300), atol=1e-6):
            return ("you weighted each position by its own gradient; Grad-CAM uses one weight per channel, "
                    "the gradient averaged over the positions.")
        w = gr.mean(dim=(2, 3), keepdim=True)
        s = (w * a).sum(dim=1)
        if torch.allclose(g, torch.relu(s) / s.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-300), atol=1e-6):
            return "apply the ReLU before normalising: Grad-CAM keeps only positive evidence."
        c = torch.relu(s)
        if torch.allclose(g, c / c.max().clamp_min(1e-300), atol=1e-6):
            return "normalise each map by its own maximum, not by the maximum over the whole batch."
        return None
    return hint


def _check_q3(cam_combine, cases):
    for acts, grads in cases:
        expect_call(cam_combine, acts, grads, expected=_cam_ref(acts, grads), hint=_q3_hint(acts, grads))


@q3.test("two 2-channel 2x2 maps; the second all negative", points=1)
def _(cam_combine):
    acts = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]], [[2.0, 0.0], [5.0, 1.0]]],
                         [[[1.0, 1.0], [2.0, 0.5]], [[0.0, 1.0], [1.0, 0.0]]]])
    grads = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]], [[-1.0, 1.0], [-2.0, 0.0]]],
                          [[[-1.0, -1.0], [-1.0, -1.0]], [[-0.5, 0.0], [0.0, -0.5]]]])
    _check_q3(cam_combine, [(acts, grads)])


@q3.test("random sizes, float64, batch > 1, non-square maps", points=2)
def _(cam_combine):
    g = rng()
    b, c, h, w = randint(g, 2, 5), randint(g, 2, 9), randint(g, 2, 8), randint(g, 3, 9)
    acts = torch.relu(_randn(g, b, c, h, w))
    grads = _randn(g, b, c, h, w) + 0.3
    grads[0] = -grads[0].abs()                        # image 0 has no positive evidence
    acts2 = torch.relu(_randn(g, 1, c, w, h, dtype=torch.float32))
    _check_q3(cam_combine, [(acts, grads), (acts2, _randn(g, 1, c, w, h, dtype=torch.float32))])


@q3.test("agrees with captum's LayerGradCam on a small CNN", points=1)
def _(cam_combine):
    g = rng()
    torch.manual_seed(randint(g, 0, 10_000))
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(5 * 6 * 7, 3)).double()
    x = _randn(g, 3, 1, 10, 11)
    saved = {}
    handle = model[2].register_forward_hook(lambda m, i, o: saved.update(a=o))
    score = model(x)[:, 1].sum()
    handle.remove()
    (grads,) = torch.autograd.grad(score, saved["a"])
    acts = saved["a"].detach()
    from captum.attr import LayerGradCam
    ref = LayerGradCam(model, model[2]).attribute(x, target=1, relu_attributions=True)[:, 0].detach()
    peak = ref.amax(dim=(1, 2), keepdim=True)
    ref = torch.where(peak > 0, ref / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(ref))
    expect_call(cam_combine, acts, grads, expected=ref, hint=_q3_hint(acts, grads))


@q3.test("works on the input's device", points=1)
def _(cam_combine):
    g = rng()
    expect_device(cam_combine, _rand(g, 2, 3, 4, 5, dtype=torch.float32), _randn(g, 2, 3, 4, 5,
                  dtype=torch.float32))


# ------------------------------------------------------------------ q4: global magnitude-pruning masks

q4 = EXERCISE.question("q4", "magnitude_masks", title="Global magnitude pruning without torch's pruning module",
                       forbid={**NO_HELPERS, "torch.nn.utils.prune": "rank the magnitudes yourself"})


def _masks_ref(weights, sparsity):
    mods = []
    for w in weights:
        m = nn.Module()
        m.weight = nn.Parameter(w.detach().clone())
        mods.append(m)
    prune.global_unstructured([(m, "weight") for m in mods], pruning_method=prune.L1Unstructured,
                              amount=round(sparsity * sum(w.numel() for w in weights)))
    return [m.weight_mask.to(w.dtype) for m, w in zip(mods, weights)]


def _check_q4(magnitude_masks, weights, sparsity, exact=True):
    got = call(magnitude_masks, weights, sparsity)
    where = f"magnitude_masks(<{len(weights)} tensors>, {sparsity})"
    if not isinstance(got, (list, tuple)) or len(got) != len(weights):
        raise CheckFailed(f"{where} must return a list with one mask per weight tensor ({len(weights)}); got "
                          f"{type(got).__name__}.")
    for i, (m, w) in enumerate(zip(got, weights)):
        if not isinstance(m, torch.Tensor) or m.shape != w.shape:
            raise CheckFailed(f"{where}: mask {i} must be a tensor of shape {tuple(w.shape)}.")
        if m.dtype != w.dtype or m.device != w.device:
            raise CheckFailed(f"{where}: mask {i} is {m.dtype} on {m.device}; it must have the weight's dtype "
                              f"{w.dtype} and device {w.device} (e.g. torch.ones_like(w)).")
        if not ((m == 0) | (m == 1)).all():
            raise CheckFailed(f"{where}: mask {i} must hold only 0s and 1s.")
    total = sum(w.numel() for w in weights)
    zeros = sum(int((m == 0).sum()) for m in got)
    want = round(sparsity * total)
    if zeros != want:
        raise CheckFailed(f"{where}: {zeros} zeros among {total} weights; expected round({sparsity} * {total}) = "
                          f"{want}. Count over all tensors together, and prune exactly that many even when "
                          f"several weights share the threshold magnitude.")
    mags = torch.cat([w.detach().abs().flatten() for w in weights])
    keep = torch.cat([m.flatten() for m in got]).bool()
    if zeros and zeros < total and mags[~keep].max() > mags[keep].min():
        raise CheckFailed(f"{where}: a weight of magnitude {mags[~keep].max().item():.4g} was pruned while one of "
                          f"{mags[keep].min().item():.4g} was kept; prune the smallest |w| over all tensors "
                          "together (one ranking, not one per tensor).")
    if exact:
        for i, (m, r) in enumerate(zip(got, _masks_ref(weights, sparsity))):
            if not torch.equal(m, r):
                raise CheckFailed(f"{where}: mask {i} differs from torch.nn.utils.prune's global L1 mask.")


@q4.test("two small layers, sparsity 0.5", points=1)
def _(magnitude_masks):
    w1 = torch.tensor([[0.1, -2.0], [0.5, -0.05]])
    w2 = torch.tensor([3.0, -0.3, 0.01, 1.5])
    _check_q4(magnitude_masks, [w1, w2], 0.5)


@q4.test("random layers of different shapes and sizes, float64", points=1)
def _(magnitude_masks):
    g = rng()
    weights = [_randn(g, randint(g, 2, 6), randint(g, 1, 3), 3, 3), _randn(g, randint(g, 5, 20), randint(g, 4, 30)),
               _randn(g, randint(g, 2, 9))]
    s = 0.1 + 0.8 * float(_rand(g, 1))
    _check_q4(magnitude_masks, weights, s)


@q4.test("ties at the threshold, sparsity 0 and 1, and a rounded count", points=2)
def _(magnitude_masks):
    g = rng()
    weights = [torch.randint(-3, 4, (randint(g, 3, 7), 5), generator=g).double(),
               torch.randint(-3, 4, (randint(g, 4, 11),), generator=g).double()]
    _check_q4(magnitude_masks, weights, 0.45, exact=False)
    _check_q4(magnitude_masks, weights, 0.0, exact=False)
    _check_q4(magnitude_masks, weights, 1.0, exact=False)
    ties = [torch.tensor([1.0, -1.0, 1.0, 2.0]), torch.tensor([[-1.0, 3.0]])]
    _check_q4(magnitude_masks, ties, 0.5, exact=False)  # 3 of the four 1s
    w = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[0.5, 4.0, 5.0, 6.0]])]
    _check_q4(magnitude_masks, w, 0.4)                 # 0.4 * 7 = 2.8 -> 3 zeros


@q4.test("works on the input's device", points=1)
def _(magnitude_masks):
    g = rng()
    expect_device(magnitude_masks, [_randn(g, 3, 4, dtype=torch.float32), _randn(g, 5, dtype=torch.float32)], 0.5)
