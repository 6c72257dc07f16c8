"""cnnkit.inside: saliency and Grad-CAM by hand against captum, FGSM against its formula, pruning helpers."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.inside import (accuracy_under_fgsm, cam_from, fgsm, grad_cam, prune_global, prunable, saliency,
                           sparsity)
from cnnkit.models import LeNet5

captum_attr = pytest.importorskip("captum.attr")


def _model(seed=0):
    torch.manual_seed(seed)
    model = LeNet5().eval()
    # random, not tiny, weights so that ReLUs are active and gradients differ between classes
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


def _x(b=4, seed=1):
    return torch.randn(b, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layer_index", [0, 3, 4])
def test_grad_cam_matches_captum(layer_index):
    model, x = _model(), _x()
    target = torch.tensor([0, 3, 7, 9])
    layer = model.features[layer_index]
    ours = grad_cam(model, layer, x, target)
    ref = captum_attr.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)[:, 0]
    assert ours.shape == ref.shape
    assert ref.abs().max() > 0
    torch.testing.assert_close(ours, ref.detach(), atol=1e-6, rtol=1e-5)


def test_grad_cam_upsampled_matches_captum_interpolate():
    model, x = _model(2), _x(3, 5)
    layer = model.features[3]
    ours = grad_cam(model, layer, x, 5, upsample=True)
    ref = captum_attr.LayerGradCam(model, layer).attribute(x, target=5, relu_attributions=True)
    ref = captum_attr.LayerAttribution.interpolate(ref, (28, 28), interpolate_mode="bilinear")[:, 0]
    assert ours.shape == (3, 28, 28)
    torch.testing.assert_close(ours, ref.detach(), atol=1e-6, rtol=1e-5)


def test_grad_cam_depends_on_target_and_is_non_negative():
    model, x = _model(), _x(2)
    a = grad_cam(model, model.features[3], x, 1)
    b = grad_cam(model, model.features[3], x, 8)
    assert (a >= 0).all() and not torch.allclose(a, b)


def test_cam_from_formula_and_errors():
    g = torch.Generator().manual_seed(0)
    acts, grads = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    w = grads.mean(dim=(2, 3))
    expected = torch.relu(torch.einsum("bc,bchw->bhw", w, acts))
    torch.testing.assert_close(cam_from(acts, grads), expected)
    with pytest.raises(ValueError, match="same shape"):
        cam_from(acts, grads[:, :2])
    with pytest.raises(ValueError, match="B, C, H, W"):
        cam_from(acts[0], grads[0])


def test_grad_cam_rejects_foreign_layer():
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(_model(), nn.Conv2d(1, 6, 5), _x(1), 0)


def test_saliency_matches_captum():
    model, x = _model(), _x()
    target = torch.tensor([1, 2, 3, 4])
    ref = captum_attr.Saliency(model).attribute(x.clone().requires_grad_(), target=target).amax(1)
    torch.testing.assert_close(saliency(model, x, target), ref, atol=1e-7, rtol=1e-6)


def test_fgsm_formula_range_and_effect():
    model, x = _model(), _x(6)
    y = model(x).argmax(1)                       # the model's own predictions: accuracy 1 at eps 0
    xr = x.clone().requires_grad_()
    F.cross_entropy(model(xr), y).backward()
    adv = fgsm(model, x, y, 0.1, -0.5, 2.0)
    torch.testing.assert_close(adv, (x + 0.1 * xr.grad.sign()).clamp(-0.5, 2.0))
    assert adv.min() >= -0.5 and adv.max() <= 2.0
    accs = accuracy_under_fgsm(model, x, y, [0.0, 0.5], -10, 10)
    assert accs[0] == 1.0 and accs[1] < 1.0
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, -0.1, 0, 1)
    with pytest.raises(ValueError, match="lo < hi"):
        fgsm(model, x, y, 0.1, 1, 0)


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.9])
def test_prune_global_zeros_the_smallest_weights_over_all_layers(amount):
    model = _model()
    pruned = prune_global(model, amount)
    assert sparsity(model) == 0.0                 # the original is untouched
    weights = torch.cat([m.weight.detach().flatten() for m, _ in prunable(model)])
    k = round(amount * weights.numel())
    assert sparsity(pruned) == pytest.approx(k / weights.numel())
    if k:
        threshold = weights.abs().sort().values[k - 1]
        kept = torch.cat([getattr(m, "weight").detach().flatten() for m, _ in prunable(pruned)])
        assert (kept[kept != 0].abs() >= threshold).all()


def test_prune_global_bad_amount_and_model():
    with pytest.raises(ValueError, match="fraction"):
        prune_global(_model(), 1.5)
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        prunable(nn.Sequential(nn.ReLU()))


def test_bad_input_messages():
    with pytest.raises(TypeError, match="tensor"):
        saliency(_model(), [[0.0]], 0)
    with pytest.raises(ValueError, match="one class index or one per image"):
        saliency(_model(), _x(3), torch.tensor([1, 2]))
