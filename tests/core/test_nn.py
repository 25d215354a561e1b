"""Module, Neuron, Layer, MLP: activations, shapes, seeded init, JSON round trips."""
import json

import pytest

from core import MLP, Layer, Module, Neuron, Value


def test_public_imports_and_module_interface():
    assert issubclass(MLP, Module) and issubclass(Layer, Module) and issubclass(Neuron, Module)
    model = MLP(2, [3, 1], seed=0)
    for p in model.parameters():
        p.grad = 5.0
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_parameters_come_layer_by_layer_neuron_by_neuron_weights_then_bias():
    model = MLP(2, [2, 1], seed=0)
    labels = [p.label for p in model.parameters()]
    assert labels == ["L0.N0.w0", "L0.N0.w1", "L0.N0.b", "L0.N1.w0", "L0.N1.w1", "L0.N1.b",
                      "L1.N0.w0", "L1.N0.w1", "L1.N0.b"]


@pytest.mark.parametrize("activation, op", [("tanh", "tanh"), ("relu", "ReLU"), ("sigmoid", "sigmoid"),
                                            ("linear", "+")])
def test_each_layer_has_its_own_activation(activation, op):
    model = MLP(2, [3, 1], [activation, "linear"], seed=0)
    hidden = model.layers[0]([0.5, -1.0])
    assert all(h._op == op for h in hidden)
    assert model([0.5, -1.0])._op == "+"


def test_a_one_neuron_hidden_layer_works():
    model = MLP(2, [16, 1, 1], seed=0)
    out = model([0.3, -0.7])
    assert isinstance(out, Value)
    out.backward()
    assert any(p.grad != 0.0 for p in model.layers[0].parameters())


def test_bad_configurations_are_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [3, 1], "swish")
    with pytest.raises(ValueError, match="2 layers but 3 activations"):
        MLP(2, [3, 1], ["tanh", "tanh", "tanh"])
    with pytest.raises(ValueError, match="expects 2 inputs, got 3"):
        MLP(2, [3, 1], seed=0)([1.0, 2.0, 3.0])


def test_initialisation_is_reproducible_by_seed_and_differs_between_seeds():
    assert MLP(3, [4, 1], seed=1).to_json() == MLP(3, [4, 1], seed=1).to_json()
    assert MLP(3, [4, 1], seed=1).to_json() != MLP(3, [4, 1], seed=2).to_json()


def test_json_export_is_nested_and_round_trips_exactly_through_text():
    model = MLP(3, [4, 2, 1], ["relu", "tanh", "linear"], seed=9)
    for p in model.parameters():
        p.data = p.data / 3  # values with long binary expansions
    exported = model.to_json()
    assert exported["nin"] == 3 and [len(layer["neurons"]) for layer in exported["layers"]] == [4, 2, 1]
    assert set(exported["layers"][0]["neurons"][0]) == {"w", "b"}
    restored = MLP.from_json(json.loads(json.dumps(exported)))
    assert [p.data for p in restored.parameters()] == [p.data for p in model.parameters()]
    assert restored([0.1, 0.2, 0.3]).data == model([0.1, 0.2, 0.3]).data


def test_load_json_rejects_other_shapes():
    with pytest.raises(ValueError, match="layer 0"):
        MLP(3, [5, 1], seed=0).load_json(MLP(3, [4, 1], seed=0).to_json())
    with pytest.raises(ValueError, match="not an MLP export"):
        MLP.from_json({"layers": []})
