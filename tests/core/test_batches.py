"""The training loop's batches: converted to arrays once, the same samples and bits as per-step lists."""
import random

import numpy as np
import pytest

from core import MLP
from core.batches import Batches
from core.compile import CompiledLoss, compile_loss
from core.data import generate
from core.train import train


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("loss, outputs", [("sse", 1), ("mse", 3), ("softmax_ce", 3)])
def test_mini_batch_arrays_are_the_arrays_of_the_same_samples_lists(loss, outputs):
    xs, labels = generate("blobs", 30, 0.3, seed=4, classes=3)
    ys = labels if loss == "softmax_ce" else [
        [float(k == y) for k in range(3)] if outputs == 3 else float(y) for y in labels]
    compiled = compile_loss(MLP(2, [outputs], seed=0), loss, 0.0, 2)
    batches = Batches(xs, ys, 4, random.Random(7), compiled.batch_arrays)
    twin = random.Random(7)  # the draws of the loop before batches were arrays: one rng.sample per step
    for _ in range(20):
        batch = batches.next()
        chosen = twin.sample(range(len(xs)), 4)
        assert batch.xs == [xs[i] for i in chosen] and batch.ys == [ys[i] for i in chosen]
        for got, expected in zip(batch.arrays, compiled.batch_arrays(batch.xs, batch.ys)):
            assert same_bits(got, expected)


def test_a_full_batch_is_converted_once_and_draws_nothing():
    xs, ys = [[1.0, 2.0], [3, 4.5]], [1.0, -1.0]
    calls = []

    def to_arrays(xs, ys):
        calls.append(len(xs))
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    rng = random.Random(0)
    state = rng.getstate()
    batches = Batches(xs, ys, 5, rng, to_arrays)  # a batch size over the set's size is the full batch
    first, second = batches.next(), batches.next()
    assert calls == [2] and first.arrays is second.arrays and first.xs is xs
    assert rng.getstate() == state


def test_the_interpreted_engine_gets_lists_only():
    batch = Batches([[1.0]], [2.0], None, random.Random(0)).next()
    assert batch.arrays is None and batch.xs == [[1.0]]


@pytest.mark.parametrize("batch_size", [None, 6])
def test_compiled_training_converts_the_training_set_once(monkeypatch, batch_size):
    xs, ys = generate("moons", 30, 0.1, seed=0)
    ys = [1.0 if y else -1.0 for y in ys]
    sizes = []
    convert = CompiledLoss.batch_arrays

    def spy(self, xs, ys):
        sizes.append(len(xs))
        return convert(self, xs, ys)
    monkeypatch.setattr(CompiledLoss, "batch_arrays", spy)
    during_steps = []
    train(MLP(2, [4, 1], seed=0), xs, ys, "sse", steps=5, batch_size=batch_size,
          callback=lambda record: during_steps.append(list(sizes)))
    assert during_steps == [[30]] * 5  # the whole set once, before the first step; none per step
