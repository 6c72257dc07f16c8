import numpy as np
import pytest
import torch

from cnnkit.experiments import mean_sd, over_seeds, paired_ci, paired_difference


def test_over_seeds_seeds_each_run_and_repeats():
    first = over_seeds(lambda s: torch.rand(1).item(), (0, 1, 2))
    again = over_seeds(lambda s: torch.rand(1).item(), (0, 1, 2))
    assert first.shape == (3,) and np.array_equal(first, again) and len(set(first)) == 3
    with pytest.raises(ValueError, match="seeds"):
        over_seeds(lambda s: 0.0, 3)


def test_summaries():
    assert mean_sd([0.95, 0.97]) == "96.0% ± 1.4"
    assert mean_sd([0.5, 0.7], percent=False) == "0.600 ± 0.141"
    mean, sd = paired_difference([0.9, 0.8, 0.7], [0.8, 0.8, 0.8])
    assert mean == pytest.approx(0.0) and sd == pytest.approx(0.1)
    with pytest.raises(ValueError):
        paired_difference([1.0], [2.0])


def test_paired_ci_uses_the_t_distribution():
    mean, low, high = paired_ci([0.9, 0.8, 0.7], [0.8, 0.8, 0.8])
    assert mean == pytest.approx(0.0) and low == pytest.approx(-0.2484, abs=1e-3) and high == pytest.approx(0.2484, abs=1e-3)
    mean, low, high = paired_ci([0.95, 0.96, 0.94, 0.95, 0.97], [0.6, 0.7, 0.5, 0.8, 0.6])
    assert low > 0


def test_glue_stores_numpy_and_torch_scalars_as_python_numbers():
    from cnnkit.book import _plain
    assert repr(_plain(np.float64(0.5))) == "0.5" and repr(_plain(np.int64(3))) == "3"
    assert _plain(torch.tensor(2.5)) == 2.5 and isinstance(_plain(torch.tensor(2.5)), float)
    assert _plain("text") == "text" and isinstance(_plain(np.zeros(3)), np.ndarray)
