import pytest

import cnnkit.timing as timing
from cnnkit.timing import best_time


def test_best_time_keeps_the_fastest_run_after_warmup(monkeypatch):
    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])  # runs of 5, 1 and 3 seconds
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = []
    assert best_time(lambda: calls.append(1), repeats=3, warmup=2) == 1.0
    assert len(calls) == 5


@pytest.mark.parametrize("repeats,warmup", [(0, 1), (3, -1)])
def test_best_time_rejects_bad_counts(repeats, warmup):
    with pytest.raises(ValueError, match="need repeats >= 1"):
        best_time(lambda: None, repeats=repeats, warmup=warmup)
