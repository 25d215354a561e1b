"""Every op's value and gradient against PyTorch (float64) and central finite differences."""
import math

import pytest

from core import Value
from tests.core.torch_twin import torch

UNARY = {  # name -> (our op, torch op, inputs where it is smooth)
    "tanh": (Value.tanh, lambda t: torch.tanh(t), [-3.0, -0.5, 0.0, 0.7, 2.5]),
    "exp": (Value.exp, lambda t: torch.exp(t), [-3.0, -0.5, 0.0, 0.7, 2.5]),
    "log": (Value.log, lambda t: torch.log(t), [0.01, 0.5, 1.0, 3.0, 1e5]),
    "relu": (Value.relu, lambda t: torch.relu(t), [-3.0, -0.5, 0.7, 2.5]),
    "sigmoid": (Value.sigmoid, lambda t: torch.sigmoid(t), [-30.0, -0.5, 0.0, 0.7, 30.0]),
    "neg": (Value.__neg__, lambda t: torch.neg(t), [-3.0, 0.0, 2.5]),
    "square": (lambda v: v ** 2, lambda t: t ** 2, [-3.0, 0.0, 2.5]),
    "cube": (lambda v: v ** 3, lambda t: t ** 3, [-3.0, 0.5, 2.5]),
    "reciprocal": (lambda v: v ** -1, lambda t: t ** -1, [-3.0, 0.5, 2.5]),
    "sqrt": (lambda v: v ** 0.5, lambda t: torch.sqrt(t), [0.01, 0.5, 2.5]),
    "power -1.5": (lambda v: v ** -1.5, lambda t: t ** -1.5, [0.2, 1.0, 4.0]),
}

BINARY = {  # name -> function of two operands (works on Values and on tensors)
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}
PAIRS = [(2.0, -3.0), (-0.5, 0.25), (1e3, 7.0), (0.0, 1.5)]


def torch_value_and_grads(f, *xs):
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = f(*ts)
    out.backward()
    return out.item(), [t.grad.item() for t in ts]


def our_value_and_grads(f, *xs):
    vs = [Value(x) for x in xs]
    out = f(*vs)
    out.backward()
    return out.data, [v.grad for v in vs]


def central_difference(f, xs, i, h=1e-6):
    up, down = list(xs), list(xs)
    up[i] += h
    down[i] -= h
    return (f(*up) - f(*down)) / (2 * h)


@pytest.mark.parametrize("name", UNARY)
def test_unary_op_matches_torch_and_finite_differences(name):
    ours, theirs, inputs = UNARY[name]
    for x in inputs:
        value, (grad,) = our_value_and_grads(ours, x)
        t_value, (t_grad,) = torch_value_and_grads(theirs, x)
        assert value == pytest.approx(t_value, rel=1e-10, abs=1e-10), (name, x)
        assert grad == pytest.approx(t_grad, rel=1e-10, abs=1e-10), (name, x)
        numeric = central_difference(lambda y: ours(Value(y)).data, [x], 0)
        assert grad == pytest.approx(numeric, rel=1e-5, abs=1e-6), (name, x)


@pytest.mark.parametrize("name", BINARY)
def test_binary_op_matches_torch_with_values_and_numbers_on_either_side(name):
    f = BINARY[name]
    for a, b in PAIRS:
        value, grads = our_value_and_grads(f, a, b)
        t_value, t_grads = torch_value_and_grads(f, a, b)
        assert value == pytest.approx(t_value, rel=1e-12, abs=1e-12)
        assert grads == pytest.approx(t_grads, rel=1e-10, abs=1e-10)
        left, right = Value(a), Value(b)
        assert f(left, b).data == pytest.approx(t_value, rel=1e-12, abs=1e-12)   # v op number
        assert f(a, right).data == pytest.approx(t_value, rel=1e-12, abs=1e-12)  # number op v (reflected)


def test_reflected_operators_give_gradients():
    v = Value(4.0)
    out = (2 + v) * (2 - v) + 2 * v + 2 / v
    out.backward()
    # d/dv [(4 - v^2) + 2v + 2/v] = -2v + 2 - 2/v^2
    assert v.grad == pytest.approx(-8 + 2 - 2 / 16, rel=1e-12)


def test_sum_without_a_start_value():
    vs = [Value(1.5), Value(-2.0), Value(4.0)]
    total = sum(vs)
    total.backward()
    assert total.data == 3.5
    assert [v.grad for v in vs] == [1.0, 1.0, 1.0]


def test_the_seeds_sum_with_a_start_value():
    vs = [Value(1.0), Value(2.0)]
    assert sum(vs, Value(0.0)).data == 3.0


def test_maximum_sends_the_gradient_to_the_larger_operand():
    a, b = Value(1.0), Value(3.0)
    a.maximum(b).backward()
    assert (a.grad, b.grad) == (0.0, 1.0)


def test_seed_attributes_and_op_strings():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    assert c._prev == (a, b) and c._op == "*" and a.label == "a" and a._op == ""
    assert (a + b)._op == "+" and (a ** 2)._op == "**2" and (a / b)._prev[1]._op == "**-1"
    assert [a.tanh()._op, a.exp()._op, a.log()._op, a.relu()._op, a.sigmoid()._op] == \
        ["tanh", "exp", "log", "ReLU", "sigmoid"]
    assert repr(Value(0.5)) == "Value(data=0.5)"


class TestNumericalSafety:
    def test_tanh_saturates_instead_of_overflowing(self):
        assert Value(1000).tanh().data == 1.0
        assert Value(-1000).tanh().data == -1.0

    def test_sigmoid_of_extreme_inputs(self):
        assert Value(1000.0).sigmoid().data == 1.0
        low = Value(-1000.0).sigmoid()
        assert low.data == 0.0 and low._local == (0.0,)
        assert Value(-700.0).sigmoid().data == pytest.approx(math.exp(-700), rel=1e-12)

    def test_log_of_extreme_inputs(self):
        assert Value(5e-324).log().data == pytest.approx(-744.44007, rel=1e-7)
        assert Value(1e308).log().data == pytest.approx(709.196, rel=1e-5)
        with pytest.raises(ValueError, match="log"):
            Value(0.0).log()
        with pytest.raises(ValueError, match="log"):
            Value(-1.0).log()

    def test_exp_overflow_is_an_error_naming_the_op(self):
        with pytest.raises(OverflowError, match="exp"):
            Value(1000.0).exp()

    @pytest.mark.parametrize("base, k", [(1e200, 2), (10, 400), (1e-200, -2)])
    def test_power_overflow_is_an_error_naming_the_op(self, base, k):
        with pytest.raises(OverflowError, match=r"\*\*"):
            Value(base) ** k

    def test_power_with_no_real_value_is_an_error(self):
        with pytest.raises(ValueError, match=r"\*\*"):
            Value(-8.0) ** 0.5

    def test_division_by_zero_names_the_op(self):
        with pytest.raises(ZeroDivisionError, match=r"\*\*"):
            Value(1.0) / 0

    def test_relu_keeps_nan_visible(self):
        assert math.isnan(Value(math.nan).relu().data)

    def test_unsupported_operands_are_type_errors(self):
        with pytest.raises(TypeError):
            Value(1.0) + "2"
        with pytest.raises(TypeError):
            Value(1.0) ** Value(2.0)
