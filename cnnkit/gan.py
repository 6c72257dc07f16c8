"""A small DCGAN for 28×28 digits (chapter 9): generator, discriminator, losses, training, quality score.

Images live in [-1, 1] (the generator ends in tanh); ``to_unit``/``from_unit`` convert to and from [0, 1].
The quality score asks a digit classifier trained on real MNIST how confidently it recognises each generated
digit (``digit_score``) and compares the classifier's features of real and generated digits with a Fréchet
distance (``frechet_distance``).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Generator", "Discriminator", "dcgan_init", "d_loss", "g_loss", "train_gan", "to_unit",
           "from_unit", "digit_score", "frechet_distance", "gaussian_stats"]

G_LOSSES = ("nonsaturating", "minimax")


class Generator(nn.Module):
    """z (B, nz) -> image (B, 1, 28, 28) in [-1, 1]: transposed convolutions 1 -> 7 -> 14 -> 28 pixels.

    (B, nz, 1, 1) -> convT 7     -> (B, 2w, 7, 7)   BN ReLU
                  -> convT 4/2   -> (B, w, 14, 14)  BN ReLU
                  -> convT 4/2   -> (B, 1, 28, 28)  tanh
    """

    def __init__(self, nz: int = 16, width: int = 32):
        super().__init__()
        if nz < 1 or width < 1:
            raise ValueError(f"nz and width must be >= 1, got nz={nz}, width={width}")
        self.nz = nz
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, 2 * width, 7, 1, 0, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.nz:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"Generator expects noise of shape (B, {self.nz}), got {shape}; draw it with "
                             f"torch.randn(B, {self.nz}).")
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """image (B, 1, 28, 28) -> one logit per image (B,): strided convolutions 28 -> 14 -> 7 -> 1.

    (B, 1, 28, 28) -> conv 4/2 -> (B, w, 14, 14) LeakyReLU(0.2)
                   -> conv 4/2 -> (B, 2w, 7, 7)  BN LeakyReLU(0.2)
                   -> conv 7   -> (B, 1, 1, 1)   the logit (no sigmoid: the losses take logits)
    """

    def __init__(self, width: int = 16):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 7, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"Discriminator expects images of shape (B, 1, 28, 28) in [-1, 1], got {shape}.")
        return self.net(x).flatten()


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN initialisation (Radford et al., 2016): conv weights ~ N(0, 0.02), BN scale ~ N(1, 0.02).

    Use it as ``model.apply(dcgan_init)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: -log D(x) - log(1 - D(G(z))), averaged; from logits, so D = sigmoid(logit).

    -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l) never overflow."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Generator loss from D's logits on fakes.

    ``"minimax"``: minimise log(1 - D(G(z))) = -softplus(l) (the game's own objective; its gradient
    vanishes when D rejects the fakes). ``"nonsaturating"``: minimise -log D(G(z)) = softplus(-l)."""
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"kind must be one of {G_LOSSES}, got {kind!r}")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1) / 2


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2 - 1


def train_gan(G: Generator, D: Discriminator, images: torch.Tensor, epochs: int, batch_size: int = 64,
              lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), kind: str = "nonsaturating",
              seed: int = 0, on_epoch: Callable[[int], None] | None = None, verbose: bool = True) -> dict:
    """Alternate one D step and one G step per batch with Adam; return per-step and per-epoch logs.

    ``images``: (N, 1, 28, 28) in [-1, 1]. Shuffling and noise come from a generator seeded with ``seed``.
    ``on_epoch(epoch)`` is called after each epoch (1-based), e.g. to take samples or score them; its time is
    not counted in ``seconds``. Returns ``{"d_loss", "g_loss", "d_real", "d_fake"}`` (per step: D's mean
    output on the real and fake batch before its update) and ``"epoch_seconds"``.
    """
    if kind not in G_LOSSES:
        raise ValueError(f"kind must be one of {G_LOSSES}, got {kind!r}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError("images must be a tensor (N, 1, 28, 28) scaled to [-1, 1] (use from_unit on [0, 1]).")
    if images.min() < -1.001 or images.max() > 1.001:
        raise ValueError(f"images must lie in [-1, 1] like the generator's tanh output, got "
                         f"[{images.min():.2f}, {images.max():.2f}]; scale [0, 1] pixels with from_unit(x).")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    log = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": [], "epoch_seconds": []}
    n = len(images)
    for epoch in range(1, epochs + 1):
        G.train(), D.train()
        start = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):
            real = images[order[i:i + batch_size]].to(device)
            z = torch.randn(batch_size, G.nz, generator=gen).to(device)
            fake = G(z)
            real_logits, fake_logits = D(real), D(fake.detach())
            loss_d = d_loss(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = g_loss(D(fake), kind)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            log["d_loss"].append(loss_d.item())
            log["g_loss"].append(loss_g.item())
            log["d_real"].append(torch.sigmoid(real_logits).mean().item())
            log["d_fake"].append(torch.sigmoid(fake_logits).mean().item())
        log["epoch_seconds"].append(time.perf_counter() - start)
        steps = n // batch_size
        if verbose:
            d = sum(log["d_loss"][-steps:]) / steps
            g = sum(log["g_loss"][-steps:]) / steps
            print(f"epoch {epoch:2d}: D loss {d:.3f}  G loss {g:.3f}  "
                  f"D(x) {sum(log['d_real'][-steps:]) / steps:.2f}  "
                  f"D(G(z)) {sum(log['d_fake'][-steps:]) / steps:.2f}  "
                  f"{log['epoch_seconds'][-1]:.1f} s")
        if on_epoch is not None:
            on_epoch(epoch)
    return log


def digit_score(probs: torch.Tensor, threshold: float = 0.9, num_classes: int = 10) -> dict:
    """Quality of generated digits from a classifier's softmax ``probs`` (N, K).

    ``confident``: share of images whose top probability is >= ``threshold``; ``counts``: how many confident
    images fall in each class; ``classes``: number of classes with at least one confident image; ``entropy``:
    entropy (nats) of the confident images' class distribution (log K for a uniform spread; 0 when all are one
    class)."""
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"probs must be a (N, {num_classes}) tensor of softmax probabilities.")
    top, label = probs.max(dim=1)
    keep = top >= threshold
    counts = torch.bincount(label[keep], minlength=num_classes)
    share = counts / counts.sum().clamp(min=1)
    entropy = -(share[share > 0] * share[share > 0].log()).sum().item()
    return {"confident": keep.float().mean().item(), "counts": counts.tolist(),
            "classes": int((counts > 0).sum()), "entropy": entropy, "max_entropy": math.log(num_classes)}


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of ``features`` (N, D), in float64."""
    if features.dim() != 2 or len(features) < 2:
        raise ValueError("features must be (N, D) with N >= 2.")
    f = features.double()
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (len(f) - 1)


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Fréchet distance between two Gaussians: |mu1 - mu2|² + tr(C1 + C2 - 2 (C1^½ C2 C1^½)^½).

    The FID of Heusel et al. (2017) is this distance between Inception features; here any features work."""
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError("means must be (D,) and covariances (D, D) with the same D for both Gaussians.")
    s1 = _sqrtm_psd(cov1.double())
    cross = _sqrtm_psd(s1 @ cov2.double() @ s1)
    diff = (mu1.double() - mu2.double())
    return float(diff @ diff + torch.trace(cov1.double() + cov2.double() - 2 * cross))
