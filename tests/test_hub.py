"""cnnkit.hub: the checkpoint cache (train once, verify by SHA-256, retrain or refuse) and ImageNet weights
offline (no network is used: downloads are made to fail)."""
from __future__ import annotations

import urllib.error

import pytest
import torch
from torch import nn

from cnnkit import hub


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


class Counter:
    """build_fn / train_fn pair that counts how often training ran."""

    def __init__(self):
        self.trained = 0

    def build(self):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

    def train(self, model):
        self.trained += 1
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0 + self.trained)  # distinguishable from the initial weights


def test_first_call_trains_and_caches_second_loads(capsys):
    c = Counter()
    m1 = hub.load_or_train("tiny", c.build, c.train)
    assert c.trained == 1
    path = hub.checkpoint_path("tiny")
    assert path.exists() and path.with_name("tiny.pt.sha256").exists()
    m2 = hub.load_or_train("tiny", c.build, c.train)
    assert c.trained == 1, "the second call must load, not train"
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert "SHA-256 verified" in capsys.readouterr().out
    assert not m2.training


def _corrupt(path, how):
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) // 3]
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_file_is_retrained_with_a_message(how, capsys):
    c = Counter()
    hub.load_or_train("tiny", c.build, c.train)
    _corrupt(hub.checkpoint_path("tiny"), how)
    capsys.readouterr()
    hub.load_or_train("tiny", c.build, c.train)
    assert c.trained == 2
    out = capsys.readouterr().out
    assert "SHA-256" in out and "training it again" in out and out.count("\n") == 1
    hub.load_or_train("tiny", c.build, c.train)  # the fresh file verifies again
    assert c.trained == 2


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_file_is_refused_on_request(how):
    c = Counter()
    hub.load_or_train("tiny", c.build, c.train)
    path = hub.checkpoint_path("tiny")
    _corrupt(path, how)
    with pytest.raises(hub.CheckpointError) as err:
        hub.load_or_train("tiny", c.build, c.train, on_corrupt="raise")
    msg = str(err.value)
    assert str(path) in msg and "SHA-256" in msg and "Delete it" in msg
    assert c.trained == 1


def test_missing_hash_and_wrong_architecture_are_detected():
    c = Counter()
    hub.load_or_train("tiny", c.build, c.train)
    path = hub.checkpoint_path("tiny")
    path.with_name("tiny.pt.sha256").unlink()
    with pytest.raises(hub.CheckpointError, match="no recorded hash"):
        hub.load_or_train("tiny", c.build, c.train, on_corrupt="raise")
    hub.load_or_train("tiny", c.build, c.train)  # retrains and records the hash
    assert c.trained == 2
    with pytest.raises(hub.CheckpointError, match="could not be loaded"):
        hub.load_or_train("tiny", lambda: nn.Linear(4, 2), c.train, on_corrupt="raise")


def test_the_file_is_a_plain_state_dict_loadable_with_weights_only():
    c = Counter()
    hub.load_or_train("tiny", c.build, c.train)
    state = torch.load(hub.checkpoint_path("tiny"), weights_only=True)
    assert set(state) == set(c.build().state_dict())


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "", ".hidden", "x" * 200, "a..b"])
def test_bad_names_are_refused(name):
    c = Counter()
    with pytest.raises(ValueError, match="not allowed"):
        hub.load_or_train(name, c.build, c.train)
    assert c.trained == 0


def test_bad_arguments():
    c = Counter()
    with pytest.raises(TypeError):
        hub.load_or_train(3, c.build, c.train)
    with pytest.raises(ValueError, match="on_corrupt"):
        hub.load_or_train("tiny", c.build, c.train, on_corrupt="ignore")
    with pytest.raises(TypeError, match="nn.Module"):
        hub.load_or_train("tiny", lambda: "not a model", c.train)


def test_imagenet_offline_fails_with_a_clear_message(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(hub.WeightsUnavailableError) as err:
        hub.imagenet_model("resnet18")
    msg = str(err.value)
    assert "no network" in msg and "https://download.pytorch.org/models/resnet18" in msg
    assert str(tmp_path / "torch") in msg and "load_or_train" in msg


def test_imagenet_weights_meta_and_bad_names():
    w = hub.imagenet_weights("resnet18")
    assert len(w.meta["categories"]) == 1000 and w.meta["num_params"] == 11_689_512
    assert hub.imagenet_weights("resnet18", "IMAGENET1K_V1") is w
    with pytest.raises(ValueError, match="unknown torchvision model"):
        hub.imagenet_model("resnet9000")
    with pytest.raises(ValueError, match="has no weights"):
        hub.imagenet_weights("resnet18", "IMAGENET1K_V9")


def test_imagenet_online_path_returns_the_model(monkeypatch, capsys):
    import torchvision.models

    made = nn.Linear(2, 2)
    calls = []

    def fake_get_model(arch, weights):
        calls.append((arch, weights))
        return made

    monkeypatch.setattr(torchvision.models, "get_model", fake_get_model)
    assert hub.imagenet_model("resnet18", "IMAGENET1K_V1") is made
    assert calls == [("resnet18", hub.imagenet_weights("resnet18"))]
    assert "downloaded https://download.pytorch.org/models/resnet18" in capsys.readouterr().out
