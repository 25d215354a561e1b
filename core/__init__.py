"""core: a scalar autograd engine and the small neural-net library built on it."""
from core.engine import Value
from core.nn import MLP, Layer, Module, Neuron

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP"]
