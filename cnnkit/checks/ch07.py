"""Grader tests for ``exercises/source/07_augmentation.ipynb`` (chapter 7: data augmentation).

Expected values come from torchvision (``TF.horizontal_flip`` on ``tv_tensors.BoundingBoxes``,
``TF.adjust_contrast``, ``TF.crop``) and, for mixup, from the definition written with ``F.one_hot``. Each question
checks fixed teaching cases and cases drawn at random for every grading run (``rng``), in float32 and float64,
and on the ``meta`` device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from cnnkit.grading import (CheckFailed, Exercise, LearnerError, call, count_steps, expect_call, expect_device,
                            randint, rng)

EXERCISE = Exercise("07_augmentation", title="Data augmentation")

NO_TORCHVISION = {
    "torchvision.transforms": "write the arithmetic yourself",
    "torchvision.tv_tensors": "work on the plain tensor",
    "cnnkit.augment": "write it yourself rather than calling the chapter's helpers",
}


def _rand(g: torch.Generator, *shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------ q1: boxes under a horizontal flip

q1 = EXERCISE.question("q1", "hflip_boxes", title="Boxes that follow a flipped image", forbid=NO_TORCHVISION)


def _hflip_ref(boxes: torch.Tensor, width: int) -> torch.Tensor:
    b = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(10, width))
    return TF.horizontal_flip(b).as_subclass(torch.Tensor)


def _q1_hint(boxes, width):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != boxes.shape or len(boxes) == 0:
            return None
        g = got.detach().double()
        b = boxes.double()
        if torch.allclose(g[:, 0], width - b[:, 0]) and torch.allclose(g[:, 2], width - b[:, 2]):
            return ("each x moved to width - x, but the left edge of the new box is the image of the *right* "
                    "edge of the old one: new x1 = width - x2, new x2 = width - x1 (else x1 > x2).")
        if torch.allclose(g[:, 0], width - 1 - b[:, 2]):
            return ("width - 1 - x maps pixel *indices*; box coordinates are edges between pixels, from 0 to "
                    "width, so the mirror of x is width - x.")
        if torch.allclose(g[:, 0], b[:, 0]) and not torch.allclose(g[:, 1], b[:, 1]):
            return "a horizontal flip mirrors x (columns); the y coordinates stay as they are."
        return None
    return hint


def _check_q1(hflip_boxes, cases):
    for boxes, width in cases:
        expect_call(hflip_boxes, boxes, width, expected=_hflip_ref(boxes, width), hint=_q1_hint(boxes, width))


def _boxes(g, n, width, height, dtype):
    x = _rand(g, n, 2, dtype=dtype) * width
    y = _rand(g, n, 2, dtype=dtype) * height
    return torch.stack([x.min(1).values, y.min(1).values, x.max(1).values, y.max(1).values], 1)


@q1.test("two boxes on a 100-pixel-wide image", points=1)
def _(hflip_boxes):
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.0, 5.0, 100.0, 15.0]])
    _check_q1(hflip_boxes, [(boxes, 100)])


@q1.test("random boxes and widths, float64, no boxes at all", points=1)
def _(hflip_boxes):
    g = rng()
    width = randint(g, 5, 300)
    cases = [(_boxes(g, randint(g, 1, 7), width, randint(g, 5, 90), torch.float64), width),
             (_boxes(g, 3, 33, 17, torch.float32), 33),
             (torch.zeros(0, 4, dtype=torch.float64), randint(g, 2, 50))]
    _check_q1(hflip_boxes, cases)


@q1.test("works on the input's device", points=1)
def _(hflip_boxes):
    expect_device(hflip_boxes, _boxes(rng(), 4, 40, 30, torch.float32), 40)


# ------------------------------------------------------------------ q2: contrast like torchvision

q2 = EXERCISE.question("q2", "adjust_contrast", title="Contrast adjustment that matches torchvision",
                       forbid=NO_TORCHVISION)


def _q2_hint(img, factor):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != img.shape:
            return None
        g = got.detach().double()
        x = img.double()
        if img.shape[1] == 3:
            plain = x.mean(dim=(1, 2, 3), keepdim=True)
            if torch.allclose(g, (factor * x + (1 - factor) * plain).clamp(0, 1), atol=1e-6):
                return ("you blended towards the plain mean of R, G and B; torchvision blends towards the mean "
                        "of the *grey* image, 0.2989 R + 0.587 G + 0.114 B.")
            per_channel = x.mean(dim=(2, 3), keepdim=True)
            if torch.allclose(g, (factor * x + (1 - factor) * per_channel).clamp(0, 1), atol=1e-6):
                return "one mean per colour channel shifts the colours; use one grey mean per image."
        whole = TF.rgb_to_grayscale(x).mean() if img.shape[1] == 3 else x.mean()
        if img.shape[0] > 1 and torch.allclose(g, (factor * x + (1 - factor) * whole).clamp(0, 1), atol=1e-6):
            return "you took one mean over the whole batch; each image is blended towards its own grey mean."
        if (g > 1 + 1e-6).any() or (g < -1e-6).any():
            return "the result must stay in [0, 1]: clamp it, as torchvision does."
        return None
    return hint


def _check_q2(adjust_contrast, cases):
    for img, factor in cases:
        expect_call(adjust_contrast, img, factor, expected=TF.adjust_contrast(img, factor),
                    hint=_q2_hint(img, factor))


@q2.test("a batch of two colour images, factor 0.5 and 1.8", points=1)
def _(adjust_contrast):
    g = torch.Generator().manual_seed(7)
    img = _rand(g, 2, 3, 4, 5, dtype=torch.float32)
    img[1] = img[1] * 0.3 + 0.6                   # a bright, low-contrast image
    _check_q2(adjust_contrast, [(img, 0.5), (img, 1.8)])


@q2.test("random sizes and factors, grey images, float64", points=1)
def _(adjust_contrast):
    g = rng()
    rgb = _rand(g, randint(g, 1, 4), 3, randint(g, 2, 9), randint(g, 2, 9))
    grey = _rand(g, randint(g, 2, 4), 1, randint(g, 2, 7), randint(g, 3, 8), dtype=torch.float32)
    f1, f2 = float(_rand(g, 1) * 0.9), 1.2 + float(_rand(g, 1) * 1.5)
    _check_q2(adjust_contrast, [(rgb, f1), (rgb, f2), (grey, f2), (rgb, 0.0)])


@q2.test("works on the input's device", points=1)
def _(adjust_contrast):
    expect_device(adjust_contrast, _rand(rng(), 2, 3, 5, 6, dtype=torch.float32), 1.5)


# ------------------------------------------------------------------ q3: a different crop for every image

q3 = EXERCISE.question("q3", "random_crop_batch", title="A different random crop for every image",
                       forbid=NO_TORCHVISION)


def _crop_ref(x, u_top, u_left, height, width):
    top = (u_top * (x.shape[2] - height + 1)).floor().long()
    left = (u_left * (x.shape[3] - width + 1)).floor().long()
    return torch.stack([TF.crop(img, int(t), int(l), height, width) for img, t, l in zip(x, top, left)])


def _q3_hint(x, u_top, u_left, height, width):
    def hint(got):
        if not isinstance(got, torch.Tensor):
            return None
        if got.shape == (x.shape[0], x.shape[1], width, height) and height != width:
            return "the output is (B, C, height, width): height counts rows, width columns."
        if got.shape != (x.shape[0], x.shape[1], height, width):
            return None
        h, w = x.shape[2], x.shape[3]
        if h > height and w > width:
            top = (u_top * (h - height)).floor().long()
            left = (u_left * (w - width)).floor().long()
            short = torch.stack([img[:, t:t + height, l:l + width] for img, t, l in zip(x, top, left)])
            if torch.equal(got.detach(), short):
                return (f"there are H - height + 1 = {h - height + 1} possible top rows (0 to H - height) and "
                        f"W - width + 1 = {w - width + 1} left columns: multiply u by those counts, or the last "
                        "row and column are never chosen.")
        return None
    return hint


def _check_q3(random_crop_batch, cases):
    for x, u_top, u_left, height, width in cases:
        expect_call(random_crop_batch, x, u_top, u_left, height, width,
                    expected=_crop_ref(x, u_top, u_left, height, width),
                    hint=_q3_hint(x, u_top, u_left, height, width))


@q3.test("four 6x8 images, 3x4 windows", points=1)
def _(random_crop_batch):
    x = torch.arange(4 * 2 * 6 * 8, dtype=torch.float32).reshape(4, 2, 6, 8)
    _check_q3(random_crop_batch, [(x, torch.tensor([0.0, 0.99, 0.3, 0.6]), torch.tensor([0.95, 0.0, 0.5, 0.25]),
                                   3, 4)])


@q3.test("random sizes, float64, u close to 1, a window as large as the image", points=1)
def _(random_crop_batch):
    g = rng()
    b, c, h, w = randint(g, 2, 6), randint(g, 1, 3), randint(g, 4, 12), randint(g, 4, 12)
    x = _rand(g, b, c, h, w)
    ch, cw = randint(g, 1, h - 1), randint(g, 1, w - 1)
    near_one = torch.full((b,), 0.999, dtype=torch.float64)
    _check_q3(random_crop_batch, [(x, _rand(g, b), _rand(g, b), ch, cw),
                                  (x, near_one, _rand(g, b), ch, cw),
                                  (x, _rand(g, b), near_one, h, w),
                                  (x.float(), _rand(g, b), _rand(g, b), h - 1, 1)])


@q3.test("a window larger than the image raises ValueError", points=1)
def _(random_crop_batch):
    g = rng()
    h, w = randint(g, 5, 10), randint(g, 5, 10)
    x, u = _rand(g, 3, 1, h, w), _rand(g, 3)
    for ch, cw in ((h + 1, 2), (2, w + randint(g, 1, 3)), (0, 2)):
        try:
            got = call(random_crop_batch, x, u, u, ch, cw)
        except LearnerError as exc:
            if exc.error.type_name != "ValueError":
                raise CheckFailed(f"a {ch}x{cw} window on {h}x{w} images: expected a ValueError, got "
                                  f"{exc.error.type_name}: {exc.error.message}") from None
            continue
        raise CheckFailed(f"a {ch}x{cw} window does not fit in {h}x{w} images, but `random_crop_batch` returned "
                          f"{type(got).__name__} instead of raising ValueError: check 1 <= height <= H and "
                          "1 <= width <= W first.")


@q3.test("vectorised: no loop over the images", points=1)
def _(random_crop_batch):
    g = rng()
    steps = {}
    for b in (2, 40):
        x, u_top, u_left = _rand(g, b, 1, 9, 9, dtype=torch.float32), _rand(g, b), _rand(g, b)
        got, steps[b] = count_steps(random_crop_batch, x, u_top, u_left, 5, 5)
        if not (isinstance(got, torch.Tensor) and torch.equal(got, _crop_ref(x, u_top, u_left, 5, 5))):
            raise CheckFailed(f"wrong result for a batch of {b} 9x9 images and 5x5 windows; pass the other "
                              "tests first.")
    if steps[40] > steps[2] * 1.5 + 20:
        raise CheckFailed(f"your function takes {steps[2]} Python steps for 2 images and {steps[40]} for 40, so it "
                          "loops over the images. Build index tensors of shape (B, height, 1) and (B, 1, width) "
                          "and index all images at once, as the chapter's translate() does.")


@q3.test("works on the input's device", points=1)
def _(random_crop_batch):
    g = rng()
    expect_device(random_crop_batch, _rand(g, 3, 2, 7, 6, dtype=torch.float32), _rand(g, 3, dtype=torch.float32),
                  _rand(g, 3, dtype=torch.float32), 4, 3)


# ------------------------------------------------------------------ q4: mixup

q4 = EXERCISE.question("q4", "mixup", title="Mixup of a batch and its labels",
                       forbid={**NO_TORCHVISION, "torch.nn.functional.one_hot": "build the one-hot rows yourself"})


def _mixup_ref(x, y, perm, lam, num_classes):
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    return lam * x + (1 - lam) * x[perm], lam * onehot + (1 - lam) * onehot[perm]


def _q4_hint(x, y, perm, lam, num_classes):
    def hint(got):
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            return "return a tuple (mixed_images, mixed_labels) of two tensors."
        xm, ym = got
        if ym.shape == (len(y), int(y.max()) + 1) and int(y.max()) + 1 != num_classes:
            return (f"the labels have {ym.shape[1]} columns: this batch lacks the last class(es); use num_classes "
                    f"({num_classes}), not y.max() + 1.")
        if ym.shape != (len(y), num_classes):
            return None
        swapped = _mixup_ref(x, y, perm, 1 - lam, num_classes)
        if lam != 0.5 and torch.allclose(xm.detach().double(), swapped[0].double(), atol=1e-6):
            return "the weights are swapped: lam goes to x itself, 1 - lam to x[perm]."
        ref = _mixup_ref(x, y, perm, lam, num_classes)
        if torch.allclose(xm.detach().double(), ref[0].double(), atol=1e-6) and not torch.allclose(
                ym.detach().double(), ref[1].double(), atol=1e-6):
            return ("the images are right but the labels are not: mix the one-hot rows with the same lam and "
                    "the same permutation.")
        return None
    return hint


def _check_q4(mixup, cases):
    for x, y, perm, lam, k in cases:
        expect_call(mixup, x, y, perm, lam, k, expected=_mixup_ref(x, y, perm, lam, k),
                    hint=_q4_hint(x, y, perm, lam, k))


@q4.test("four images, three classes, lam = 0.7", points=1)
def _(mixup):
    g = torch.Generator().manual_seed(3)
    x = _rand(g, 4, 1, 3, 3, dtype=torch.float32)
    _check_q4(mixup, [(x, torch.tensor([0, 2, 1, 2]), torch.tensor([1, 0, 3, 2]), 0.7, 3)])


@q4.test("random batches, float64, a class missing, lam 0 and 1", points=1)
def _(mixup):
    g = rng()
    b, k = randint(g, 3, 9), randint(g, 4, 10)
    x = _rand(g, b, randint(g, 1, 3), randint(g, 2, 5), randint(g, 2, 5))
    y = torch.randint(0, k - 1, (b,), generator=g)          # never the last class
    perm = torch.randperm(b, generator=g)
    lam = 0.15 + 0.6 * float(_rand(g, 1))
    _check_q4(mixup, [(x, y, perm, lam, k), (x, y, perm, 0.0, k), (x, y, perm, 1.0, k),
                      (x.float(), y, torch.arange(b - 1, -1, -1), 0.35, k + 2)])


@q4.test("works on the input's device", points=1)
def _(mixup):
    x = _rand(rng(), 5, 2, 4, 4, dtype=torch.float32)
    expect_device(mixup, x, torch.tensor([1, 0, 4, 2, 2]), torch.tensor([4, 3, 2, 1, 0]), 0.6, 5)
