"""services.api.points_json: a history's points written from its columns are the bytes orjson made from one dict
per point (History.records), and the values LossPointOut gave."""
import math

import numpy as np
import orjson
import pytest

from services.api.points_json import points_json, with_points
from services.api.schemas import LossPointOut, finite_or_none
from services.store.history import FLOAT, INT, History

ODD = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-7, 1e-05, 0.1, 2 / 3, 1.0, 100.0, 123456789.0,
       1e15, 1e16, 1e17, 1e21, 1e22, 1.7976931348623157e308, -1.5, math.nan, math.inf, -math.inf]


def history_of(steps, loss, accuracy, lr):
    return History(np.asarray(steps, INT), np.asarray(loss, FLOAT), np.asarray(accuracy, FLOAT), np.asarray(lr, FLOAT))


def random_history(rng, n):
    """n points whose values are any float64 bit pattern (NaN payloads, subnormals, ±inf) or an odd value."""
    def column():
        values = rng.integers(0, 2**64, n, dtype=np.uint64).view(FLOAT)
        odd = rng.random(n) < 0.3
        values[odd] = rng.choice(ODD, odd.sum())
        return values
    steps = np.sort(rng.choice(10**9, n, replace=False)).astype(INT)
    return History(steps, column(), column(), column())


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 10_000])
@pytest.mark.parametrize("seed", range(3))
def test_the_same_bytes_as_one_dict_per_point(n, seed):
    history = random_history(np.random.default_rng(seed * 100_000 + n), n)
    assert points_json(history) == orjson.dumps(history.records())


def test_no_points_is_an_empty_array():
    empty = history_of([], [], [], [])
    assert points_json(empty) == b"[]"
    assert orjson.loads(with_points({"total_points": 0}, empty)) == {"total_points": 0, "points": []}


def test_the_values_loss_point_out_gives():
    """Absent accuracy or lr, and a non-finite loss, are null; tiny and huge floats round-trip; -0.0 keeps its sign."""
    history = history_of(range(len(ODD)), ODD, ODD[::-1], [math.nan, 0.5] * (len(ODD) // 2))
    expected = [LossPointOut(step=p.step, loss=finite_or_none(p.loss), accuracy=finite_or_none(p.accuracy),
                             lr=finite_or_none(p.lr)).model_dump() for p in history]
    points = orjson.loads(points_json(history))
    assert points == expected
    assert math.copysign(1, points[1]["loss"]) == -1 and points[0]["step"] == 0


def test_slices_and_picked_points_of_a_history():
    """Columns that are views (a range of steps, every other point) are written as their values."""
    history = random_history(np.random.default_rng(7), 500)
    for part in (slice(100, 300), slice(None, None, 2), [0, 5, 499]):
        picked = History(history.steps[part], history.loss[part], history.accuracy[part], history.lr[part])
        assert points_json(picked) == orjson.dumps(picked.records())


def test_with_points_puts_the_points_last_in_the_object():
    history = history_of([0, 1], [0.5, math.nan], [math.nan, 1.0], [0.1, 0.1])
    body = with_points({"job_id": "j", "status": "running", "total_points": 2}, history)
    assert body == orjson.dumps({"job_id": "j", "status": "running", "total_points": 2,
                                 "points": history.records()})
