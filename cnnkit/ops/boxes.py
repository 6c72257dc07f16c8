"""Boxes by hand: formats, IoU, non-maximum suppression and average precision (chapter 10).

Boxes are float tensors ``(N, 4)``; the working format is ``xyxy`` = (left, top, right, bottom) in pixel
edges. Every function takes its device and dtype from the input. Checked against ``torchvision.ops``
(``box_convert``, ``box_iou``, ``nms``, ``batched_nms``) and torchmetrics' ``MeanAveragePrecision`` (COCO
rules) in ``tests/test_boxes.py``. Differences, on purpose: ``box_iou`` returns 0 (not NaN) where both boxes
have zero area, and ``nms`` breaks score ties by the lower index (a stable sort).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["FORMATS", "box_convert", "box_area", "box_iou", "nms", "batched_nms", "average_precision",
           "match_detections", "mean_average_precision"]

FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: torch.Tensor, fn: str, name: str = "boxes") -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch tensor of shape (N, 4); convert with torch.as_tensor.")
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: {name} must have shape (N, 4), got {tuple(boxes.shape)}; "
                         "use boxes.reshape(-1, 4) for a single box.")
    if not boxes.is_floating_point():
        raise ValueError(f"{fn}: {name} must be floating point, got {boxes.dtype}; use boxes.float().")


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``boxes (N, 4)`` between ``xyxy``, ``xywh`` (left, top, width, height) and ``cxcywh``."""
    _check_boxes(boxes, "box_convert")
    for fmt in (in_fmt, out_fmt):
        if fmt not in FORMATS:
            raise ValueError(f"box_convert: unknown format {fmt!r}; use one of {FORMATS}.")
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    # now (a, b, c, d) = (x1, y1, x2, y2)
    if out_fmt == "xywh":
        return torch.stack([a, b, c - a, d - b], -1)
    if out_fmt == "cxcywh":
        return torch.stack([(a + c) / 2, (b + d) / 2, c - a, d - b], -1)
    return torch.stack([a, b, c, d], -1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of ``xyxy`` boxes; a box with x2 < x1 or y2 < y1 counts as empty (area 0)."""
    _check_boxes(boxes, "box_area")
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection over union of ``a (N, 4)`` and ``b (M, 4)`` (``xyxy``) -> ``(N, M)``.

    Computed by broadcasting, no loops. Where the union is 0 (two zero-area boxes) the IoU is 0, not NaN.
    """
    _check_boxes(a, "box_iou", "a")
    _check_boxes(b, "box_iou", "b")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])       # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])   # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)                    # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]                                # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(a.dtype).tiny), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression -> indices ``(K,)`` (int64) of the kept boxes, highest score first.

    Take the best remaining box, drop every remaining box whose IoU with it is > ``iou_threshold``, repeat.
    Equal scores keep the order of the input (the lower index goes first).
    """
    _check_boxes(boxes, "nms")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: scores must have shape ({len(boxes)},), got {tuple(scores.shape)}.")
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])                      # (N, N), in score order
    removed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each class: boxes of different ``labels`` never suppress each other.

    The trick torchvision uses: shift each class's boxes by ``label * (largest coordinate + 1)`` so boxes of
    different classes cannot overlap, then run one ``nms``.
    """
    _check_boxes(boxes, "batched_nms")
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = labels.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + offset, scores, iou_threshold)


