"""Grader tests for ``exercises/source/10_detection.ipynb`` (chapter 10: object detection).

Expected values come from ``torchvision.ops`` (``box_iou``, ``nms``, ``generalized_box_iou``) and, for the
COCO-style AP, from a direct transcription of pycocotools' accumulation step (``_coco_ap`` below). Each
question checks fixed teaching cases and cases drawn at random for every grading run (``rng``), in float32 and
float64, and on the ``meta`` device where the task allows it.
"""
from __future__ import annotations

import numpy as np
import torch
import torchvision.ops as tvo

from cnnkit.grading import CheckFailed, Exercise, count_steps, expect_call, expect_device, randint, rng

EXERCISE = Exercise("10_detection", title="Object detection")

NO_LIBRARY = {
    "torchvision.ops": "write it with tensor arithmetic",
    "cnnkit.ops.boxes": "write it yourself rather than calling the chapter's helpers",
    "cnnkit.detection": "write it yourself",
    "torchmetrics": "write it yourself",
}


def _boxes(g: torch.Generator, n: int, size: float = 40.0, dtype=torch.float64, min_wh: float = 0.5,
           offset: float = 0.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * size + offset
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * size / 2 + min_wh
    return torch.cat([xy, xy + wh], 1)


def _iou_ref(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return tvo.box_iou(a, b).nan_to_num(0.0)


# ------------------------------------------------------------------ q1: pairwise IoU

q1 = EXERCISE.question("q1", "box_iou", title="IoU of every pair of boxes, without loops", forbid=NO_LIBRARY)


def _q1_hint(a, b):
    def hint(got):
        if not isinstance(got, torch.Tensor):
            return None
        if got.shape == (len(b), len(a)) and len(a) != len(b):
            return "the result is (N, M): one row per box of a, one column per box of b."
        if got.shape != (len(a), len(b)) or got.device.type == "meta":
            return None
        g = got.detach().double()
        if torch.isnan(g).any():
            return ("NaN comes from 0 / 0 where the union is 0 (two zero-area boxes); return 0 there, e.g. with "
                    "torch.where(union > 0, inter / union, 0).")
        if (g < -1e-9).any():
            return "negative IoU: clamp the intersection's width and height at 0 (disjoint boxes overlap 0)."
        if (g > 1 + 1e-6).any():
            return "IoU is at most 1: divide by the union |A| + |B| - |A and B|."
        return None
    return hint


def _check_q1(box_iou, cases):
    for a, b in cases:
        expect_call(box_iou, a, b, expected=_iou_ref(a, b), hint=_q1_hint(a, b))


@q1.test("fixed boxes: overlapping, touching, nested, disjoint; random boxes", points=1)
def _(box_iou):
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [10.0, 0.0, 20.0, 10.0], [2.0, 2.0, 4.0, 4.0],
                      [30.0, 30.0, 40.0, 45.0]])
    g = rng()
    _check_q1(box_iou, [(a, b), (_boxes(g, randint(g, 1, 9), dtype=torch.float64),
                                 _boxes(g, randint(g, 1, 9), dtype=torch.float64)),
                        (_boxes(g, 5, dtype=torch.float32), _boxes(g, 3, dtype=torch.float32))])


@q1.test("zero-area boxes give 0 (not NaN); empty inputs give empty results", points=1)
def _(box_iou):
    g = rng()
    c = float(randint(g, 2, 30))
    point = torch.tensor([[c, c, c, c]], dtype=torch.float64)
    line = torch.tensor([[0.0, c, c + 5, c]], dtype=torch.float64)
    box = torch.tensor([[0.0, 0.0, c + 1, c + 1]], dtype=torch.float64)
    mixed = torch.cat([point, line, box, _boxes(g, 2)])
    _check_q1(box_iou, [(point, point), (mixed, mixed), (torch.zeros(0, 4), _boxes(g, 3, dtype=torch.float32)),
                        (_boxes(g, 2), torch.zeros(0, 4, dtype=torch.float64))])


