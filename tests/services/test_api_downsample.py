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


def loop_downsample_indices(values, max_points):
    """The first implementation (a Python loop over buckets), kept as the reference the vectorised one must
    match index for index."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    if max_points < 4:
        return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    ranked = np.where(np.isfinite(values), values, np.inf).astype(float)
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).round().astype(int)
    keep = [0, n - 1]
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            keep.append(lo + int(np.argmin(ranked[lo:hi])))
            keep.append(lo + int(np.argmax(ranked[lo:hi])))
    return np.unique(keep)


@pytest.mark.parametrize("seed", range(40))
def test_the_same_points_as_the_loop_over_buckets(seed):
    """Random lengths and budgets (buckets of unequal widths), NaN, inf and -inf, and ties: few distinct
    values, so which of equal points a bucket keeps (its first lowest, its first highest) is checked too."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30_000))
    max_points = int(rng.choice([1, 2, 3, 4, 5, 7, 10, 101, 1000, int(rng.integers(1, n + 2))]))
    values = rng.normal(size=n) if seed % 2 else rng.integers(0, 4, size=n).astype(float)
    for special in (np.nan, np.inf, -np.inf):
        values[rng.integers(0, n, size=int(rng.integers(0, 1 + n // 50)))] = special
    expected = loop_downsample_indices(values, max_points)
    assert np.array_equal(downsample_indices(values, max_points), expected)


def test_the_same_points_as_the_loop_on_a_long_curve_with_nan_and_inf():
    rng = np.random.default_rng(12)
    values = np.cumsum(rng.normal(size=1_000_000))
    values[rng.integers(0, len(values), 100)] = np.nan
    values[rng.integers(0, len(values), 100)] = np.inf
    values[rng.integers(0, len(values), 100)] = -np.inf
    for max_points in (1000, 10_000, 4321):
        assert np.array_equal(downsample_indices(values, max_points), loop_downsample_indices(values, max_points))
