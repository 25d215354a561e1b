"""The training loop's batches, one per step, as lists and (for the compiled engine) as arrays.

Converting a batch of nested Python lists to NumPy arrays costs as much as a tenth of a
compiled step (1,000 points, 64x64 net). So the training set is converted once: a full batch
is the same arrays every step, and a mini-batch takes its rows from the whole set's arrays
(fancy indexing copies float64 bits exactly, so the arrays equal those of its lists). The
sample order and the random draws are those of the per-step lists: one rng.sample per
mini-batch step, drawn when the step asks for it (a resumed run sets the rng state first)."""
from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class Batch:
    xs: list               # the samples, as lists (the interpreted engine, accuracy, a fallback)
    ys: list               # their targets
    arrays: Optional[Any]  # to_arrays(xs, ys) for the compiled engine, else None


class Batches:
    """batches.next() is the next step's Batch: everything (batch_size None or >= the set's size)
    or a random sample of batch_size samples drawn with rng."""

    def __init__(self, xs, ys, batch_size, rng, to_arrays=None):
        self.xs, self.ys = xs, ys
        self.full = batch_size is None or batch_size >= len(xs)
        self.batch_size, self.rng = batch_size, rng
        self.arrays = to_arrays(xs, ys) if to_arrays is not None else None  # raises on malformed data

    def next(self):
        if self.full:
            return Batch(self.xs, self.ys, self.arrays)
        chosen = self.rng.sample(range(len(self.xs)), self.batch_size)
        arrays = None if self.arrays is None else tuple(a[chosen] for a in self.arrays)
        return Batch([self.xs[i] for i in chosen], [self.ys[i] for i in chosen], arrays)
