"""cnnkit.ops.boxes against torchvision.ops and torchmetrics' COCO mAP, on random and edge-case inputs."""
import numpy as np
import pytest
import torch
import torchvision.ops as tvo

from cnnkit.ops.boxes import (average_precision, batched_nms, box_area, box_convert, box_iou, match_detections,
                              mean_average_precision, nms)


def rand_boxes(g, n, size=50.0, dtype=torch.float32, min_wh=0.5):
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * size
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * size / 2 + min_wh
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fmts", [("xyxy", "xywh"), ("xyxy", "cxcywh"), ("xywh", "cxcywh"),
                                  ("cxcywh", "xyxy"), ("xywh", "xyxy"), ("cxcywh", "xywh")])
def test_box_convert_matches_torchvision(seed, fmts):
    b = rand_boxes(torch.Generator().manual_seed(seed), 7, dtype=torch.float64)
    assert torch.allclose(box_convert(b, *fmts), tvo.box_convert(b, *fmts))
    assert torch.allclose(box_convert(box_convert(b, *fmts), fmts[1], fmts[0]), b)


def test_box_convert_errors():
    with pytest.raises(ValueError, match="unknown format"):
        box_convert(torch.zeros(2, 4), "xyxy", "yxyx")
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_convert(torch.zeros(4), "xyxy", "xywh")
    with pytest.raises(ValueError, match="floating"):
        box_iou(torch.zeros(2, 4, dtype=torch.long), torch.zeros(1, 4))
    with pytest.raises(TypeError):
        box_area([[0, 0, 1, 1]])


@pytest.mark.parametrize("seed", range(8))
def test_box_iou_matches_torchvision(seed):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if seed % 2 else torch.float32
    a, b = rand_boxes(g, 1 + seed, dtype=dtype), rand_boxes(g, 3 + seed % 4, dtype=dtype)
    got = box_iou(a, b)
    assert got.shape == (len(a), len(b)) and got.dtype == dtype
    assert torch.allclose(got, tvo.box_iou(a, b), atol=1e-6)


def test_box_iou_degenerate_and_empty():
    point = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    line = torch.tensor([[0.0, 1.0, 5.0, 1.0]])
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    assert box_iou(point, point).item() == 0.0          # torchvision gives NaN here
    assert torch.isnan(tvo.box_iou(point, point)).all()
    assert box_iou(line, box).item() == 0.0
    assert box_iou(box, box).item() == 1.0
    assert box_iou(torch.zeros(0, 4), box).shape == (0, 1)
    assert box_iou(box, torch.zeros(0, 4)).shape == (1, 0)
    assert box_iou(box.to("meta"), box.to("meta")).device.type == "meta"


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(seed, thr):
    g = torch.Generator().manual_seed(seed)
    boxes = rand_boxes(g, 30, size=30.0)
    scores = torch.rand(30, generator=g)
    assert torch.equal(nms(boxes, scores, thr), tvo.nms(boxes, scores, thr))
    labels = torch.randint(0, 3, (30,), generator=g)
    assert torch.equal(batched_nms(boxes, scores, labels, thr), tvo.batched_nms(boxes, scores, labels, thr))


def test_nms_ties_empty_and_degenerate():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).shape == (0,)
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [5, 5, 5, 5]])
    scores = torch.tensor([0.9, 0.9, 0.9, 0.95])
    keep = nms(boxes, scores, 0.5)
    # the zero-area box overlaps nothing, so it stays; of the tied pair the lower index wins
    assert keep.tolist() == [3, 0, 2]
    # equal scores: the result is still a valid suppression (kept boxes overlap <= threshold)
    g = torch.Generator().manual_seed(0)
    b = rand_boxes(g, 40, size=20.0)
    s = torch.randint(0, 3, (40,), generator=g).float()
    k = nms(b, s, 0.4)
    iou = box_iou(b[k], b[k]).fill_diagonal_(0)
    assert (iou <= 0.4).all()
    assert set(k.tolist()) == set(tvo.nms(b, s + torch.arange(40) * -1e-6, 0.4).tolist())


