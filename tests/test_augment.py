"""cnnkit.augment: per-image affine resampling of a batch, checked against torchvision image by image."""
import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cnnkit.augment import affine, random_affine


def _reference(x, angle, tx, ty, scale, fill=None):
    return torch.stack([
        TF.affine(x[i], angle=float(angle[i]), translate=[float(tx[i]), float(ty[i])], scale=float(scale[i]),
                  shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR, fill=fill)
        for i in range(x.shape[0])])


@pytest.mark.parametrize("fill", [None, 0.0, -0.42])
@pytest.mark.parametrize("shape", [(3, 2, 9, 12), (2, 1, 28, 28), (1, 3, 7, 5)])
def test_affine_matches_torchvision_per_image(shape, fill):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(*shape, generator=g)
    b = shape[0]
    angle = torch.rand(b, generator=g) * 120 - 60
    tx, ty = torch.rand(b, generator=g) * 6 - 3, torch.rand(b, generator=g) * 6 - 3
    scale = torch.rand(b, generator=g) * 0.6 + 0.7
    got = affine(x, angle, tx, ty, scale, fill=fill)
    assert got.shape == x.shape and got.dtype == x.dtype
    torch.testing.assert_close(got, _reference(x, angle, tx, ty, scale, fill), atol=1e-5, rtol=1e-5)


def test_identity_and_integer_shift():
    x = torch.rand(2, 1, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(affine(x, 0.0, 0.0, 0.0), x)
    shifted = affine(x, 0.0, 2.0, 1.0)                 # right 2, down 1, zeros shifted in
    torch.testing.assert_close(shifted[..., 1:, 2:], x[..., :-1, :-2])
    assert shifted[..., :1, :].abs().max() == 0 and shifted[..., :, :2].abs().max() == 0


def test_random_affine_draws_per_image_and_repeats_with_a_seed():
    x = torch.rand(1, 1, 12, 12).expand(6, 1, 12, 12).contiguous()
    a = random_affine(x, degrees=30, max_shift=2, generator=torch.Generator().manual_seed(0))
    b = random_affine(x, degrees=30, max_shift=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0], a[1])              # each copy got its own draw
    torch.testing.assert_close(random_affine(x), x)    # nothing asked for: unchanged


@pytest.mark.parametrize("call, match", [
    (lambda: affine(torch.rand(3, 8, 8), 0.0, 0.0, 0.0), "B, C, H, W"),
    (lambda: affine(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 0.0, 0.0, 0.0), "floating"),
    (lambda: affine(torch.rand(2, 1, 4, 4), torch.zeros(3), 0.0, 0.0), "one value per image"),
    (lambda: affine(torch.rand(2, 1, 4, 4), 0.0, 0.0, 0.0, scale=0.0), "scale must be > 0"),
    (lambda: random_affine(torch.rand(2, 1, 4, 4), degrees=-1), ">= 0"),
    (lambda: random_affine(torch.rand(2, 1, 4, 4), scale=(1.2, 0.8)), "low <= high"),
])
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_every_bundled_photo_loads_with_the_network_blocked(monkeypatch):
    """Chapter 7 shows its transforms on cnnkit.data.photo(...): every name in PHOTOS must load offline."""
    import socket

    from cnnkit.data import PHOTOS, photo

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in PHOTOS:
        img = photo(name, size=32)
        assert img.dim() == 3 and img.shape[0] == 3 and min(img.shape[1:]) == 32, name
        assert -1e-4 <= img.min() and img.max() <= 1 + 1e-4, name   # resizing rounds a hair past 1
