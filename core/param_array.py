"""A model's parameters as one NumPy array, with their gradients as another.

The compiled engine and the optimizers work on arrays: one C call updates every
parameter, where a loop over Value objects costs a Python attribute read and write
per parameter and step (for 7,500 parameters that loop was 90% of a compiled step).
While train() runs, the parameters live here; the Values are written only when
something reads them (the interpreted engine, the end of training). Reading and
writing copies float64 bits exactly, so either home gives the same numbers."""
import numpy as np


class ParamArray:
    """data[i] and grad[i] are parameters[i].data and .grad, in the parameters' order."""

    def __init__(self, parameters):
        self.parameters = list(parameters)
        self.data = np.fromiter((p.data for p in self.parameters), dtype=float, count=len(self.parameters))
        self.grad = np.fromiter((p.grad for p in self.parameters), dtype=float, count=len(self.parameters))

    def __len__(self):
        return len(self.parameters)

    def read_grads(self):
        """grad from the Values' .grad (after the interpreted engine's backward())."""
        self.grad = np.fromiter((p.grad for p in self.parameters), dtype=float, count=len(self.parameters))

    def write_back(self):
        """Every Value's .data and .grad from the arrays."""
        for p, value, grad in zip(self.parameters, self.data.tolist(), self.grad.tolist()):
            p.data, p.grad = value, grad

    def write_grads(self):
        for p, grad in zip(self.parameters, self.grad.tolist()):
            p.grad = grad
