"""cnnkit.gan: shapes, losses against PyTorch's BCE, the gradient claim of chapter 9, the quality score and the
Fréchet distance against closed forms, determinism of a short training run."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnkit import gan


def test_shapes_and_ranges():
    torch.manual_seed(0)
    G, D = gan.Generator(nz=8, width=4), gan.Discriminator(width=4)
    G.apply(gan.dcgan_init), D.apply(gan.dcgan_init)
    x = G(torch.randn(5, 8))
    assert x.shape == (5, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (5,)


def test_bad_inputs_raise_clear_errors():
    G, D = gan.Generator(nz=8, width=4), gan.Discriminator(width=4)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        G(torch.randn(5, 7))
    with pytest.raises(ValueError, match="28, 28"):
        D(torch.randn(5, 1, 32, 32))
    with pytest.raises(ValueError, match="kind"):
        gan.g_loss(torch.zeros(3), "wasserstein")
    with pytest.raises(ValueError, match="from_unit"):
        gan.train_gan(G, D, torch.rand(70, 1, 28, 28) * 255, epochs=1)
    with pytest.raises(ValueError, match="probs"):
        gan.digit_score(torch.rand(4, 9))


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    G = gan.Generator(nz=16, width=32)
    G.apply(gan.dcgan_init)
    w = G.net[3].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert abs(G.net[1].weight.mean().item() - 1.0) < 0.01


def test_losses_match_bce_and_survive_large_logits():
    real, fake = torch.randn(50) * 3, torch.randn(50) * 3
    ones, zeros = torch.ones(50), torch.zeros(50)
    want_d = F.binary_cross_entropy_with_logits(real, ones) + F.binary_cross_entropy_with_logits(fake, zeros)
    assert torch.allclose(gan.d_loss(real, fake), want_d, atol=1e-6)
    assert torch.allclose(gan.g_loss(fake, "nonsaturating"), F.binary_cross_entropy_with_logits(fake, ones),
                          atol=1e-6)
    assert torch.allclose(gan.g_loss(fake, "minimax"), -F.binary_cross_entropy_with_logits(fake, zeros),
                          atol=1e-6)
    big = torch.tensor([-200.0, 200.0])
    assert torch.isfinite(gan.d_loss(big, big)) and torch.isfinite(gan.g_loss(big, "minimax"))


def test_minimax_gradient_vanishes_where_nonsaturating_does_not():
    # d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0 when D rejects (l -> -inf); d/dl -log sigmoid(l) -> -1
    logits = torch.tensor([-8.0, 0.0, 8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(gan.g_loss(logits, "minimax") * 3, logits)
    (g_ns,) = torch.autograd.grad(gan.g_loss(logits, "nonsaturating") * 3, logits)
    s = torch.sigmoid(logits.detach())
    assert torch.allclose(g_mm, -s, atol=1e-6) and torch.allclose(g_ns, s - 1, atol=1e-6)
    assert abs(g_mm[0]) < 1e-3 and abs(g_ns[0]) > 0.99


def test_training_is_deterministic_and_logs():
    imgs = gan.from_unit(torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        G, D = gan.Generator(nz=4, width=4), gan.Discriminator(width=4)
        seen = []
        log = gan.train_gan(G, D, imgs, epochs=2, batch_size=16, seed=3, on_epoch=seen.append, verbose=False)
        outs.append(G.eval()(torch.ones(2, 4)))
        assert seen == [1, 2] and len(log["d_loss"]) == 4 and len(log["epoch_seconds"]) == 2
    assert torch.equal(outs[0], outs[1])


def test_digit_score_counts_confident_classes():
    probs = torch.tensor([[0.95, 0.05] + [0.0] * 8,
                          [0.0, 0.92, 0.08] + [0.0] * 7,
                          [0.5, 0.5] + [0.0] * 8,
                          [0.0] * 9 + [1.0]])
    s = gan.digit_score(probs)
    assert s["confident"] == 0.75 and s["classes"] == 3
    assert s["counts"] == [1, 1] + [0] * 7 + [1]
    assert s["entropy"] == pytest.approx(math.log(3))
    one = gan.digit_score(torch.eye(10)[[3, 3, 3]])
    assert one["entropy"] == 0 and one["classes"] == 1


def test_frechet_distance_closed_forms():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    cov = a @ a.T + torch.eye(6, dtype=torch.float64)
    mu = torch.randn(6, generator=g, dtype=torch.float64)
    assert gan.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    # diagonal covariances: sum (sqrt(a) - sqrt(b))^2 plus the squared mean difference
    d1, d2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    m1, m2 = torch.zeros(3), torch.tensor([1.0, 2.0, 0.0])
    want = 5.0 + ((d1.sqrt() - d2.sqrt()) ** 2).sum().item()
    assert gan.frechet_distance(m1, torch.diag(d1), m2, torch.diag(d2)) == pytest.approx(want, rel=1e-9)
    mu_hat, cov_hat = gan.gaussian_stats(torch.randn(20000, 3, generator=g) * 2 + 1)
    assert torch.allclose(mu_hat, torch.ones(3, dtype=torch.float64), atol=0.05)
    assert torch.allclose(cov_hat, 4 * torch.eye(3, dtype=torch.float64), atol=0.15)
    with pytest.raises(ValueError, match="covariances"):
        gan.frechet_distance(m1, torch.eye(2), m2, torch.eye(3))