@q1.test("vectorised: no loop over the boxes", points=1)
def _(box_iou):
    g = rng()
    steps = {}
    for n in (3, 60):
        a, b = _boxes(g, n), _boxes(g, n + 7)
        got, steps[n] = count_steps(box_iou, a, b)
        if not (isinstance(got, torch.Tensor) and got.shape == (n, n + 7)
                and torch.allclose(got.double(), _iou_ref(a, b))):
            raise CheckFailed(f"wrong result for {n} x {n + 7} boxes; pass the other tests first.")
    if steps[60] > steps[3] * 1.5 + 20:
        raise CheckFailed(f"your function takes {steps[3]} Python steps for 3 x 10 boxes and {steps[60]} for "
                          "60 x 67, so it loops over boxes. Index with a[:, None, :2] and b[None, :, :2] so that "
                          "broadcasting forms all pairs at once.")


@q1.test("works on the input's device", points=1)
def _(box_iou):
    g = rng()
    expect_device(box_iou, _boxes(g, 4, dtype=torch.float32), _boxes(g, 3, dtype=torch.float32))


# ------------------------------------------------------------------ q2: class-aware NMS

q2 = EXERCISE.question("q2", "nms_per_class", title="Non-maximum suppression within each class",
                       forbid=NO_LIBRARY)


def _nms_ref(boxes, scores, labels, thr):
    """Greedy NMS per class, ties broken by the lower index (stable order), kept indices by score."""
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = _iou_ref(boxes[order], boxes[order])
    same = labels[order][:, None] == labels[order][None, :]
    removed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= (iou[i] > thr) & same[i]
    return order[torch.tensor(keep, dtype=torch.long)]


def _q2_hint(boxes, scores, labels, thr):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.dtype != torch.long:
            return "return the kept indices as an int64 tensor (torch.long)."
        plain = tvo.nms(boxes.float(), scores.float(), thr) if len(boxes) else None
        if plain is not None and torch.equal(got, plain) and not torch.equal(got, _nms_ref(boxes, scores, labels,
                                                                                           thr)):
            return "boxes of different classes suppressed each other: only compare boxes with equal labels."
        if len(got) and (boxes < 0).all():
            return ("every coordinate is negative here (the largest is -1): an offset of labels * (boxes.max() "
                    "+ 1) is then 0 and does not separate the classes; shift by more than the whole coordinate "
                    "range (max - min + 1), or compare labels directly.")
        return None
    return hint


def _check_q2(nms_per_class, cases):
    for boxes, scores, labels, thr in cases:
        expect_call(nms_per_class, boxes, scores, labels, thr, expected=_nms_ref(boxes, scores, labels, thr),
                    hint=_q2_hint(boxes, scores, labels, thr))


@q2.test("four boxes, two classes, threshold 0.5", points=1)
def _(nms_per_class):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [0.0, 0.0, 10.0, 10.5],
                          [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 0, 1, 0])
    _check_q2(nms_per_class, [(boxes, scores, labels, 0.5)])


@q2.test("random clusters of boxes and classes, float64, thresholds 0.3-0.7", points=1)
def _(nms_per_class):
    g = rng()
    cases = []
    for dtype in (torch.float64, torch.float32):
        n = randint(g, 10, 40)
        boxes = _boxes(g, n, size=25.0, dtype=dtype)
        scores = torch.rand(n, generator=g, dtype=dtype)
        labels = torch.randint(0, randint(g, 2, 4), (n,), generator=g)
        cases.append((boxes, scores, labels, 0.3 + 0.4 * float(torch.rand(1, generator=g))))
    _check_q2(nms_per_class, cases)


@q2.test("equal scores keep the lower index first; empty input; negative coordinates", points=1)
def _(nms_per_class):
    g = rng()
    n = randint(g, 12, 30)
    boxes = _boxes(g, n, size=20.0)
    ties = torch.randint(0, 3, (n,), generator=g).double() / 2           # many equal scores
    labels = torch.randint(0, 2, (n,), generator=g)
    negative = _boxes(g, n, size=15.0)
    negative = negative - negative.max() - 1                               # largest coordinate: -1
    _check_q2(nms_per_class, [(boxes, ties, labels, 0.4),
                              (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5),
                              (negative, torch.rand(n, generator=g, dtype=torch.float64), labels, 0.3),
                              # two classes on the same all-negative box: both must stay
                              (torch.tensor([[-9.0, -8.0, -2.0, -1.0]] * 2, dtype=torch.float64),
                               torch.tensor([0.9, 0.8], dtype=torch.float64), torch.tensor([0, 1]), 0.5)])