def test_average_precision_by_hand():
    # ranks: TP, FP, TP, 3 ground-truth boxes -> precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3
    scores = torch.tensor([0.9, 0.8, 0.7])
    tp = torch.tensor([True, False, True])
    ap = average_precision(scores, tp, 3)
    assert ap.item() == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    assert average_precision(scores, torch.zeros(3, dtype=torch.bool), 3).item() == 0.0
    assert average_precision(torch.zeros(0), torch.zeros(0, dtype=torch.bool), 2).item() == 0.0
    assert torch.isnan(average_precision(scores, tp, 0))
    assert average_precision(scores.double(), tp, 2).dtype == torch.float64
    with pytest.raises(ValueError, match="interpolation"):
        average_precision(scores, tp, 3, interpolation="11")


def test_match_detections_each_gt_once():
    gt = torch.tensor([[0.0, 0, 10, 10]])
    pred = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 9]])
    assert match_detections(pred, torch.tensor([0.5, 0.9]), gt, 0.5).tolist() == [False, True]
    assert match_detections(pred, torch.tensor([0.5, 0.9]), torch.zeros(0, 4), 0.5).tolist() == [False, False]


def _scene(g, n_img, n_cls, empty_preds=False, no_gt_image=False):
    preds, targets = [], []
    for i in range(n_img):
        n_gt = 0 if (no_gt_image and i == 0) else int(torch.randint(1, 6, (1,), generator=g))
        gt = rand_boxes(g, n_gt, size=40.0, min_wh=3.0)
        gl = torch.randint(0, n_cls, (n_gt,), generator=g)
        jitter = gt + torch.randn(gt.shape, generator=g) * 2.0
        extra = rand_boxes(g, 3, size=40.0, min_wh=3.0)
        pb = torch.cat([jitter, extra])
        pb = torch.cat([pb[:, :2], torch.maximum(pb[:, 2:], pb[:, :2] + 0.5)], 1)
        pl = torch.cat([gl, torch.randint(0, n_cls, (3,), generator=g)])
        ps = torch.rand(len(pb), generator=g).round(decimals=1)        # many ties
        if empty_preds and i % 2 == 0:
            pb, pl, ps = pb[:0], pl[:0], ps[:0]
        preds.append({"boxes": pb, "scores": ps, "labels": pl})
        targets.append({"boxes": gt, "labels": gl})
    return preds, targets


@pytest.mark.parametrize("seed", range(10))
def test_mean_average_precision_matches_torchmetrics(seed):
    pytest.importorskip("pycocotools")
    from torchmetrics.detection import MeanAveragePrecision
    g = torch.Generator().manual_seed(seed)
    preds, targets = _scene(g, 6, 3, empty_preds=seed % 3 == 1, no_gt_image=seed % 2 == 1)
    ours = mean_average_precision(preds, targets)
    # torchmetrics builds its default IoU and recall levels with float32 torch.linspace, so a recall of
    # exactly 0.3 can fall on either side of its level 0.3; COCO's own levels are float64 np.linspace
    metric = MeanAveragePrecision(iou_type="bbox", backend="pycocotools",
                                  iou_thresholds=np.linspace(0.5, 0.95, 10).tolist(),
                                  rec_thresholds=np.linspace(0.0, 1.0, 101).tolist())
    metric.update(preds, targets)
    ref = metric.compute()
    assert ours["map"].item() == pytest.approx(ref["map"].item(), abs=1e-6)
    assert ours["map_50"].item() == pytest.approx(ref["map_50"].item(), abs=1e-6)
    assert ours["map_75"].item() == pytest.approx(ref["map_75"].item(), abs=1e-6)
    default = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
    default.update(preds, targets)
    assert ours["map"].item() == pytest.approx(default.compute()["map"].item(), abs=5e-3)


def test_mean_average_precision_edge_cases():
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    gt = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}
    assert mean_average_precision([empty], [gt])["map"].item() == 0.0
    perfect = {"boxes": gt["boxes"], "scores": torch.tensor([0.3]), "labels": gt["labels"]}
    assert mean_average_precision([perfect], [gt])["map"].item() == pytest.approx(1.0)
    no_gt = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    assert mean_average_precision([perfect], [no_gt])["map"].item() == -1.0
    with pytest.raises(ValueError, match="images"):
        mean_average_precision([perfect], [gt, gt])