def average_precision(scores: torch.Tensor, is_tp: torch.Tensor, n_gt: int,
                      interpolation: str = "all") -> torch.Tensor:
    """Area under the precision-recall curve of ranked detections (a 0-dim tensor).

    ``scores (D,)`` and ``is_tp (D,)`` (True where the detection matched a ground-truth box); ``n_gt`` is
    the number of ground-truth boxes (found or not). Precision is first made non-increasing from the right
    (the "envelope"); then ``"all"`` sums precision x recall step over every step (VOC 2010+), ``"coco"``
    averages it at the 101 recalls 0, 0.01, ..., 1 (COCO, torchmetrics). With ``n_gt == 0`` the AP is
    undefined: NaN.
    """
    if interpolation not in ("all", "coco"):
        raise ValueError(f"average_precision: interpolation must be 'all' or 'coco', got {interpolation!r}.")
    if scores.shape != is_tp.shape or scores.dim() != 1:
        raise ValueError(f"average_precision: scores and is_tp must be 1-D of equal length, got "
                         f"{tuple(scores.shape)} and {tuple(is_tp.shape)}.")
    dtype = scores.dtype if scores.is_floating_point() else torch.float32
    if n_gt == 0:
        return torch.tensor(float("nan"), dtype=dtype, device=scores.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    tp = is_tp[order].to(dtype).cumsum(0)                          # (D,)
    fp = (1 - is_tp[order].to(dtype)).cumsum(0)
    recall = tp / n_gt
    precision = tp / (tp + fp).clamp(min=1)
    # envelope: best precision at this recall or any higher one (cumulative max from the right)
    envelope = precision.flip(0).cummax(0).values.flip(0)
    if interpolation == "all":
        steps = torch.diff(recall, prepend=recall.new_zeros(1))   # recall gained at each detection
        return (steps * envelope).sum()
    # COCO's 101 levels and recalls in float64, as pycocotools computes them (equal values then compare
    # the same way: 3/10 in float64 is just below the level 0.3 that np.linspace gives)
    levels = torch.as_tensor(np.linspace(0.0, 1.0, 101), device=scores.device)
    recall64 = tp.double() / n_gt
    idx = torch.searchsorted(recall64, levels)                    # first detection reaching each level
    padded = torch.cat([envelope, envelope.new_zeros(1)])          # levels never reached give 0
    return padded[idx.clamp(max=len(envelope))].mean()


def match_detections(pred_boxes: torch.Tensor, pred_scores: torch.Tensor, gt_boxes: torch.Tensor,
                     iou_threshold: float) -> torch.Tensor:
    """COCO's greedy matching in one image and class -> ``is_tp (D,)`` (bool), in the input's order.

    Detections in decreasing score take, in turn, the unmatched ground-truth box of highest IoU, if that
    IoU is >= ``iou_threshold``; each ground-truth box is matched at most once.
    """
    is_tp = torch.zeros(len(pred_boxes), dtype=torch.bool, device=pred_boxes.device)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return is_tp
    iou = box_iou(pred_boxes, gt_boxes)                             # (D, G)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool, device=pred_boxes.device)
    for d in torch.sort(pred_scores, descending=True, stable=True).indices.tolist():
        cand = iou[d].masked_fill(taken, -1.0)
        best = int(cand.argmax())
        if cand[best] >= min(iou_threshold, 1 - 1e-10):
            taken[best] = True
            is_tp[d] = True
    return is_tp


def mean_average_precision(preds: list[dict], targets: list[dict],
                           iou_thresholds: tuple[float, ...] | None = None,
                           interpolation: str = "coco", max_dets: int = 100) -> dict[str, torch.Tensor]:
    """COCO-style mAP over images, classes and IoU thresholds.

    ``preds``: one dict per image with ``boxes (D, 4)`` xyxy, ``scores (D,)``, ``labels (D,)``;
    ``targets``: one dict per image with ``boxes (G, 4)`` and ``labels (G,)`` (torchmetrics' format).
    ``iou_thresholds`` default 0.5, 0.55, ..., 0.95. Classes without ground truth are left out of the mean
    (if none has any, the result is -1, as in COCO). Equal to pycocotools' COCOeval; torchmetrics agrees
    exactly when given these float64 levels (its defaults are float32, which can move a recall that
    lands exactly on a level, e.g. 3/10, to the other side). Returns ``map`` (mean over thresholds),
    ``map_50``, ``map_75`` (when those thresholds are in the list) and ``per_threshold``.
    """
    if len(preds) != len(targets):
        raise ValueError(f"mean_average_precision: {len(preds)} prediction dicts for {len(targets)} images.")
    if iou_thresholds is None:
        iou_thresholds = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
    device = targets[0]["boxes"].device if targets else torch.device("cpu")
    classes = sorted({int(c) for t in targets for c in t["labels"].tolist()})
    per_t = []
    for thr in iou_thresholds:
        aps = []
        for c in classes:
            scores, flags, n_gt = [], [], 0
            for p, t in zip(preds, targets):
                pm, gm = p["labels"] == c, t["labels"] == c
                s = p["scores"][pm]
                top = torch.sort(s, descending=True, stable=True).indices[:max_dets]
                n_gt += int(gm.sum())
                scores.append(s[top])
                flags.append(match_detections(p["boxes"][pm][top], s[top], t["boxes"][gm], thr))
            aps.append(average_precision(torch.cat(scores), torch.cat(flags), n_gt, interpolation))
        per_t.append(torch.stack(aps).mean() if aps else torch.tensor(-1.0, device=device))
    per_t = torch.stack(per_t)
    out = {"map": per_t.mean(), "per_threshold": per_t}
    for name, thr in (("map_50", 0.5), ("map_75", 0.75)):
        if thr in iou_thresholds:
            out[name] = per_t[list(iou_thresholds).index(thr)]
    return out
