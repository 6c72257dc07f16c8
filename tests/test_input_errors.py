"""Bad input to cnnkit's ops and models gets a ValueError/TypeError that names the problem and the fix,
not an error from deep inside torch (issue 10: int64 into conv2d, count_parameters(tensor), wrong shapes)."""
import re

import pytest
import torch

from cnnkit.models import MLP, KerasSeedCNN, LeNet5, LeNetBN, SmallCNN, count_parameters
from cnnkit.ops import avg_pool2d, conv2d, conv2d_naive, global_avg_pool2d, max_pool2d

CONVS = [conv2d, conv2d_naive]
IMAGE_MODELS = [SmallCNN, LeNet5, LeNetBN, KerasSeedCNN]


@pytest.mark.parametrize("conv", CONVS, ids=lambda f: f.__name__)
def test_conv_rejects_integer_input(conv):
    x = torch.arange(16).reshape(1, 1, 4, 4)  # int64, as torch.tensor/arange give for integers
    w = torch.ones(1, 1, 3, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor, got torch\.int64.*x\.float\(\)"):
        conv(x, w)
    with pytest.raises(ValueError, match=r"weight must be a floating-point tensor.*weight\.float\(\)"):
        conv(x.float(), w)
    with pytest.raises(ValueError, match=r"bias must be a floating-point tensor"):
        conv(x.float(), w.float(), torch.zeros(1, dtype=torch.int64))


@pytest.mark.parametrize("conv", CONVS, ids=lambda f: f.__name__)
def test_conv_rejects_mixed_dtypes_and_non_tensor_bias(conv):
    x, w = torch.rand(1, 1, 4, 4, dtype=torch.float64), torch.rand(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"one dtype.*torch\.float64.*torch\.float32.*x\.to\(weight\.dtype\)"):
        conv(x, w)
    with pytest.raises(ValueError, match=r"bias must be a torch tensor or None, got list"):
        conv(x.float(), w, [0.0])


def test_conv_still_accepts_float_input():
    x, w = torch.rand(2, 3, 6, 6, dtype=torch.float64), torch.rand(4, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv2d(x, w), torch.nn.functional.conv2d(x, w))


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d], ids=lambda f: f.__name__)
def test_pooling_rejects_integer_input(pool):
    with pytest.raises(ValueError, match=r"floating-point.*x\.float\(\)"):
        pool(torch.arange(16).reshape(1, 1, 4, 4), 2)
    with pytest.raises(ValueError, match=r"floating-point"):
        global_avg_pool2d(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))


def test_count_parameters_rejects_a_tensor():
    with pytest.raises(TypeError, match=r"expects an nn\.Module.*got a tensor of shape \(3, 4\).*numel\(\)"):
        count_parameters(torch.zeros(3, 4))
    with pytest.raises(TypeError, match=r"an instance: SmallCNN\(\), not SmallCNN"):
        count_parameters(SmallCNN)
    assert count_parameters(torch.nn.Linear(3, 2)) == 8


@pytest.mark.parametrize("model_cls", IMAGE_MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape, fix", [
    ((28, 28), r"x\[None, None\]"),
    ((1, 28, 28), r"x\.unsqueeze\(0\)"),
    ((5, 28, 28), r"x\.unsqueeze\(1\)"),
    ((5, 28, 28, 1), r"x\.permute\(0, 3, 1, 2\)"),
    ((5, 3, 28, 28), r"in_channels=3"),
    ((5, 1, 32, 32), r"Resize the images to 28×28"),
    ((5, 1, 8, 8), r"(Resize|too small)"),
])
def test_image_models_name_expected_and_actual_shape(model_cls, shape, fix):
    model = model_cls().eval()
    expected = re.escape(f"{model_cls.__name__} expects input of shape (B, 1, 28, 28), got {shape}")
    with pytest.raises(ValueError, match=f"{expected}.*{fix}"):
        model(torch.zeros(shape))


@pytest.mark.parametrize("model_cls", IMAGE_MODELS, ids=lambda c: c.__name__)
def test_image_models_reject_integer_images_and_non_tensors(model_cls):
    model = model_cls().eval()
    with pytest.raises(ValueError, match=r"floating-point images, got torch\.uint8.*x\.float\(\) / 255"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"expects a tensor of shape \(B, 1, 28, 28\), got list"):
        model([[0.0]])
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_image_models_check_their_own_channel_count():
    model = SmallCNN(in_channels=3).eval()
    assert model(torch.zeros(1, 3, 28, 28)).shape == (1, 10)
    with pytest.raises(ValueError, match=re.escape("expects input of shape (B, 3, 28, 28), got (1, 1, 28, 28)")):
        model(torch.zeros(1, 1, 28, 28))


def test_mlp_names_expected_and_actual_size():
    model = MLP().eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model(torch.zeros(2, 784)).shape == (2, 10)
    with pytest.raises(ValueError, match=re.escape("MLP(in_features=784) expects") + r".*got \(2, 1, 32, 32\).*"
                       + re.escape("MLP(in_features=1024")):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(784,\); add a batch axis with x\.unsqueeze\(0\)"):
        model(torch.zeros(784))
    with pytest.raises(ValueError, match=r"floating-point inputs, got torch\.int64"):
        model(torch.zeros(2, 784, dtype=torch.int64))
