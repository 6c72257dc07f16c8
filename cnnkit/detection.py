"""Object detection for chapter 10: generated canvases and a small centre-based one-stage detector.

``make_canvases`` draws grey canvases holding several small, overlapping, low-contrast shapes (ellipses,
rectangles, triangles) with their ``xyxy`` boxes and labels, deterministic from a seed. ``CenterNet`` is a
CenterNet-style detector {Zhou et al., 2019, "Objects as Points"}: for every cell of a stride-4 grid it
predicts one heatmap per class (is an object's centre here?), the box's width and height, and the centre's
offset inside the cell. ``encode`` turns boxes into those targets, ``decode`` turns the outputs back into
boxes, and ``fit_detector`` trains with a focal loss on the heatmap and L1 on the sizes and offsets.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn


__all__ = ["CLASSES", "make_canvases", "CenterNet", "encode", "decode", "detector_loss", "fit_detector",
           "predict"]

CLASSES = ("ellipse", "rectangle", "triangle")


def _shape_mask(kind: int, cx: float, cy: float, w: float, h: float, xs: torch.Tensor, ys: torch.Tensor):
    """Pixels (centres at xs, ys) covered by a shape whose tight box is (cx, cy, w, h)."""
    u, v = (xs - cx) / (w / 2), (ys - cy) / (h / 2)         # box mapped to [-1, 1]^2
    if kind == 0:
        return u ** 2 + v ** 2 <= 1.0
    if kind == 1:
        return (u.abs() <= 1) & (v.abs() <= 1)
    return (v <= 1) & (u.abs() <= (v + 1) / 2)                 # apex at the top, base at the bottom


def _covered(box: torch.Tensor, others: torch.Tensor) -> float:
    """Largest share of ``box (1, 4)`` or of one of ``others (k, 4)`` that their intersection covers."""
    wh = (torch.minimum(box[:, 2:], others[:, 2:]) - torch.maximum(box[:, :2], others[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]                                              # (k,)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])              # noqa: E731
    return float(torch.maximum(inter / area(box), inter / area(others)).max())


def make_canvases(n: int, size: int = 64, max_objects: int = 6, min_wh: int = 6, max_wh: int = 20,
                  contrast: tuple[float, float] = (0.25, 0.8), noise: float = 0.08, max_cover: float = 0.4,
                  seed: int = 0) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """``n`` canvases ``(n, 1, size, size)`` in [0, 1] and one target dict per canvas (``boxes (k, 4)`` xyxy,
    ``labels (k,)`` int64 indices into ``CLASSES``), 1 to ``max_objects`` objects each.

    Each object has its own width and height in [min_wh, max_wh] pixels and a brightness that differs from
    the local background by ``contrast`` (drawn uniformly, either sign); later objects may cover up to
    ``max_cover`` of an earlier object's box (and overlap by at most that share of their own). A smooth
    background gradient and pixel noise make faint objects hard to see. Deterministic: the same ``seed`` gives the same canvases.
    """
    if n < 1 or size < 2 * max_wh or not 1 <= min_wh <= max_wh or max_objects < 1:
        raise ValueError(f"make_canvases: need n >= 1, 1 <= min_wh <= max_wh <= size / 2 and max_objects >= 1; "
                         f"got n={n}, size={size}, min_wh={min_wh}, max_wh={max_wh}, max_objects={max_objects}.")
    g = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=g).item()

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    images, targets = torch.empty(n, 1, size, size), []
    for i in range(n):
        gx, gy = uniform(-0.3, 0.3), uniform(-0.3, 0.3)
        img = 0.5 + (gx * (xs - size / 2) + gy * (ys - size / 2)) / size
        boxes, labels = [], []
        for _ in range(int(torch.randint(1, max_objects + 1, (), generator=g))):
            for _attempt in range(20):                                  # find a spot that does not hide others
                w, h = uniform(min_wh, max_wh), uniform(min_wh, max_wh)
                cx, cy = uniform(w / 2, size - w / 2), uniform(h / 2, size - h / 2)
                box = torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]])
                if not boxes or _covered(box, torch.cat(boxes)) <= max_cover:
                    break
            else:
                continue
            kind = int(torch.randint(len(CLASSES), (), generator=g))
            mask = _shape_mask(kind, cx, cy, w, h, xs, ys)
            sign = 1.0 if torch.rand((), generator=g) < 0.5 else -1.0
            img = torch.where(mask, img[mask].mean() + sign * uniform(*contrast), img)
            boxes.append(box)
            labels.append(kind)
        img = img + noise * torch.randn(size, size, generator=g)
        images[i, 0] = img.clamp(0, 1)
        targets.append({"boxes": torch.cat(boxes), "labels": torch.tensor(labels, dtype=torch.long)})
    return images, targets


def _block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class CenterNet(nn.Module):
    """A small one-stage, anchor-free detector: ``(B, 1, H, W)`` -> ``(B, C + 4, H / 4, W / 4)``.

    Output channels: ``C`` heatmap logits (one per class), then width and height (in pixels / stride), then
    the centre's x and y offset within its cell (in cells, 0..1).
    """

    stride = 4

    def __init__(self, num_classes: int = len(CLASSES), width: int = 32):
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(_block(1, width // 2, 2), _block(width // 2, width, 2),   # stride 4
                                  _block(width, width), _block(width, width, dilation=2),
                                  _block(width, width, dilation=4))
        self.head = nn.Conv2d(width, num_classes + 4, 1)
        with torch.no_grad():                                   # start with a low object prior (CenterNet)
            self.head.bias[:num_classes].fill_(-2.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def encode(targets: list[dict[str, torch.Tensor]], num_classes: int, grid: int, stride: int = 4):
    """Boxes -> training targets on a ``grid x grid`` map: ``heat (B, C, G, G)`` (a Gaussian bump at each
    centre cell, 1 at the centre), ``wh (B, 2, G, G)``, ``offset (B, 2, G, G)`` and ``mask (B, G, G)`` (True
    at the centre cells, where size and offset are trained)."""
    b = len(targets)
    heat = torch.zeros(b, num_classes, grid, grid)
    wh, offset = torch.zeros(b, 2, grid, grid), torch.zeros(b, 2, grid, grid)
    mask = torch.zeros(b, grid, grid, dtype=torch.bool)
    cells = torch.arange(grid, dtype=torch.float32)
    for i, t in enumerate(targets):
        for box, label in zip(t["boxes"].float(), t["labels"].tolist()):
            if not 0 <= label < num_classes:
                raise ValueError(f"encode: label {label} is not in 0..{num_classes - 1}.")
            cx, cy = (box[0] + box[2]) / 2 / stride, (box[1] + box[3]) / 2 / stride      # in cells
            w, h = (box[2] - box[0]) / stride, (box[3] - box[1]) / stride
            col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
            sigma = max(0.5, math.sqrt(float(w * h)) / 4)
            bump = torch.exp(-((cells[None, :] - col) ** 2 + (cells[:, None] - row) ** 2) / (2 * sigma ** 2))
            heat[i, label] = torch.maximum(heat[i, label], bump)
            wh[i, :, row, col] = torch.stack([w, h])
            offset[i, :, row, col] = torch.stack([cx - col, cy - row])
            mask[i, row, col] = True
    return heat, wh, offset, mask


def detector_loss(out: torch.Tensor, heat: torch.Tensor, wh: torch.Tensor, offset: torch.Tensor,
                  mask: torch.Tensor, size_weight: float = 0.1) -> torch.Tensor:
    """CenterNet's loss: a penalty-reduced focal loss on the heatmap (alpha 2, beta 4) plus L1 on size and
    offset at the centre cells, each normalised by the number of objects."""
    c = heat.shape[1]
    p = torch.sigmoid(out[:, :c]).clamp(1e-4, 1 - 1e-4)
    pos = heat == 1
    n = pos.sum().clamp(min=1)
    focal = torch.where(pos, (1 - p) ** 2 * torch.log(p), (1 - heat) ** 4 * p ** 2 * torch.log(1 - p))
    m = mask[:, None].expand_as(wh)
    size_l1 = (out[:, c:c + 2] - wh).abs()[m].sum() / n
    off_l1 = (out[:, c + 2:c + 4] - offset).abs()[m].sum() / n
    return -focal.sum() / n + size_weight * size_l1 + off_l1


def decode(out: torch.Tensor, k: int = 30, threshold: float = 0.05, stride: int = 4) -> list[dict]:
    """Outputs ``(B, C + 4, G, G)`` -> one dict per image (``boxes`` xyxy in pixels, ``scores``, ``labels``).

    A cell is a detection when its class score is the maximum of its 3x3 neighbourhood (this replaces NMS)
    and among the ``k`` best of its image, above ``threshold``."""
    c = out.shape[1] - 4
    heat = torch.sigmoid(out[:, :c])
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    b, _, g, _ = heat.shape
    scores, idx = peaks.flatten(1).topk(min(k, c * g * g), dim=1)           # (B, k)
    labels, cell = idx // (g * g), idx % (g * g)
    row, col = cell // g, cell % g
    results = []
    for i in range(b):
        keep = scores[i] > threshold
        r, q = row[i][keep], col[i][keep]
        w, h = out[i, c, r, q] * stride, out[i, c + 1, r, q] * stride
        cx, cy = (q + out[i, c + 2, r, q]) * stride, (r + out[i, c + 3, r, q]) * stride
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        results.append({"boxes": boxes, "scores": scores[i][keep], "labels": labels[i][keep]})
    return results


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256, **decode_kw) -> list[dict]:
    """Run ``model`` in eval mode over ``images (N, 1, H, W)`` and decode; results on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    results = []
    for x in images.split(batch_size):
        results += decode(model(x.to(device)).cpu(), stride=model.stride, **decode_kw)
    return results


def fit_detector(model: nn.Module, images: torch.Tensor, targets: list[dict], epochs: int,
                 batch_size: int = 32, lr: float = 3e-3, device: torch.device | str = "cpu",
                 seed: int = 0, verbose: bool = True) -> list[float]:
    """Train with Adam and a one-cycle schedule; print one line per epoch; return the mean loss per epoch."""
    grid = images.shape[-1] // model.stride
    heat, wh, offset, mask = encode(targets, model.num_classes, grid, model.stride)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(images) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    model.to(device)
    losses, start = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(images), generator=g).split(batch_size):
            batch = [t[idx].to(device) for t in (images, heat, wh, offset, mask)]
            loss = detector_loss(model(batch[0]), *batch[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(images))
        if verbose:
            print(f"epoch {epoch + 1:2d}  loss {losses[-1]:.3f}  "
                  f"({time.perf_counter() - start:.0f} s)")
    return losses
