"""SGD with momentum and Adam against torch.optim; the learning-rate schedules."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import Value
from core.optim import SGD, Adam, cosine, linear_decay, make_schedule
from tests.core.torch_twin import torch

START = [0.5, -1.5, 2.0]


def quadratic_grads(values):
    """Gradients of sum(i * x_i^2 + x_i) at the given values."""
    return [2 * (i + 1) * x + 1 for i, x in enumerate(values)]


def run_ours(optimizer_class, steps, **kwargs):
    params = [Value(x) for x in START]
    optimizer = optimizer_class(params, **kwargs)
    for step in range(steps):
        for p, g in zip(params, quadratic_grads([p.data for p in params])):
            p.grad = g
        optimizer.step(optimizer.schedule(step))
    return [p.data for p in params]


def run_torch(optimizer_class, steps, **kwargs):
    params = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in START]
    optimizer = optimizer_class(params, **kwargs)
    for _ in range(steps):
        for p, g in zip(params, quadratic_grads([p.item() for p in params])):
            p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return [p.item() for p in params]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch(momentum):
    ours = run_ours(SGD, 20, lr=0.05, momentum=momentum)
    assert ours == pytest.approx(run_torch(torch.optim.SGD, 20, lr=0.05, momentum=momentum), rel=1e-12)


def test_adam_matches_torch():
    ours = run_ours(Adam, 30, lr=0.1, beta1=0.8, beta2=0.99, eps=1e-8)
    theirs = run_torch(torch.optim.Adam, 30, lr=0.1, betas=(0.8, 0.99), eps=1e-8)
    assert ours == pytest.approx(theirs, rel=1e-10)


def test_schedules():
    assert make_schedule("constant", 0.3)(57) == 0.3
    demo = linear_decay(1.0, 0.1, 100)  # the moons demo: 1.0 - 0.9 * k / 100
    assert [demo(k) for k in (0, 50, 99)] == pytest.approx([1.0 - 0.9 * k / 100 for k in (0, 50, 99)])
    cos = cosine(1.0, 0.0, 10)
    assert cos(0) == 1.0 and cos(5) == pytest.approx(0.5) and cos(10) == pytest.approx(0.0)
    assert all(cos(k) >= cos(k + 1) for k in range(10))
    with pytest.raises(ValueError, match="schedule"):
        make_schedule("step", 0.1)


def test_the_schedule_drives_the_update():
    p = Value(0.0)
    optimizer = SGD([p], schedule=linear_decay(1.0, 0.0, 4))
    for step in range(4):
        p.grad = 1.0
        optimizer.step(optimizer.schedule(step))
    assert p.data == pytest.approx(-(1.0 + 0.75 + 0.5 + 0.25))
    assert not math.isnan(p.data)


def per_parameter_steps(kind, data, grads, lr, momentum=0.9, b1=0.9, b2=0.999, eps=1e-8):
    """The optimizers' formulas one parameter at a time in Python floats, as they were written
    before the update ran on arrays: data after each step of grads."""
    data, velocity, m, v = list(data), [0.0] * len(data), [0.0] * len(data), [0.0] * len(data)
    for t, grad in enumerate(grads, start=1):
        for i, g in enumerate(grad):
            if kind == "sgd":
                data[i] += -lr * g
            elif kind == "momentum":
                velocity[i] = momentum * velocity[i] + g
                data[i] -= lr * velocity[i]
            else:
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
                data[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return data


finite = st.floats(-1e6, 1e6, allow_nan=False) | st.floats(-1e-300, 1e-300)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sgd", "momentum", "adam"]), st.integers(1, 6), st.integers(1, 4),
       st.floats(1e-6, 10.0), st.data())
def test_the_update_on_arrays_is_the_per_parameter_formula_bit_for_bit(kind, n, steps, lr, data):
    """Histories, checkpoints and the compiled-vs-interpreted checks rest on these bits."""
    start = data.draw(st.lists(finite, min_size=n, max_size=n))
    grads = data.draw(st.lists(st.lists(finite, min_size=n, max_size=n), min_size=steps, max_size=steps))
    expected = [x.hex() for x in per_parameter_steps(kind, start, grads, lr)]

    def optimizer(params):
        return Adam(params, lr) if kind == "adam" else SGD(params, lr, momentum=0.9 if kind == "momentum" else 0.0)
    params = [Value(x) for x in start]  # step(lr): on the Values
    on_values = optimizer(params)
    for grad in grads:
        for p, g in zip(params, grad):
            p.grad = g
        on_values.step(lr)
    assert [p.data.hex() for p in params] == expected
    assert all(type(p.data) is float for p in params)

    array = np.array(start)  # update(): on a training loop's arrays
    on_arrays = optimizer([Value(x) for x in start])
    for grad in grads:
        on_arrays.update(array, np.array(grad), lr)
    assert [x.hex() for x in array.tolist()] == expected
