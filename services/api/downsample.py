"""Shrink a long loss curve to at most N points without hiding its spikes.

The first and last points are always kept; the points in between are split
into equal buckets and each bucket keeps its lowest and its highest point
(min/max decimation), so a single spike survives any amount of shrinking."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def downsample_indices(values, max_points):
    """Indices (ascending) of the points to keep out of `values`."""
    n = len(values)
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    if n <= max_points:
        return np.arange(n)
    if max_points < 4:
        return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    # NaN/inf losses are the biggest spikes of all: rank them above every finite value.
    ranked = np.asarray(values, dtype=float)
    finite = np.isfinite(ranked)
    if not finite.all():
        ranked = np.where(finite, ranked, np.inf)
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).round().astype(np.intp)
    lo, hi = edges[:-1], edges[1:]
    lo, hi = lo[hi > lo], hi[hi > lo]
    lowest, highest = _first_argmin_argmax(ranked, lo, hi)
    return np.unique(np.concatenate(([0, n - 1], lo + lowest, lo + highest)))


def _first_argmin_argmax(ranked, lo, hi):
    """Per bucket ranked[lo:hi] (none empty): the offsets of its first minimum and of its first maximum, for all
    buckets at once. The buckets are rows of one matrix as wide as the shortest bucket (a strided view, copied
    once); the few columns that longer buckets have beyond it (one, for equal buckets) are compared after, a
    later point winning only when strictly lower (higher), as a left-to-right scan would."""
    lengths = hi - lo
    width = int(lengths.min())
    rows = sliding_window_view(ranked, width)[lo]
    lowest, highest = rows.argmin(axis=1), rows.argmax(axis=1)
    low_values, high_values = rows[np.arange(len(lo)), lowest], rows[np.arange(len(lo)), highest]
    for column in range(width, int(lengths.max())):
        longer = np.flatnonzero(lengths > column)
        values = ranked[lo[longer] + column]
        lower, higher = values < low_values[longer], values > high_values[longer]
        lowest[longer[lower]], low_values[longer[lower]] = column, values[lower]
        highest[longer[higher]], high_values[longer[higher]] = column, values[higher]
    return lowest, highest
