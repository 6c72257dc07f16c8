"""Device choice with CUDA/MPS availability patched, autocast, profiles, seeding."""
import pytest
import torch

import cnnkit.device as dev
from cnnkit.device import autocast, get_device, to_device
from cnnkit.profile import get_profile, settings
from cnnkit.repro import seed_everything


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("CNNKIT_DEVICE", raising=False)
    monkeypatch.delenv("CNNKIT_PROFILE", raising=False)


@pytest.mark.parametrize("cuda,mps,expected", [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_get_device_preference_order(monkeypatch, no_env, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(dev, "_mps_available", lambda: mps)
    assert get_device(verbose=False).type == expected


def test_get_device_prints_one_line(monkeypatch, no_env, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    get_device()
    out = capsys.readouterr().out
    assert out.startswith("Using device: cpu") and out.count("\n") == 1


def test_forcing_unavailable_device_is_clear(monkeypatch, no_env):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    monkeypatch.setenv("CNNKIT_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="'cuda' was requested but is not available here; available: cpu"):
        get_device()


def test_autocast_is_noop_on_cpu():
    lin = torch.nn.Linear(4, 4)
    with autocast(torch.device("cpu")):
        assert lin(torch.randn(2, 4)).dtype == torch.float32


def test_to_device_nested():
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "name": "a"}
    moved = to_device(batch, "cpu")
    assert moved["name"] == "a" and isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)


def test_profile_defaults_and_override(monkeypatch, no_env, capsys):
    assert get_profile("cpu") == "quick"
    assert get_profile("cuda") == "full"
    cfg = settings(quick=dict(epochs=2, width=8), full=dict(epochs=20), device="cpu")
    assert cfg == {"epochs": 2, "width": 8}
    assert "Profile 'quick': epochs=2, width=8" in capsys.readouterr().out
    monkeypatch.setenv("CNNKIT_PROFILE", "full")
    assert settings(quick=dict(epochs=2, width=8), full=dict(epochs=20), verbose=False) == {"epochs": 20, "width": 8}
    monkeypatch.setenv("CNNKIT_PROFILE", "fast")
    with pytest.raises(ValueError, match="not a profile; use one of quick, full"):
        get_profile()


def test_settings_rejects_keys_only_in_full(no_env):
    with pytest.raises(KeyError, match="lacks"):
        settings(quick=dict(epochs=1), full=dict(epohcs=3))


def test_seed_everything_repeats():
    seed_everything(3)
    a = torch.randn(5)
    seed_everything(3)
    assert torch.equal(a, torch.randn(5))
