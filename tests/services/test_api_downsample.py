"""Min/max decimation of loss curves: bounded size, endpoints kept, spikes kept."""
import numpy as np
import pytest

from services.api.downsample import downsample_indices


def test_short_curves_are_returned_whole():
    assert downsample_indices(np.arange(10.0), 10).tolist() == list(range(10))
    assert downsample_indices(np.array([]), 5).tolist() == []


@pytest.mark.parametrize("n, max_points", [(100_000, 1000), (1001, 1000), (10_000, 7), (50, 4), (50, 3), (9, 1)])
def test_size_is_bounded_and_indices_ascend(n, max_points):
    kept = downsample_indices(np.random.default_rng(0).normal(size=n), max_points)
    assert 1 <= len(kept) <= max_points
    assert np.all(np.diff(kept) > 0) and kept[0] >= 0 and kept[-1] < n


def test_first_and_last_points_are_kept():
    kept = downsample_indices(np.random.default_rng(1).normal(size=5000), 100)
    assert kept[0] == 0 and kept[-1] == 4999


@pytest.mark.parametrize("where", [1, 2500, 77_777, 99_998])
def test_a_single_spike_survives(where):
    curve = np.linspace(1.0, 0.0, 100_000)
    curve[where] = 50.0
    curve[where + 1 if where < 50_000 else where - 1] = -50.0
    kept = downsample_indices(curve, 200)
    assert where in kept
    assert (where + 1 if where < 50_000 else where - 1) in kept


def test_a_non_finite_loss_counts_as_a_spike():
    curve = np.ones(10_000)
    curve[4321] = np.nan
    curve[8765] = np.inf
    kept = downsample_indices(curve, 100)
    assert 4321 in kept and 8765 in kept


def test_max_points_must_be_positive():
    with pytest.raises(ValueError):
        downsample_indices(np.arange(5.0), 0)
