"""The spec rejects data/loss/output combinations that run_spec could not train."""
import pytest
from pydantic import ValidationError

from core.spec import JobSpec


@pytest.mark.parametrize("spec, message", [
    ({"data": {"kind": "moons", "classes": 3}}, "moons has 2 classes"),
    ({"loss": "softmax_ce"}, "needs 2 outputs"),
    ({"data": {"kind": "blobs", "classes": 3}, "loss": "hinge"}, "hinge is for 2 classes"),
    ({"data": {"kind": "spirals", "classes": 3}}, "sse over 3 classes needs one output per class"),
    ({"data": {"kind": "inline", "xs": [[1.0], [2.0]], "ys": [0, 1]}, "loss": "softmax_ce",
      "model": {"layers": [4, 1]}}, "softmax_ce needs one output per class"),
    ({"data": {"kind": "inline", "xs": [[1.0], [2.0]], "ys": [0.5, 1.0]}, "model": {"layers": [4, 2]}},
     "a target has 1 values but the last layer has 2 outputs"),
    ({"data": {"kind": "inline", "xs": [[1.0], [2.0]], "ys": [0, 2]}, "loss": "hinge"}, "needs binary labels"),
    ({"data": {"kind": "inline", "xs": [[1.0], [2.0]], "ys": [0, 3]}, "loss": "softmax_ce",
      "model": {"layers": [4, 3]}}, "class 3 needs more outputs"),
])
def test_impossible_combinations_are_rejected(spec, message):
    with pytest.raises(ValidationError, match=message):
        JobSpec.model_validate(spec)


@pytest.mark.parametrize("spec", [
    {},
    {"loss": "softmax_ce", "model": {"layers": [4, 2]}},
    {"data": {"kind": "spirals", "classes": 3}, "loss": "mse", "model": {"layers": [8, 3]}},
    {"data": {"kind": "blobs", "classes": 4}, "loss": "softmax_ce", "model": {"layers": [8, 4]}},
    {"data": {"kind": "inline", "xs": [[1.0], [2.0]], "ys": [[0.5, 1.0], [0.0, 2.0]]}, "model": {"layers": [4, 2]}},
    {"data": {"kind": "inline", "xs": [[1.0], [2.0]], "ys": [0, 1]}, "loss": "bce"},
])
def test_possible_combinations_are_accepted(spec):
    JobSpec.model_validate(spec)
