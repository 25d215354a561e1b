"""Optimizers (SGD with momentum, Adam) and learning-rate schedules.

An optimizer updates p.data from p.grad for a fixed list of parameters; the
learning rate of each step is passed in, so a schedule is just a function of
the step number. The update itself runs on arrays (core/param_array.py), all
parameters in one NumPy operation per formula: step(lr) runs it on the Values,
update(data, grad, lr) on a training loop's arrays. Each element sees the same
IEEE operations, in the same order, as the per-parameter formula in its comment."""
import math

import numpy as np

from core.param_array import ParamArray


def constant(lr):
    return lambda step: lr


def linear_decay(lr, final_lr, steps):
    """lr at step 0, moving in a straight line towards final_lr at step `steps`
    (the moons demo's 1.0 - 0.9*k/100 is linear_decay(1.0, 0.1, 100))."""
    return lambda step: lr + (final_lr - lr) * step / steps


def cosine(lr, final_lr, steps):
    """Half a cosine from lr at step 0 down to final_lr at step `steps`."""
    return lambda step: final_lr + (lr - final_lr) * (1 + math.cos(math.pi * step / steps)) / 2


def make_schedule(name, lr, final_lr=0.0, steps=1):
    if name == "constant":
        return constant(lr)
    if name == "linear":
        return linear_decay(lr, final_lr, steps)
    if name == "cosine":
        return cosine(lr, final_lr, steps)
    raise ValueError(f"unknown schedule {name!r}; choose from constant, linear, cosine")


class Optimizer:
    """step(lr) updates the Values' .data from their .grad; update() is the same on arrays."""

    def step(self, lr):
        params = ParamArray(self.parameters)
        self.update(params.data, params.grad, lr)
        params.write_back()

    def update(self, data, grad, lr):
        """data (the parameters' values, updated in place) from grad, in self.parameters' order."""
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * v with v = momentum * v + grad (PyTorch's convention; plain SGD for momentum 0)."""

    def __init__(self, parameters, lr=0.1, momentum=0.0, schedule=None):
        self.parameters = list(parameters)
        self.schedule = schedule or constant(lr)
        self.momentum = momentum
        self.velocity = np.zeros(len(self.parameters))

    def state(self):
        """What a resumed run needs besides the parameters: the momentum buffer."""
        return {"velocity": self.velocity.tolist()}

    def load_state(self, state):
        self.velocity = _same_length(state["velocity"], self.parameters)

    def update(self, data, grad, lr):
        if self.momentum == 0.0:  # the seed's update, exactly: p.data += -lr * p.grad
            data += -lr * grad
            return
        self.velocity = self.momentum * self.velocity + grad  # v = m * v + p.grad
        data -= lr * self.velocity                            # p.data -= lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias-corrected moment estimates."""

    def __init__(self, parameters, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, schedule=None):
        self.parameters = list(parameters)
        self.schedule = schedule or constant(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = np.zeros(len(self.parameters))
        self.v = np.zeros(len(self.parameters))
        self.t = 0

    def state(self):
        """What a resumed run needs besides the parameters: both moments and the step count."""
        return {"m": self.m.tolist(), "v": self.v.tolist(), "t": self.t}

    def load_state(self, state):
        self.m = _same_length(state["m"], self.parameters)
        self.v = _same_length(state["v"], self.parameters)
        self.t = int(state["t"])

    def update(self, data, grad, lr):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        correction1, correction2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        self.m = b1 * self.m + (1 - b1) * grad                     # m = b1 * m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * grad * grad              # v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = self.m / correction1, self.v / correction2
        data -= lr * m_hat / (np.sqrt(v_hat) + self.eps)           # p.data -= lr * m_hat / (sqrt(v_hat) + eps)


def _same_length(values, parameters):
    if len(values) != len(parameters):
        raise ValueError(f"optimizer state for {len(values)} parameters, the model has {len(parameters)}")
    return np.array([float(v) for v in values], dtype=float)
