"""cnnkit.transfer: fixed-step training, evaluation logs, parameter counts."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnkit.transfer import StepLog, count_parameters, predict_accuracy, steps_to_target, train_steps


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long()


def test_count_parameters_sees_frozen_layers():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_parameters(model) == (26, 26)
    model[0].requires_grad_(False)
    assert count_parameters(model) == (10, 26)
    with pytest.raises(TypeError):
        count_parameters("model")


def test_train_steps_learns_and_keeps_frozen_weights():
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    frozen = model[0].weight.clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    log = train_steps(model, x, y, opt, steps=60)
    assert torch.equal(model[0].weight, frozen)
    assert log.losses[-1] < log.losses[0] and len(log.losses) == 60
    assert predict_accuracy(model, x, y, batch_size=7) > 0.9
    assert log.train_seconds > 0


def test_batches_are_seeded_and_evaluations_logged():
    x, y = _data()

    def run(seed):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        calls = []
        log = train_steps(model, x, y, opt, steps=9, batch_size=8, seed=seed,
                          eval_fn=lambda: calls.append(1) or len(calls) / 10, eval_every=3)
        return model.weight.detach().clone(), log
    w0, log = run(0)
    assert torch.equal(w0, run(0)[0]) and not torch.equal(w0, run(1)[0])
    assert [e[0] for e in log.evals] == [0, 3, 6, 9]
    assert steps_to_target(log, 0.3)[0] == 6.0
    assert all(math.isnan(v) for v in steps_to_target(log, 0.9))


def test_a_second_phase_continues_the_log():
    x, y = _data()
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    acc = iter([0.1, 0.2, 0.3, 0.4, 0.5])
    log = train_steps(model, x, y, opt, steps=4, eval_fn=lambda: next(acc), eval_every=2)
    seconds = log.train_seconds
    again = train_steps(model, x, y, opt, steps=2, eval_fn=lambda: next(acc), eval_every=2, log=log)
    assert again is log and len(log.losses) == 6 and log.train_seconds > seconds
    assert [e[0] for e in log.evals] == [0, 2, 4, 6]
    assert steps_to_target(log, 0.35) == (6.0, log.evals[-1][1])


def test_bad_input():
    x, y = _data()
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        train_steps(nn.Linear(2, 2), x, y, opt, steps=0)
    with pytest.raises(ValueError, match="same"):
        train_steps(nn.Linear(2, 2), x, y[:3], opt, steps=1)
    with pytest.raises(ValueError, match="together"):
        train_steps(nn.Linear(2, 2), x, y, opt, steps=1, eval_fn=lambda: 0.5)
    with pytest.raises(ValueError, match="no evaluations"):
        steps_to_target(StepLog(), 0.5)
