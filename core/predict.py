"""Predictions without a graph: an exported MLP's forward pass over a batch, as NumPy arrays.

Bit-identical to core.train.predict: the same IEEE operations in the same order (each
neuron sums b + w0*x0 + w1*x1 + ... left to right, as Neuron.__call__ does, here for every
sample and every neuron of a layer at once), tanh and sigmoid through the same `math`
functions as core.engine. A value that overflows raises OverflowError, as the engine does."""
import math

import numpy as np


def _sigmoid(x):  # core.engine.Value.sigmoid's arithmetic
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _elementwise(function):
    scalar = np.frompyfunc(function, 1, 1)
    return lambda a: scalar(a).astype(float)


ACTIVATIONS = {
    "tanh": _elementwise(math.tanh),
    "sigmoid": _elementwise(_sigmoid),
    "relu": lambda a: np.where(a <= 0, 0.0, a),
    "linear": lambda a: a,
}


class Forward:
    """Forward(params) for a MLP.to_json() export; forward(xs) -> a float per sample for one
    output, else a list of floats per sample (as core.train.predict)."""

    def __init__(self, params):
        try:
            self.nin = int(params["nin"])
            self.layers = []
            width = self.nin
            for layer in params["layers"]:
                neurons = layer["neurons"]
                weights = np.array([n["w"] for n in neurons], dtype=float).reshape(len(neurons), width)
                biases = np.array([n["b"] for n in neurons], dtype=float)
                if layer["activation"] not in ACTIVATIONS:
                    raise ValueError(f"unknown activation {layer['activation']!r}")
                self.layers.append((ACTIVATIONS[layer["activation"]], weights, biases))
                width = len(neurons)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not an MLP export of consistent shapes: {e!r}") from None
        if not self.layers:
            raise ValueError("not an MLP export: no layers")
        self.nbytes = sum(w.nbytes + b.nbytes for _, w, b in self.layers)

    def __call__(self, xs):
        values = np.asarray(xs, dtype=float).reshape(len(xs), self.nin)
        with np.errstate(over="ignore", invalid="ignore"):
            for activate, weights, biases in self.layers:
                sums = np.repeat(biases[None, :], len(values), axis=0)
                for i in range(weights.shape[1]):
                    sums += values[:, i:i + 1] * weights[:, i]
                if not np.isfinite(sums).all():
                    raise OverflowError("a neuron's input sum overflowed")
                values = activate(sums)
        return values[:, 0].tolist() if values.shape[1] == 1 else values.tolist()
