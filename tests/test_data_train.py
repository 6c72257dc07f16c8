"""Offline datasets, the download path's offline error, loaders, and the training loop."""
import socket
import urllib.request

import numpy as np
import pytest
import torch
from torch import nn

from cnnkit import data
from cnnkit.data import DatasetUnavailableError
from cnnkit.models import LeNet5, SmallCNN, count_parameters
from cnnkit.train import History, accuracy, evaluate, fit


def test_mnist_split_is_stratified_and_disjoint():
    X, y = data.mnist_arrays()
    assert X.shape == (5000, 28, 28) and X.dtype == np.uint8 and set(np.unique(y)) == set(range(10))
    train, test = data.mnist()
    assert len(train) == 4000 and len(test) == 1000
    assert torch.bincount(test.tensors[1]).tolist() == [100] * 10
    xtr, xte = train.tensors[0], test.tensors[0]
    assert xtr.shape[1:] == (1, 28, 28)
    assert abs(xtr.mean().item()) < 0.2  # normalised
    # no test image appears in the training split
    tr = {hash(r.numpy().tobytes()) for r in xtr}
    assert not any(hash(r.numpy().tobytes()) in tr for r in xte)
    small, _ = data.mnist(n_train=500)
    assert torch.bincount(small.tensors[1]).tolist() == [50] * 10
    with pytest.raises(ValueError, match="n_train must be between"):
        data.mnist(n_train=5)


def test_digits8_and_photos():
    train, test = data.digits8()
    assert train.tensors[0].shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    img = data.photo("astronaut", size=64)
    assert img.shape == (3, 64, 64) and 0 <= img.min() and img.max() <= 1
    assert data.photo("camera").shape[0] == 3
    assert data.photo("chelsea", gray=True).shape[0] == 1
    assert data.photo("china").shape == (3, 427, 640)
    with pytest.raises(ValueError, match="unknown photo 'lena'; choose one of"):
        data.photo("lena")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "missing")
    return tmp_path


def test_download_datasets_fail_clearly_offline(offline):
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded.*offline.*cnnkit.data.mnist"):
        data.cifar10(root=offline / "cifar")
    with pytest.raises(DatasetUnavailableError, match="Fashion-MNIST is not in .* download=False"):
        data.fashion_mnist(root=offline / "fm", download=False)
    with pytest.raises(DatasetUnavailableError, match="Fashion-MNIST .* could not be downloaded"):
        data.fashion_mnist(root=offline / "fm")


def test_fashion_mnist_reads_idx_files(monkeypatch, tmp_path):
    import gzip
    n = 6
    imgs = np.arange(n * 28 * 28, dtype=np.uint8).reshape(n, 28, 28)
    labels = np.array([0, 1, 2, 3, 4, 9], dtype=np.uint8)
    for prefix in ("train", "t10k"):
        with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (n, 28, 28)) + imgs.tobytes())
        with gzip.open(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.tobytes())
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path)
    ds = data.fashion_mnist(train=False, normalize=False)
    assert ds.tensors[0].shape == (n, 1, 28, 28)
    assert ds.tensors[1].tolist() == labels.tolist()
    assert torch.allclose(ds.tensors[0][1, 0] * 255, torch.from_numpy(imgs[1]).float())


def test_make_loader_adapts_to_device():
    ds, _ = data.digits8()
    cpu = data.make_loader(ds, 32, shuffle=True, device="cpu")
    assert not cpu.pin_memory and cpu.num_workers == 0
    first = next(iter(cpu))[1]
    assert torch.equal(first, next(iter(data.make_loader(ds, 32, shuffle=True, device="cpu")))[1])


def test_fit_overfits_one_batch():
    torch.manual_seed(0)
    x = torch.randn(16, 1, 28, 28)
    y = torch.arange(16) % 10
    loader = [(x, y)]
    model = SmallCNN()
    hist = fit(model, loader, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), 1e-2), epochs=60,
               progress=False, verbose=False)
    assert hist.train_loss[-1] < 0.01 < hist.train_loss[0]
    assert hist.train_acc[-1] == 1.0
    loss, acc = evaluate(model, loader, nn.CrossEntropyLoss())
    assert acc == 1.0 and loss < 0.01


def test_fit_records_eval_and_continues_history(capsys):
    torch.manual_seed(0)
    train, test = data.digits8()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), 0.1)
    h = fit(model, data.make_loader(train, 64, True), nn.CrossEntropyLoss(), opt, 2,
            eval_loader=data.make_loader(test, 256), progress=False)
    assert h.epochs == 2 and len(h.test_acc) == 2 and len(h.epoch_time) == 2
    assert "epoch  2" in capsys.readouterr().out
    fit(model, data.make_loader(train, 64, True), nn.CrossEntropyLoss(), opt, 1, history=h, verbose=False,
        progress=False)
    assert h.epochs == 3 and isinstance(h, History)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(model, [], nn.CrossEntropyLoss(), opt, 0)


def test_accuracy_and_models():
    assert accuracy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])) == 0.5
    with pytest.raises(ValueError, match="expected logits"):
        accuracy(torch.zeros(3), torch.zeros(3))
    assert LeNet5()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert count_parameters(LeNet5()) == 61706
