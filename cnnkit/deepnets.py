"""Deep plain and residual CNNs (chapter 5), with optional batch norm, a choice of initialisation and of
shortcut, and a helper that measures each layer's gradient norm.

    model = deep_cnn(depth=20, residual=True, bn=True)          # ResNet-20 layout, 8-16-32 channels
    norms = conv_grad_norms(model, x, y)                         # (n_conv,) gradient norm per conv layer

Layout (He et al., 2016, section 4.2): a 3×3 stem convolution, then ``len(widths)`` stages of
``n`` blocks of two 3×3 convolutions each (the first block of every stage after the first halves the
resolution with stride 2 and changes the width), then global average pooling and a linear layer:
``depth = 2 * len(widths) * n + 2`` weighted layers. Shapes in comments are ``(B, C, H, W)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACTIVATIONS", "INITS", "SHORTCUTS", "pad_shortcut", "Shortcut", "Block", "DeepCNN", "deep_cnn",
           "init_weights", "conv_layers", "conv_grad_norms"]

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
INITS = ("default", "kaiming", "xavier")
SHORTCUTS = ("projection", "identity")


def _choice(name: str, value: str, options) -> str:
    if value not in options:
        raise ValueError(f"{name}={value!r} is not supported; use one of {', '.join(map(repr, options))}.")
    return value


def pad_shortcut(x: torch.Tensor, c_out: int, stride: int = 1) -> torch.Tensor:
    """Parameter-free shortcut when the shape changes ("option A"): keep every ``stride``-th pixel and
    append zero channels up to ``c_out``. x (B, C, H, W) -> (B, c_out, ceil(H/stride), ceil(W/stride))."""
    if x.dim() != 4:
        raise ValueError(f"pad_shortcut expects (B, C, H, W), got shape {tuple(x.shape)}")
    if c_out < x.shape[1]:
        raise ValueError(f"pad_shortcut can only add channels: c_out={c_out} < {x.shape[1]} input channels; "
                         "use a projection shortcut to reduce the width.")
    x = x[:, :, ::stride, ::stride]
    zeros = x.new_zeros(x.shape[0], c_out - x.shape[1], x.shape[2], x.shape[3])
    return torch.cat([x, zeros], dim=1)


class Shortcut(nn.Module):
    """The skip path of a residual block: the identity when shapes match; otherwise a 1×1 convolution
    with the block's stride (``"projection"``, + BN if ``bn``) or :func:`pad_shortcut` (``"identity"``)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kind: str = "projection", bn: bool = False):
        super().__init__()
        self.c_out, self.stride = c_out, stride
        self.kind = _choice("shortcut", kind, SHORTCUTS)
        self.proj = None
        if kind == "projection" and (stride != 1 or c_in != c_out):
            layers = [nn.Conv2d(c_in, c_out, 1, stride=stride, bias=not bn)]
            self.proj = nn.Sequential(*layers, *([nn.BatchNorm2d(c_out)] if bn else []))

    def forward(self, x):
        if self.proj is not None:
            return self.proj(x)
        if self.stride == 1 and x.shape[1] == self.c_out:
            return x
        return pad_shortcut(x, self.c_out, self.stride)


class Block(nn.Module):
    """Two 3×3 convolutions, each followed by [BN and] the activation; with ``residual`` the input is
    added back before the second activation: ``y = act(F(x) + shortcut(x))`` (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, residual: bool = False, bn: bool = False,
                 act: str = "relu", shortcut: str = "projection"):
        super().__init__()
        act_cls = ACTIVATIONS[_choice("act", act, ACTIVATIONS)]
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not bn)
        self.bn1 = nn.BatchNorm2d(c_out) if bn else nn.Identity()
        self.act1 = act_cls()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=not bn)
        self.bn2 = nn.BatchNorm2d(c_out) if bn else nn.Identity()
        self.act2 = act_cls()
        self.shortcut = Shortcut(c_in, c_out, stride, shortcut, bn) if residual else None

    def forward(self, x):                                     # (B, c_in, H, W)
        out = self.act1(self.bn1(self.conv1(x)))              # (B, c_out, H/s, W/s)
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)                      # y = F(x) + x
        return self.act2(out)


class DeepCNN(nn.Module):
    """Stem, ``len(widths)`` stages of ``blocks`` blocks, global average pooling, linear head."""

    def __init__(self, blocks: int = 3, widths: tuple[int, ...] = (8, 16, 32), residual: bool = False,
                 bn: bool = False, act: str = "relu", shortcut: str = "projection", in_channels: int = 1,
                 num_classes: int = 10):
        super().__init__()
        if blocks < 1 or not widths:
            raise ValueError(f"need blocks >= 1 and at least one width, got blocks={blocks}, widths={widths}")
        act_cls = ACTIVATIONS[_choice("act", act, ACTIVATIONS)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=not bn),
                                  nn.BatchNorm2d(widths[0]) if bn else nn.Identity(), act_cls())
        layers, c_in = [], widths[0]
        for i, c_out in enumerate(widths):
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(Block(c_in, c_out, stride, residual, bn, act, shortcut))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)
        self.depth = 2 * len(widths) * blocks + 2

    def forward(self, x):                                     # (B, 1, 28, 28)
        x = self.blocks(self.stem(x))                         # (B, widths[-1], 7, 7)
        return self.head(x.mean(dim=(2, 3)))                  # global average pool -> (B, 10)


def init_weights(model: nn.Module, scheme: str = "default", nonlinearity: str = "relu") -> nn.Module:
    """Re-initialise every conv and linear layer: ``"kaiming"`` (He et al., 2015: normal, std
    sqrt(2 / fan_in)), ``"xavier"`` (Glorot & Bengio, 2010), or ``"default"`` (leave PyTorch's).
    Biases become zero for the first two. Returns ``model``."""
    _choice("init", scheme, INITS)
    if scheme == "default":
        return model
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
            else:
                nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain(nonlinearity))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def deep_cnn(depth: int = 20, widths: tuple[int, ...] = (8, 16, 32), residual: bool = False, bn: bool = False,
             act: str = "relu", init: str = "default", shortcut: str = "projection",
             num_classes: int = 10, in_channels: int = 1) -> DeepCNN:
    """A :class:`DeepCNN` with ``depth`` weighted layers (``depth - 2`` must be a multiple of
    ``2 * len(widths)``: 8, 14, 20, 26, 32... for three stages), initialised with ``init``."""
    per = 2 * len(widths)
    if depth < per + 2 or (depth - 2) % per:
        raise ValueError(f"depth={depth} does not fit {len(widths)} stages of two-conv blocks: use "
                         f"depth = {per}*n + 2 (e.g. {per + 2}, {2 * per + 2}, {3 * per + 2}).")
    model = DeepCNN((depth - 2) // per, tuple(widths), residual, bn, act, shortcut, in_channels, num_classes)
    return init_weights(model, init, "relu" if act == "relu" else act)


def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    """The 3×3 convolutions of ``model`` in forward order (shortcut projections left out)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def conv_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One forward and backward pass of the cross-entropy on ``(x, y)``; returns the L2 norm of the
    gradient of every 3×3 conv weight, in forward order, as a CPU tensor ``(n_conv,)``."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    norms = torch.stack([m.weight.grad.norm() for m in conv_layers(model)]).detach().cpu()
    model.zero_grad(set_to_none=True)
    return norms
