"""Grader tests for ``exercises/source/08_transfer.ipynb`` (chapter 8: transfer learning).

q1 checks properties of a seeded k-shot sample (a sample has no single right answer); q2 compares with a
nearest-class-mean reference built on ``torch.cdist``; q3 builds a real ``torch.optim.SGD`` from the groups
it expects; q4 compares with ridge regression solved by ``torch.linalg.lstsq`` on the stacked system.
Fixed teaching cases plus cases drawn at random for every grading run (``rng``), float32 and float64, and
the ``meta`` device where the function maps tensors to tensors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.grading import CheckFailed, Exercise, LearnerError, call, expect_call, expect_device, randint, rng

EXERCISE = Exercise("08_transfer", title="Transfer learning")

# ------------------------------------------------------------------ q1: a stratified k-shot sample

q1 = EXERCISE.question(
    "q1", "k_shot_indices", title="A seeded k-shot sample",
    forbid={"sklearn": "pick the indices yourself with a seeded torch.Generator",
            "cnnkit.data.stratified_split": "write the sampler yourself"})


def _check_sample(fn, labels, k, seed):
    where = f"`k_shot_indices(labels of {len(labels)}, k={k}, seed={seed})`"
    got = call(fn, labels, k, seed)
    if not isinstance(got, torch.Tensor) or got.dim() != 1:
        raise CheckFailed(f"{where} returned {type(got).__name__}; expected a 1-D tensor of indices.")
    if got.dtype != torch.int64:
        raise CheckFailed(f"{where} returned dtype {got.dtype}; indices are int64 (torch.long).")
    classes = torch.unique(labels)
    if len(got) != k * len(classes):
        raise CheckFailed(f"{where} returned {len(got)} indices; expected k = {k} for each of the "
                          f"{len(classes)} classes present ({classes.tolist()}), {k * len(classes)} in all.")
    if got.min() < 0 or got.max() >= len(labels):
        raise CheckFailed(f"{where} returned an index outside 0..{len(labels) - 1}.")
    if len(torch.unique(got)) != len(got):
        raise CheckFailed(f"{where} picked the same example twice: sample without replacement "
                          "(a random permutation, not random integers).")
    counts = torch.bincount(labels[got], minlength=int(labels.max()) + 1)[classes]
    if not torch.all(counts == k):
        raise CheckFailed(f"{where}: examples per class {dict(zip(classes.tolist(), counts.tolist()))}; "
                          f"expected {k} of each.")
    again = call(fn, labels, k, seed)
    if not (isinstance(again, torch.Tensor) and torch.equal(torch.sort(again).values, torch.sort(got).values)):
        raise CheckFailed(f"{where} gave a different sample when called again with the same seed: draw with "
                          "a torch.Generator seeded with `seed`, not the global random state.")
    return got


def _labels(g, counts):
    """Shuffled labels with counts[c] examples of class c (0 = absent)."""
    y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    return y[torch.randperm(len(y), generator=g)]


@q1.test("k per class, reproducible, as in the chapter", points=1)
def _(k_shot_indices):
    g = torch.Generator().manual_seed(8)
    labels = _labels(g, [20, 20, 20, 3, 20])
    _check_sample(k_shot_indices, labels, 3, 0)
    _check_sample(k_shot_indices, labels, 1, 7)


@q1.test("random labels with absent classes; different seeds differ", points=1)
def _(k_shot_indices):
    g = rng()
    k = randint(g, 1, 4)
    counts = [randint(g, k, k + 6) if randint(g, 0, 2) else 0 for _ in range(8)]
    counts[randint(g, 0, 7)], counts[0] = k + 2, 0        # class 0 always absent, one class at least
    counts = counts + [k]                                  # the last class has exactly k examples
    labels = _labels(g, counts)
    samples = {tuple(sorted(_check_sample(k_shot_indices, labels, k, s).tolist())) for s in range(6)}
    if len(samples) == 1:
        raise CheckFailed(f"`k_shot_indices` returned the same {k}-shot sample for seeds 0 to 5; the seed "
                          "must change which examples are drawn (do not take the first k of each class).")


@q1.test("a class with fewer than k examples raises a clear ValueError", points=1)
def _(k_shot_indices):
    g = rng()
    k = randint(g, 3, 6)
    small = randint(g, 1, 5)
    counts = [k + 3] * 6
    counts[small] = k - 1
    labels = _labels(g, counts)
    try:
        got = call(k_shot_indices, labels, k, 0)
    except LearnerError as exc:
        if exc.error.type_name != "ValueError":
            raise CheckFailed(f"class {small} has {k - 1} examples and k = {k}: expected a ValueError, got "
                              f"{exc.error.type_name}: {exc.error.message}") from None
        if str(small) not in exc.error.message:
            raise CheckFailed(f"the ValueError should name the class that is too small ({small}); the "
                              f"message was: {exc.error.message!r}") from None
        return
    raise CheckFailed(f"class {small} has only {k - 1} examples but k = {k}: `k_shot_indices` returned "
                      f"{len(got) if hasattr(got, '__len__') else got!r} indices instead of raising "
                      "ValueError (a silently smaller class would bias the experiment).")


# ------------------------------------------------------------------ q2: nearest class mean

q2 = EXERCISE.question(
    "q2", "nearest_mean_predict", title="The nearest-class-mean classifier",
    forbid={"torch.cdist": "compute the squared distances with broadcasting",
            "torch.nn.functional.pairwise_distance": "", "torch.nn.PairwiseDistance": "",
            "sklearn": "write it with tensors", "cnnkit": ""})


def _ncm_ref(train_x, train_y, test_x, num_classes):
    means = torch.stack([train_x[train_y == c].mean(0) if (train_y == c).any()
                         else torch.full_like(train_x[0], float("nan")) for c in range(num_classes)])
    d = torch.cdist(test_x.double(), means.double(), compute_mode="donot_use_mm_for_euclid_dist")
    return d.nan_to_num(float("inf")).argmin(1)


def _q2_hint(train_x, train_y, test_x, num_classes):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != (len(test_x),):
            return None
        present = torch.unique(train_y)
        if not torch.isin(got, present).all():
            return "it predicted a class with no training example: give absent classes an infinite distance."
        nn1 = train_y[((test_x[:, None].double() - train_x[None].double()) ** 2).sum(-1).argmin(1)]
        if torch.equal(got, nn1):
            return "that is the nearest single example (1-NN); compare with each class's mean instead."
        return None
    return hint


def _check_q2(fn, train_x, train_y, test_x, num_classes):
    expect_call(fn, train_x, train_y, test_x, num_classes,
                expected=_ncm_ref(train_x, train_y, test_x, num_classes),
                hint=_q2_hint(train_x, train_y, test_x, num_classes))


@q2.test("two features, three classes of different sizes", points=1)
def _(nearest_mean_predict):
    train_x = torch.tensor([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 1.0], [4.0, 2.0], [4.0, 3.0],
                            [9.0, 0.0]])
    train_y = torch.tensor([0, 0, 1, 1, 1, 1, 2])
    test_x = torch.tensor([[1.0, 1.0], [3.0, 3.0], [7.0, 0.0], [2.4, 1.5], [0.0, 3.0],
                           [6.4, 0.0]])   # nearest mean: class 2; nearest example: class 1
    _check_q2(nearest_mean_predict, train_x, train_y, test_x, 3)


@q2.test("random sizes, float64, classes absent from the training set", points=1)
def _(nearest_mean_predict):
    g = rng()
    c, d = randint(g, 3, 7), randint(g, 1, 9)
    present = torch.randperm(c, generator=g)[: randint(g, 1, c - 1)]
    train_y = present[torch.randint(len(present), (randint(g, 8, 30),), generator=g)]
    train_y = torch.cat([present, train_y])
    centres = torch.randn(c, d, generator=g, dtype=torch.float64) * 3
    train_x = centres[train_y] + torch.randn(len(train_y), d, generator=g, dtype=torch.float64) * 2
    test_x = torch.randn(randint(g, 5, 40), d, generator=g, dtype=torch.float64) * 4
    _check_q2(nearest_mean_predict, train_x, train_y, test_x, c)


@q2.test("unbalanced classes, far from the origin, float64", points=1)
def _(nearest_mean_predict):
    g = rng()
    c, d = randint(g, 2, 5), randint(g, 2, 6)
    counts = [randint(g, 1, 3) if i % 2 else randint(g, 15, 30) for i in range(c)]
    train_y = torch.cat([torch.full((n,), i) for i, n in enumerate(counts)])
    # class centres 1e-3 apart along the first axis (plus a little spread), test points close to a class
    # mean: no near-ties, so any sound float64 formula (differences or the expanded square) gives the answer
    centres = torch.randn(c, d, generator=g, dtype=torch.float64) * 1e-4
    centres[:, 0] += torch.randperm(c, generator=g).double() * 1e-3
    train_x = 3000.0 + centres[train_y] + torch.randn(len(train_y), d, generator=g, dtype=torch.float64) * 2e-5
    pick = torch.randint(c, (50,), generator=g)
    test_x = 3000.0 + centres[pick] + torch.randn(50, d, generator=g, dtype=torch.float64) * 2e-5
    _check_q2(nearest_mean_predict, train_x, train_y, test_x, c)


# No meta-device test for q2: a class mean taken with a boolean mask (train_x[train_y == c]), the natural
# answer, has a data-dependent shape and cannot run on the shape-only meta device; a fourth value test instead.
@q2.test("one example per class (1-shot): the means are the examples", points=1)
def _(nearest_mean_predict):
    g = rng()
    c, d = randint(g, 2, 6), randint(g, 1, 5)
    order = torch.randperm(c, generator=g)
    train_x = torch.randn(c, d, generator=g) * 3
    test_x = torch.randn(randint(g, 3, 12), d, generator=g) * 3
    _check_q2(nearest_mean_predict, train_x, order, test_x, c)


# ------------------------------------------------------------------ q3: optimizer parameter groups

q3 = EXERCISE.question(
    "q3", "param_groups", title="Parameter groups for fine-tuning",
    forbid={"torch.optim": "return the groups as plain dicts of names", "cnnkit": ""})


def _owned(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _groups_ref(names, head, frozen, backbone_lr, head_lr):
    backbone = [n for n in names if not _owned(n, head) and not _owned(n, frozen)]
    heads = [n for n in names if _owned(n, head)]
    return [g for g in ({"params": backbone, "lr": backbone_lr}, {"params": heads, "lr": head_lr})
            if g["params"]]


def _check_q3(fn, names, head, frozen, backbone_lr, head_lr):
    where = f"`param_groups(names, head={head}, frozen={frozen}, backbone_lr={backbone_lr}, head_lr={head_lr})`"
    got = call(fn, names, head, frozen, backbone_lr, head_lr)
    want = _groups_ref(names, head, frozen, backbone_lr, head_lr)
    if not isinstance(got, list) or not all(isinstance(x, dict) for x in got):
        raise CheckFailed(f"{where} returned {type(got).__name__}; expected a list of dicts "
                          "[{'params': [...], 'lr': ...}, ...].")
    if got != want:
        raise CheckFailed(f"{where} with names {names} returned {got}; expected {want}.")
    params = {n: torch.nn.Parameter(torch.zeros(1)) for n in names}
    torch.optim.SGD([{**gr, "params": [params[n] for n in gr["params"]]} for gr in got], lr=0.1)


@q3.test("a backbone and a head, nothing frozen", points=1)
def _(param_groups):
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]
    _check_q3(param_groups, names, ["fc"], [], 1e-4, 1e-3)
    _check_q3(param_groups, names, ["conv2", "fc"], [], 0.01, 0.1)


@q3.test("random names: frozen layers, prefixes that share a start", points=1)
def _(param_groups):
    g = rng()
    n = randint(g, 3, 6)
    layers = [f"layer{i}" for i in range(1, n + 1)] + ["fc", "fc2", "head"]
    names = [f"{layer}.{p}" for layer in layers for p in ("weight", "bias")]
    names.insert(2, "layer1.0.weight")
    frozen = [f"layer{i}" for i in range(1, randint(g, 1, n - 1) + 1)]
    lrs = randint(g, 1, 9) * 1e-4, randint(g, 1, 9) * 1e-2
    _check_q3(param_groups, names, ["fc"], frozen, *lrs)
    _check_q3(param_groups, names, ["fc2", "head"], ["layer1"], *lrs)
    _check_q3(param_groups, names, ["layer1", "fc"], [f"layer{i}" for i in range(2, n + 1)] + ["fc2", "head"],
              *lrs)


@q3.test("a head prefix that matches no parameter raises ValueError", points=1)
def _(param_groups):
    g = rng()
    names = ["features.0.weight", "features.0.bias", "classifier.weight", "classifier.bias"]
    typo = ["clasifier", "classifier.w", "head", "features.1"][randint(g, 0, 3)]
    try:
        got = call(param_groups, names, [typo], [], 1e-4, 1e-3)
    except LearnerError as exc:
        if exc.error.type_name != "ValueError" or typo not in exc.error.message:
            raise CheckFailed(f"head=[{typo!r}] matches no parameter: expected a ValueError that names "
                              f"{typo!r}; got {exc.error.type_name}: {exc.error.message}") from None
        return
    raise CheckFailed(f"head=[{typo!r}] matches none of {names}, but `param_groups` returned {got!r}: a typo "
                      "in a prefix would silently train the head at the backbone's learning rate. Raise "
                      "ValueError naming the prefix.")


# ------------------------------------------------------------------ q4: a ridge-regression linear probe

q4 = EXERCISE.question(
    "q4", "ridge_probe", title="A linear probe in closed form",
    forbid={"torch.linalg.lstsq": "solve the normal equations", "torch.linalg.pinv": "",
            "torch.linalg.ridge": "", "sklearn": "write it with tensors", "cnnkit": ""})


def _ridge_ref(train_f, train_y, test_f, num_classes, lam):
    a = torch.cat([train_f, torch.ones_like(train_f[:, :1])], 1).double()
    y = F.one_hot(train_y, num_classes).double()
    stacked = torch.cat([a, lam ** 0.5 * torch.eye(a.shape[1], dtype=torch.float64)])
    rhs = torch.cat([y, torch.zeros(a.shape[1], num_classes, dtype=torch.float64)])
    w = torch.linalg.lstsq(stacked, rhs, driver="gelsd").solution
    test_a = torch.cat([test_f, torch.ones_like(test_f[:, :1])], 1).double()
    return (test_a @ w).to(train_f.dtype)


def _q4_hint(train_f, train_y, test_f, num_classes, lam):
    def hint(got):
        if not isinstance(got, torch.Tensor) or got.shape != (len(test_f), num_classes):
            return None
        nobias = _ridge_ref(torch.cat([train_f, torch.zeros_like(train_f[:, :1])], 1), train_y,
                            torch.cat([test_f, torch.zeros_like(test_f[:, :1])], 1), num_classes, lam)
        if torch.allclose(got.double(), nobias.double(), atol=1e-4):
            return "no bias: append a column of ones to the features (train and test) before solving."
        return None
    return hint


def _check_q4(fn, train_f, train_y, test_f, num_classes, lam, atol=1e-4):
    expect_call(fn, train_f, train_y, test_f, num_classes, lam,
                expected=_ridge_ref(train_f, train_y, test_f, num_classes, lam), atol=atol, rtol=1e-3,
                hint=_q4_hint(train_f, train_y, test_f, num_classes, lam))


@q4.test("fixed small probe", points=1)
def _(ridge_probe):
    g = torch.Generator().manual_seed(4)
    f = torch.randn(12, 3, generator=g)
    y = torch.arange(12) % 3
    _check_q4(ridge_probe, f + F.one_hot(y, 3), y, torch.randn(4, 3, generator=g), 3, 0.1)


@q4.test("random sizes, float64, a class with no examples", points=1)
def _(ridge_probe):
    g = rng()
    n, d, c = randint(g, 6, 30), randint(g, 2, 8), randint(g, 3, 6)
    y = torch.randint(c - 1, (n,), generator=g)          # the last class never appears
    f = torch.randn(n, d, generator=g, dtype=torch.float64) * 2
    _check_q4(ridge_probe, f, y, torch.randn(randint(g, 1, 9), d, generator=g, dtype=torch.float64), c,
              randint(g, 1, 50) / 10, atol=1e-8)


@q4.test("more features than examples; a large penalty", points=1)
def _(ridge_probe):
    g = rng()
    n, d, c = randint(g, 3, 8), randint(g, 10, 20), randint(g, 2, 4)
    y = torch.arange(n) % c
    f = torch.randn(n, d, generator=g, dtype=torch.float64) + 1.5
    _check_q4(ridge_probe, f, y, torch.randn(5, d, generator=g, dtype=torch.float64), c, 25.0, atol=1e-8)


@q4.test("works on the input's device", points=1)
def _(ridge_probe):
    g = rng()
    expect_device(ridge_probe, torch.randn(10, 4, generator=g), torch.arange(10) % 3,
                  torch.randn(3, 4, generator=g), 3, 1.0)
