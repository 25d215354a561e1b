"""core.predict.Forward: the graph-free forward pass equals core.train.predict bit for bit."""
import random

import pytest

from core.nn import MLP
from core.predict import Forward
from core.train import predict


@pytest.mark.parametrize("activations", [["tanh", "tanh", "linear"], ["relu", "sigmoid", "tanh"],
                                         ["sigmoid", "relu", "linear"], "relu"])
@pytest.mark.parametrize("outputs", [1, 3])
def test_forward_is_bit_identical_to_the_graph(activations, outputs):
    rng = random.Random(7)
    model = MLP(4, [6, 5, outputs], activations, seed=3)
    xs = [[rng.uniform(-40, 40) for _ in range(4)] for _ in range(300)] + [[0.0, -0.0, 1e-300, -1e-300]]
    assert Forward(model.to_json())(xs) == predict(model.to_json(), xs)


def test_an_overflow_raises():
    linear = {"nin": 1, "layers": [{"activation": "linear", "neurons": [{"w": [1e308], "b": 0.0}]}]}
    assert Forward(linear)([[1.0]]) == [1e308]
    with pytest.raises(OverflowError):
        Forward(linear)([[10.0]])
    assert predict(linear, [[10.0]]) == [float("inf")]  # the graph has no finite answer either


@pytest.mark.parametrize("params", [{}, {"nin": 2, "layers": []},
                                    {"nin": 2, "layers": [{"activation": "tanh", "neurons": [{"w": [1.0], "b": 0}]}]},
                                    {"nin": 1, "layers": [{"activation": "cube", "neurons": [{"w": [1.0], "b": 0}]}]}])
def test_a_malformed_export_is_a_value_error(params):
    with pytest.raises(ValueError):
        Forward(params)
