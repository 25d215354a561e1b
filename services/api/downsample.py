"""Shrink a long loss curve to at most N points without hiding its spikes.

The first and last points are always kept; the points in between are split
into equal buckets and each bucket keeps its lowest and its highest point
(min/max decimation), so a single spike survives any amount of shrinking."""
import numpy as np


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
    ranked = np.where(np.isfinite(values), values, np.inf).astype(float)
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).round().astype(int)
    keep = [0, n - 1]
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            keep.append(lo + int(np.argmin(ranked[lo:hi])))
            keep.append(lo + int(np.argmax(ranked[lo:hi])))
    return np.unique(keep)
