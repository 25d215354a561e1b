"""Neuron, Layer and MLP as in the seed, with a per-layer activation, seeded
initialisation and exact JSON export/import of the parameters."""
import random

from core.engine import Value

ACTIVATIONS = {
    "tanh": Value.tanh,
    "relu": Value.relu,
    "sigmoid": Value.sigmoid,
    "linear": lambda v: v,
}


class Module:
    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self):
        return []


class Neuron(Module):
    def __init__(self, nin, activation="tanh", rng=None, name=""):
        check_activation(activation)
        rng = rng if rng is not None else random.Random()
        self.w = [Value(rng.uniform(-1, 1), label=f"{name}w{i}") for i in range(nin)]
        self.b = Value(rng.uniform(-1, 1), label=f"{name}b")
        self.activation = activation

    def __call__(self, x):
        if isinstance(x, (Value, int, float)):  # the output of a one-neuron layer
            x = [x]
        if len(x) != len(self.w):
            raise ValueError(f"neuron expects {len(self.w)} inputs, got {len(x)}")
        act = self.b  # b + w0*x0 + w1*x1 + ..., summed in the seed's order
        for wi, xi in zip(self.w, x):
            act = act + wi * xi
        return ACTIVATIONS[self.activation](act)

    def parameters(self):
        return self.w + [self.b]

    def to_json(self):
        return {"w": [wi.data for wi in self.w], "b": self.b.data}

    def __repr__(self):
        return f"{self.activation}Neuron({len(self.w)})"


class Layer(Module):
    def __init__(self, nin, nout, activation="tanh", rng=None, name=""):
        rng = rng if rng is not None else random.Random()
        self.neurons = [Neuron(nin, activation, rng, f"{name}N{j}.") for j in range(nout)]
        self.activation = activation

    def __call__(self, x):
        outs = [n(x) for n in self.neurons]
        return outs[0] if len(outs) == 1 else outs

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def to_json(self):
        return {"activation": self.activation, "neurons": [n.to_json() for n in self.neurons]}

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """MLP(nin, nouts): tanh everywhere by default, as in the seed.

    activations is one name for every layer or a list with one name per layer;
    rng (a random.Random) or seed makes the initial weights reproducible."""

    def __init__(self, nin, nouts, activations="tanh", rng=None, seed=None):
        if isinstance(activations, str):
            activations = [activations] * len(nouts)
        if len(activations) != len(nouts):
            raise ValueError(f"{len(nouts)} layers but {len(activations)} activations")
        if rng is None:
            rng = random.Random(seed)
        sizes = [nin] + list(nouts)
        self.layers = [Layer(sizes[i], sizes[i + 1], activations[i], rng, f"L{i}.") for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    @property
    def nin(self):
        return len(self.layers[0].neurons[0].w)

    def to_json(self):
        """{"nin": n, "layers": [{"activation": a, "neurons": [{"w": [...], "b": b}]}]}"""
        return {"nin": self.nin, "layers": [layer.to_json() for layer in self.layers]}

    @classmethod
    def from_json(cls, params):
        try:
            layers = params["layers"]
            nouts = [len(layer["neurons"]) for layer in layers]
            model = cls(params["nin"], nouts, [layer["activation"] for layer in layers], seed=0)
        except (KeyError, TypeError) as e:
            raise ValueError(f"not an MLP export (expected {{'nin', 'layers': [{{'activation', "
                             f"'neurons'}}]}}): {e!r}") from None
        model.load_json(params)
        return model

    def load_json(self, params):
        """Copy the weights of a to_json() export into this model's parameters."""
        def mismatch(where):
            return ValueError(f"parameter shapes do not match this model at {where}")
        if params["nin"] != self.nin or len(params["layers"]) != len(self.layers):
            raise mismatch("the top level (nin or number of layers)")
        for i, (layer, saved_layer) in enumerate(zip(self.layers, params["layers"])):
            if len(saved_layer["neurons"]) != len(layer.neurons):
                raise mismatch(f"layer {i}")
            for j, (neuron, saved) in enumerate(zip(layer.neurons, saved_layer["neurons"])):
                if len(saved["w"]) != len(neuron.w):
                    raise mismatch(f"layer {i} neuron {j}")
                for wi, value in zip(neuron.w, saved["w"]):
                    wi.data = float(value)
                neuron.b.data = float(saved["b"])

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


def check_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