@q2.test("a box never suppresses a box of another class", points=1)
# No meta-device test for q2: greedy NMS needs the values (each step depends on which boxes were removed).
def _(nms_per_class):
    g = rng()
    k = randint(g, 3, 6)
    box = _boxes(g, 1).repeat(k, 1)                                        # k identical boxes
    scores = torch.rand(k, generator=g, dtype=torch.float64)
    labels = torch.arange(k)                                               # all different classes
    _check_q2(nms_per_class, [(box, scores, labels, 0.5), (box, scores, torch.zeros(k, dtype=torch.long), 0.5)])


# ------------------------------------------------------------------ q3: COCO's 101-point AP

q3 = EXERCISE.question("q3", "coco_ap", title="Average precision, COCO's 101-point way", forbid=NO_LIBRARY)


def _coco_ap(scores: torch.Tensor, is_tp: torch.Tensor, n_gt: int) -> torch.Tensor:
    """pycocotools' COCOeval.accumulate for one class, transcribed with NumPy (float64), levels exactly j/100."""
    s = scores.detach().cpu().double().numpy()
    order = np.argsort(-s, kind="mergesort")
    tp = np.cumsum(is_tp.cpu().numpy()[order].astype(float))
    fp = np.cumsum((~is_tp.cpu().numpy()[order]).astype(float))
    pr = (tp / np.maximum(tp + fp, 1)).tolist()
    for i in range(len(pr) - 1, 0, -1):
        if pr[i] > pr[i - 1]:
            pr[i - 1] = pr[i]
    # level j / 100 is reached at the first rank where recall >= j / 100, compared exactly in integers
    # (pycocotools uses np.linspace levels, which are a rounding step off j / 100 at some j)
    tp_int = np.rint(tp).astype(np.int64)
    inds = [int(np.argmax(100 * tp_int >= j * n_gt)) if (100 * tp_int >= j * n_gt).any() else len(pr)
            for j in range(101)]
    q = [pr[i] if i < len(pr) else 0.0 for i in inds]
    return torch.tensor(float(np.mean(q)), dtype=scores.dtype, device=scores.device)


def _q3_hint(scores, is_tp, n_gt):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            return "return a 0-dim tensor (e.g. the .mean() of the 101 values), not a float or a 1-element list."
        g = float(got.detach())
        order = torch.sort(scores, descending=True, stable=True).indices
        tp = is_tp[order].double().cumsum(0)
        prec = tp / torch.arange(1, len(tp) + 1, dtype=torch.float64)
        rec = tp / n_gt
        env = prec.flip(0).cummax(0).values.flip(0)
        all_point = float((torch.diff(rec, prepend=rec.new_zeros(1)) * env).sum())
        if abs(g - all_point) < 1e-9 and abs(g - float(_coco_ap(scores, is_tp, n_gt))) > 1e-6:
            return "that is the all-point AP of the chapter; COCO samples the envelope at 101 recall levels."
        levels = torch.arange(101, dtype=torch.float64) / 100
        idx = torch.searchsorted(rec, levels)
        raw = torch.cat([prec, prec.new_zeros(1)])[idx.clamp(max=len(prec))].mean()
        if abs(g - float(raw)) < 1e-9:
            return ("you sampled the raw precision; take the envelope first (best precision at this or any "
                    "higher recall: a cumulative maximum from the right).")
        idx = torch.searchsorted(rec, torch.linspace(0, 1, 101, dtype=torch.float64))
        lin = torch.cat([env, env.new_zeros(1)])[idx.clamp(max=len(env))].mean()
        if abs(g - float(lin)) < 1e-9:
            return ("torch.linspace's levels are a rounding step off j / 100 at some j, so a recall exactly on a "
                    "level can miss it; use torch.arange(101) / 100.")
        return None
    return hint


def _check_q3(coco_ap, cases):
    for scores, is_tp, n_gt in cases:
        expect_call(coco_ap, scores, is_tp, n_gt, expected=_coco_ap(scores, is_tp, n_gt),
                    hint=_q3_hint(scores, is_tp, n_gt), atol=1e-6)


