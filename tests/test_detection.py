"""cnnkit.detection: canvases are deterministic and their boxes fit the shapes; encode/decode round-trip."""
import pytest
import torch

from cnnkit.detection import CLASSES, CenterNet, decode, detector_loss, encode, fit_detector, make_canvases, predict
from cnnkit.ops.boxes import box_iou, mean_average_precision


def test_canvases_deterministic_and_valid():
    x1, t1 = make_canvases(6, seed=3)
    x2, t2 = make_canvases(6, seed=3)
    x3, _ = make_canvases(6, seed=4)
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert x1.shape == (6, 1, 64, 64) and 0 <= x1.min() and x1.max() <= 1
    for a, b in zip(t1, t2):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
    for t in t1:
        boxes = t["boxes"]
        assert 1 <= len(boxes) <= 6 and len(t["labels"]) == len(boxes)
        assert t["labels"].dtype == torch.long and t["labels"].max() < len(CLASSES)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all()
        wh = boxes[:, 2:] - boxes[:, :2]
        assert (wh >= 6 - 1e-4).all() and (wh <= 20 + 1e-4).all()
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        assert (iou <= 0.4 + 1e-6).all()          # covering <= 0.4 of each box implies IoU <= 0.4


def test_canvas_objects_differ_from_background():
    # without noise, the pixels inside an object's box differ from the plain background gradient
    x, t = make_canvases(4, noise=0.0, max_objects=1, seed=0)
    for img, tt in zip(x, t):
        x1, y1, x2, y2 = tt["boxes"][0].round().int().tolist()
        inside = img[0, y1 + 2:y2 - 2, (x1 + x2) // 2]
        outside = img[0, :, :].flatten()
        assert (inside.mean() - outside.median()).abs() > 0.1


def test_make_canvases_errors():
    with pytest.raises(ValueError, match="min_wh"):
        make_canvases(2, min_wh=10, max_wh=5)
    with pytest.raises(ValueError, match="n >= 1"):
        make_canvases(0)


def test_encode_decode_round_trip():
    _, targets = make_canvases(5, seed=1)
    heat, wh, offset, mask = encode(targets, len(CLASSES), grid=16)
    assert heat.shape == (5, 3, 16, 16) and mask.sum() == sum(len(t["boxes"]) for t in targets)
    assert (heat.flatten(1).max(1).values == 1).all()
    # a perfect network: logits +-10 where the heatmap is 1 / elsewhere, the true sizes and offsets
    logits = torch.where(heat == 1, torch.tensor(10.0), torch.tensor(-10.0))
    out = torch.cat([logits, wh, offset], 1)
    preds = decode(out)
    assert mean_average_precision(preds, targets)["map"].item() == pytest.approx(1.0)
    for p, t in zip(preds, targets):
        assert len(p["boxes"]) == len(t["boxes"])
        assert box_iou(p["boxes"], t["boxes"]).max(1).values.min() > 0.999


def test_encode_rejects_bad_labels():
    with pytest.raises(ValueError, match="label 5"):
        encode([{"boxes": torch.tensor([[0.0, 0, 8, 8]]), "labels": torch.tensor([5])}], 3, grid=16)


def test_loss_lower_for_the_right_answer_and_training_learns():
    torch.manual_seed(0)
    x, targets = make_canvases(48, seed=2)
    heat, wh, offset, mask = encode(targets, 3, grid=16)
    right = torch.cat([torch.where(heat == 1, 8.0, -8.0), wh, offset], 1)
    wrong = torch.cat([torch.full_like(heat, -8.0), wh * 2, offset], 1)
    assert detector_loss(right, heat, wh, offset, mask) < detector_loss(wrong, heat, wh, offset, mask)
    model = CenterNet()
    assert model(x[:2]).shape == (2, 3 + 4, 16, 16)
    losses = fit_detector(model, x, targets, epochs=3, batch_size=16, verbose=False)
    assert losses[-1] < losses[0]
    preds = predict(model, x[:4], k=10)
    assert len(preds) == 4 and all(len(p["boxes"]) <= 10 for p in preds)
