"""Chapter 4's models: the Keras seed model, LeNetBN, the MLP (and its linear collapse), RandomShift."""
import pytest
import torch
from torch import nn

from cnnkit.models import MLP, KerasSeedCNN, LeNetBN, RandomShift, count_parameters


def test_keras_seed_model_matches_keras_parameter_count_and_shapes():
    model = KerasSeedCNN()
    # Keras: Conv2D(32, 3x3) 320 + Dense(128) 5408*128+128 + Dense(10) 1290 = 693,962
    assert count_parameters(model) == 320 + (32 * 13 * 13 * 128 + 128) + (128 * 10 + 10) == 693_962
    x = torch.randn(3, 1, 28, 28)
    assert model.conv(x).shape == (3, 32, 13, 13)
    assert model(x).shape == (3, 10)


def test_lenet_bn_and_mlp_have_comparable_size_and_right_shapes():
    cnn, mlp = LeNetBN(), MLP(hidden=(256, 64))
    x = torch.randn(4, 1, 28, 28)
    assert cnn(x).shape == (4, 10) and mlp(x).shape == (4, 10)
    n_cnn, n_mlp = count_parameters(cnn), count_parameters(mlp)
    assert abs(n_cnn - n_mlp) / n_mlp < 0.05, (n_cnn, n_mlp)
    assert MLP(in_features=2, hidden=(16, 16), num_classes=2)(torch.randn(5, 2)).shape == (5, 2)


def test_mlp_without_activation_is_affine_and_with_relu_is_not():
    torch.manual_seed(0)
    a, b = torch.randn(8, 784, dtype=torch.float64), torch.randn(8, 784, dtype=torch.float64)
    linear = MLP(hidden=(32, 16), act=None).double().eval()
    relu = MLP(hidden=(32, 16)).double().eval()
    assert not any(isinstance(m, nn.ReLU) for m in linear.modules())
    # an affine map f satisfies f(a) + f(b) = f(a + b) + f(0)
    zero = torch.zeros(1, 784, dtype=torch.float64)
    gap = lambda f: (f(a) + f(b) - f(a + b) - f(zero)).abs().max().item()
    with torch.no_grad():
        assert gap(linear) < 1e-10
        assert gap(relu) > 1e-3


def test_random_shift_is_identity_in_eval_mode_and_when_disabled():
    x = torch.randn(4, 1, 28, 28)
    layer = RandomShift(2, 10).eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(RandomShift(0, 0).train()(x), x)


def test_random_shift_moves_images_by_at_most_max_shift_and_is_seeded():
    img = torch.zeros(64, 1, 28, 28)
    img[:, :, 12:16, 12:16] = 1.0                                  # a bright square in the middle
    layer = RandomShift(max_shift=2, max_degrees=0).train()
    torch.manual_seed(0)
    out = layer(img)
    assert out.shape == img.shape
    coords = torch.arange(28, dtype=torch.float32)

    def centre(t):                                                 # (B, 2) centre of mass (row, col)
        mass = t.sum(dim=(1, 2, 3))
        return torch.stack([(t.sum(dim=(1, 3)) * coords).sum(1) / mass, (t.sum(dim=(1, 2)) * coords).sum(1) / mass], 1)

    moved = (centre(out) - centre(img)).abs()
    assert moved.max() <= 2.0 + 1e-4, "a shift exceeded max_shift"
    assert moved.max() > 1.0, "shifts should use most of the allowed range"
    assert torch.allclose(out.sum(dim=(1, 2, 3)), img.sum(dim=(1, 2, 3)), atol=1e-3)  # the square stays inside
    torch.manual_seed(0)
    assert torch.equal(layer(img), out)                            # same seed, same shifts
    assert not torch.equal(layer(img), out)                        # next draw differs


def test_random_shift_rejects_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="must be >= 0"):
        RandomShift(-1, 0)
    with pytest.raises(ValueError, match=r"expects \(B, C, H, W\)"):
        RandomShift(2, 0).train()(torch.randn(28, 28))