@q3.test("the chapter's six detections, five objects", points=1)
def _(coco_ap):
    scores = torch.tensor([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    is_tp = torch.tensor([True, True, False, True, False, True])
    _check_q3(coco_ap, [(scores, is_tp, 5), (scores.flip(0), is_tp.flip(0), 4)])


@q3.test("random rankings, float64, missed objects, no detections", points=1)
def _(coco_ap):
    g = rng()
    cases = []
    for dtype in (torch.float64, torch.float32):
        d = randint(g, 5, 40)
        is_tp = torch.rand(d, generator=g) < 0.6
        cases.append((torch.rand(d, generator=g, dtype=dtype), is_tp, int(is_tp.sum()) + randint(g, 0, 5)))
    cases.append((torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool), randint(g, 1, 5)))
    cases.append((torch.rand(7, generator=g, dtype=torch.float64), torch.zeros(7, dtype=torch.bool), 3))
    _check_q3(coco_ap, cases)


@q3.test("equal scores keep their input order; recall exactly on a level", points=1)
def _(coco_ap):
    g = rng()
    d = randint(g, 8, 20)
    scores = torch.randint(0, 3, (d,), generator=g).double()
    is_tp = torch.rand(d, generator=g) < 0.5
    # 20 objects: recalls 7/20 and 13/20 land exactly on the levels 0.35 and 0.65, where torch.linspace's
    # levels (float64 at 0.35, float32 at 0.65) lie a rounding step above j / 100, and the envelope drops
    exact = torch.tensor([True] * 7 + [False] + [True] * 6 + [False, False] + [True] * 2)
    ranked = torch.linspace(1, 0.1, len(exact), dtype=torch.float64)
    _check_q3(coco_ap, [(scores, is_tp, int(is_tp.sum()) + 1), (ranked, exact, 20), (ranked.float(), exact, 20)])


@q3.test("works on the input's device", points=1)
def _(coco_ap):
    g = rng()
    expect_device(coco_ap, torch.rand(6, generator=g), torch.tensor([True, False, True, True, False, True]), 5)


# ------------------------------------------------------------------ q4: generalised IoU

q4 = EXERCISE.question("q4", "generalized_iou", title="Generalised IoU of every pair of boxes", forbid=NO_LIBRARY)


def _q4_hint(a, b):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != (len(a), len(b)) or got.device.type == "meta":
            return None
        g = got.detach().double()
        iou = _iou_ref(a, b).double()
        if torch.allclose(g, iou, atol=1e-6):
            return "that is the plain IoU; subtract (|C| - union) / |C|, C the smallest box enclosing both."
        if (g < -1 - 1e-6).any():
            return ("GIoU lies in [-1, 1]: the penalty is (|C| - union) / |C|, with C the area of the smallest "
                    "enclosing box (min of the left/top edges, max of the right/bottom edges).")
        return None
    return hint


def _check_q4(generalized_iou, cases):
    for a, b in cases:
        expect_call(generalized_iou, a, b, expected=tvo.generalized_box_iou(a, b), hint=_q4_hint(a, b))


@q4.test("fixed boxes: identical, overlapping, far apart", points=1)
def _(generalized_iou):
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [18.0, 18.0, 20.0, 20.0]])
    _check_q4(generalized_iou, [(a, b)])


@q4.test("random boxes, float64 and float32, N != M", points=1)
def _(generalized_iou):
    g = rng()
    _check_q4(generalized_iou, [(_boxes(g, randint(g, 1, 8)), _boxes(g, randint(g, 1, 8))),
                                (_boxes(g, 4, dtype=torch.float32), _boxes(g, 6, dtype=torch.float32, offset=30.0))])


@q4.test("vectorised: no loop over the boxes", points=1)
def _(generalized_iou):
    g = rng()
    steps = {}
    for n in (3, 60):
        a, b = _boxes(g, n), _boxes(g, n + 5)
        got, steps[n] = count_steps(generalized_iou, a, b)
        if not (isinstance(got, torch.Tensor) and got.shape == (n, n + 5)
                and torch.allclose(got.double(), tvo.generalized_box_iou(a, b))):
            raise CheckFailed(f"wrong result for {n} x {n + 5} boxes; pass the other tests first.")
    if steps[60] > steps[3] * 1.5 + 20:
        raise CheckFailed(f"your function takes {steps[3]} Python steps for 3 x 8 boxes and {steps[60]} for "
                          "60 x 65, so it loops over boxes; broadcast (N, 1, 2) against (1, M, 2).")


@q4.test("works on the input's device", points=1)
def _(generalized_iou):
    g = rng()
    expect_device(generalized_iou, _boxes(g, 3, dtype=torch.float32), _boxes(g, 5, dtype=torch.float32))

