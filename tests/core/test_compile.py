"""The compiled engine against the interpreted one, the reference: the same
losses, gradients and outputs for every model and loss we support."""
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.compile import CannotCompile, CompiledLoss, compile_loss
from core.compile_steps import Unreplayable
from core.engine import Value, as_value, topological_order
from core.nn import ACTIVATIONS, MLP
from core.param_array import ParamArray
from core.train import interpreted_loss_and_grads

LOSS_NAMES = ["sse", "mse", "hinge", "bce", "softmax_ce"]


def random_targets(loss_name, n_outputs, n, rng):
    if loss_name == "softmax_ce":
        return [rng.randrange(n_outputs) for _ in range(n)]
    if loss_name == "hinge":
        return [rng.choice([-1.0, 1.0]) for _ in range(n)]
    if loss_name == "bce":
        return [float(rng.randrange(2)) for _ in range(n)]
    if n_outputs == 1:
        return [rng.uniform(-1, 1) for _ in range(n)]
    return [[rng.uniform(-1, 1) for _ in range(n_outputs)] for _ in range(n)]


def output_width(loss_name, draw):
    if loss_name in ("hinge", "bce"):
        return 1
    if loss_name == "softmax_ce":
        return draw(st.integers(2, 4))
    return draw(st.integers(1, 3))


@st.composite
def problems(draw):
    """(model, loss name, l2, xs, ys): a random MLP, loss and batch."""
    loss_name = draw(st.sampled_from(LOSS_NAMES))
    n_inputs = draw(st.integers(1, 3))
    hidden = draw(st.lists(st.integers(1, 5), max_size=3))
    layers = hidden + [output_width(loss_name, draw)]
    activations = draw(st.lists(st.sampled_from(list(ACTIVATIONS)), min_size=len(layers), max_size=len(layers)))
    seed = draw(st.integers(0, 2**32 - 1))
    n_samples = draw(st.integers(1, 12))
    l2 = draw(st.sampled_from([0.0, 1e-3, 0.1]))
    rng = random.Random(seed)
    xs = [[rng.uniform(-2, 2) for _ in range(n_inputs)] for _ in range(n_samples)]
    ys = random_targets(loss_name, layers[-1], n_samples, rng)
    return MLP(n_inputs, layers, activations, seed=seed), loss_name, l2, xs, ys


def grads_of(model):
    return np.array([p.grad for p in model.parameters()])


def assert_close(actual, expected, rtol):
    """Equal to rtol relative to the largest expected value. Per-value relative error is
    not a fair test where values cancel towards 0 (a gradient, a loss that has converged):
    there a float64 result of any other summation order differs in its last bits of the
    big terms, which are most of the small result's bits."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@settings(max_examples=100, deadline=None)
@given(problems())
def test_loss_gradients_and_outputs_equal_the_interpreted_engine(problem):
    model, loss_name, l2, xs, ys = problem
    compiled = compile_loss(model, loss_name, l2, len(xs[0]))

    loss, outputs = compiled.loss_and_grads(xs, ys)
    grads = grads_of(model)
    expected_loss, expected_outputs = interpreted_loss_and_grads(model, loss_name, l2, xs, ys)

    assert_close(loss, expected_loss, 1e-12)
    assert_close(grads, grads_of(model), 1e-10)
    assert_close(outputs, expected_outputs, 1e-12)
    assert type(outputs[0]) is type(expected_outputs[0])  # a float per sample, or a list per sample


def test_gradients_are_overwritten_and_follow_the_parameters():
    model = MLP(2, [3, 1], seed=1)
    xs, ys = [[0.5, -1.0], [1.5, 0.25]], [1.0, -1.0]
    compiled = compile_loss(model, "sse", 0.0, 2)
    compiled.loss_and_grads(xs, ys)
    first = grads_of(model)
    compiled.loss_and_grads(xs, ys)
    np.testing.assert_array_equal(grads_of(model), first)  # set, not accumulated

    for p in model.parameters():
        p.data *= 0.5
    loss, _ = compiled.loss_and_grads(xs, ys)
    expected_loss, _ = interpreted_loss_and_grads(model, "sse", 0.0, xs, ys)
    assert_close(loss, expected_loss, 1e-12)
    assert not np.allclose(grads_of(model), first)


def test_each_layer_of_neurons_becomes_one_matrix_product():
    """The step count stays flat as layers widen: 64-wide layers are still one step each."""
    for width in (16, 64):
        compiled = compile_loss(MLP(2, [width, width, 1], seed=0), "sse", 0.0, 2)
        kinds = [step.op for step in compiled.program.steps]
        assert kinds.count("affine") == 3
        assert len(kinds) <= 9, kinds  # 3 products, 3 tanh, the loss's few ops


def test_mini_batches_of_different_sizes_share_one_compilation():
    model = MLP(3, [4, 2], "relu", seed=2)
    compiled = compile_loss(model, "mse", 0.01, 3)
    rng = random.Random(0)
    for n in (5, 2, 5, 1):
        xs = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(n)]
        ys = random_targets("mse", 2, n, rng)
        loss, _ = compiled.loss_and_grads(xs, ys)
        grads = grads_of(model)
        expected_loss, _ = interpreted_loss_and_grads(model, "mse", 0.01, xs, ys)
        assert_close(loss, expected_loss, 1e-12)
        assert_close(grads, grads_of(model), 1e-10)


class Quadratic:
    """Not a neuron: parameters used in products with each other and in ops of
    their own, so every node runs through the generic, op-by-op part of the tape."""

    def __init__(self):
        self.a, self.b, self.c = Value(0.7), Value(-0.3), Value(1.2)

    def parameters(self):
        return [self.a, self.b, self.c]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def __call__(self, x):
        shared = (self.a * x[0] + self.b).tanh()
        return shared * self.a + (x[1] ** 2) * self.c * self.c + (x[0] / self.c).exp().maximum(shared)


def test_graphs_that_are_not_neurons_run_op_by_op():
    model = Quadratic()
    xs, ys = [[0.5, -1.0], [1.5, 0.25], [-0.3, 2.0]], [1.0, -1.0, 0.5]
    compiled = compile_loss(model, "sse", 0.1, 2)
    assert all(step.op != "affine" for step in compiled.program.steps)
    loss, outputs = compiled.loss_and_grads(xs, ys)
    grads = grads_of(model)
    expected_loss, expected_outputs = interpreted_loss_and_grads(model, "sse", 0.1, xs, ys)
    assert_close(loss, expected_loss, 1e-12)
    assert_close(grads, grads_of(model), 1e-10)
    assert_close(outputs, expected_outputs, 1e-12)


OPS = {  # every op of the engine, fed inputs on which it cannot overflow or leave its domain
    "+": lambda a, b: a + b,
    "*": lambda a, b: a * b,
    "-": lambda a, b: a - b,
    "/": lambda a, b: a / (b * b + 1),
    "max": lambda a, b: a.maximum(b),
    "tanh": lambda a, b: a.tanh(),
    "sigmoid": lambda a, b: a.sigmoid(),
    "relu": lambda a, b: a.relu(),
    "exp": lambda a, b: a.tanh().exp(),
    "log": lambda a, b: (a * a + 1).log(),
    "**2": lambda a, b: a ** 2,
    "**0.5": lambda a, b: (a * a + 1) ** 0.5,
    "scale": lambda a, b: 0.5 * a + b,
}


class RandomGraph(Quadratic):
    """A model that is any DAG of ops over its inputs and parameters, shared nodes included."""

    def __init__(self, n_params, recipe, seed):
        rng = random.Random(seed)
        self.params = [Value(rng.uniform(-1, 1)) for _ in range(n_params)]
        self.recipe = recipe

    def parameters(self):
        return self.params

    def __call__(self, x):
        pool = [as_value(v) for v in x] + self.params
        for op, i, j in self.recipe:
            pool.append(OPS[op](pool[i % len(pool)], pool[j % len(pool)]))
        return pool[-1]


class SameRepr(RandomGraph):
    def __repr__(self):  # as two models' default reprs are when the second takes the first's address
        return "a model"


def test_models_other_than_an_mlp_are_never_served_a_tape_planned_for_another_model():
    xs, ys = [[0.5, -1.5], [2.0, 0.25]], [1.0, -1.0]
    first = SameRepr(2, [("*", 0, 2), ("+", 3, 1)], seed=1)
    compile_loss(first, "sse", 0.0, 2).loss_and_grads(xs, ys)
    second = SameRepr(2, [("+", 1, 3), ("*", 4, 0), ("tanh", 5, 5)], seed=1)

    loss, _ = compile_loss(second, "sse", 0.0, 2).loss_and_grads(xs, ys)

    assert_close(loss, interpreted_loss_and_grads(second, "sse", 0.0, xs, ys)[0], 1e-12)


@settings(max_examples=100, deadline=None)
@given(n_inputs=st.integers(1, 3), n_params=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       recipe=st.lists(st.tuples(st.sampled_from(list(OPS)), st.integers(0, 99), st.integers(0, 99)),
                       min_size=1, max_size=12),
       loss_name=st.sampled_from(["sse", "mse", "hinge", "bce"]), n_samples=st.integers(1, 6))
def test_any_graph_of_ops_equals_the_interpreted_engine(n_inputs, n_params, seed, recipe, loss_name, n_samples):
    model = RandomGraph(n_params, recipe, seed)
    rng = random.Random(seed)
    xs = [[rng.uniform(-2, 2) for _ in range(n_inputs)] for _ in range(n_samples)]
    ys = random_targets(loss_name, 1, n_samples, rng)
    compiled = compile_loss(model, loss_name, 0.01, n_inputs)

    loss, outputs = compiled.loss_and_grads(xs, ys)
    grads = grads_of(model)
    expected_loss, expected_outputs = interpreted_loss_and_grads(model, loss_name, 0.01, xs, ys)
    assert_close(loss, expected_loss, 1e-12)
    assert_close(grads, grads_of(model), 1e-10)
    assert_close(outputs, expected_outputs, 1e-12)


class WithUnknownOp(Quadratic):
    def __call__(self, x):
        out = self.a * x[0]
        return Value(abs(out.data), (out,), "abs", "", (1.0,))


@pytest.mark.parametrize("model, loss_name, reason", [
    (WithUnknownOp(), "sse", "op 'abs' is not supported"),
    (MLP(2, [3, 1], seed=0), "cross_entropy", "unknown loss 'cross_entropy'"),
    (MLP(2, [3, 1], seed=0), "softmax_ce", "tracing softmax_ce on the model failed"),  # one logit: not indexable
    (MLP(3, [3, 1], seed=0), "sse", "neuron expects 3 inputs, got 2"),
])
def test_what_cannot_be_compiled_says_why(model, loss_name, reason):
    with pytest.raises(CannotCompile, match=reason):
        compile_loss(model, loss_name, 0.0, 2)


def test_a_batch_the_interpreted_engine_rejects_raises_the_same_error():
    """Huge outputs overflow x**2 in the interpreted engine: the compiled one must not
    return inf (or a finite number) instead, but the very same error."""
    model = MLP(1, [1], "linear", seed=0)
    xs, ys = [[1.0], [1e200]], [0.0, 0.0]
    compiled = compile_loss(model, "sse", 0.0, 1)
    with pytest.raises(OverflowError) as interpreted_error:
        interpreted_loss_and_grads(model, "sse", 0.0, xs, ys)
    with pytest.raises(OverflowError) as compiled_error:
        compiled.loss_and_grads(xs, ys)
    assert str(compiled_error.value) == str(interpreted_error.value)


class SquashedInput(Quadratic):
    def __call__(self, x):
        return self.a * (as_value(x[0]).exp() + 1) ** -1


def test_an_overflow_that_is_masked_later_still_raises():
    """exp(2000) overflows: the interpreted engine raises there, although 1/(inf + 1)
    would turn the inf back into a finite loss with finite gradients."""
    model = SquashedInput()
    compiled = compile_loss(model, "sse", 0.0, 1)
    xs, ys = [[1.0], [2000.0]], [0.0, 0.0]
    with pytest.raises(OverflowError, match="exp"):
        interpreted_loss_and_grads(model, "sse", 0.0, xs, ys)
    with pytest.raises(OverflowError, match="exp"):
        compiled.loss_and_grads(xs, ys)


@pytest.mark.parametrize("loss_name, xs, ys, message", [
    ("sse", [[1.0, 2.0, 3.0]], [1.0], "samples of 2 numbers"),
    ("sse", [[1.0, 2.0]], [1.0, 2.0], "1 samples in xs but 2 targets"),
    ("sse", [[1.0, 2.0]], [[1.0, 2.0]], "each target must be a number"),
    ("softmax_ce", [[1.0, 2.0]], [3], r"class indices must be whole numbers in \[0, 3\)"),
    ("softmax_ce", [[1.0, 2.0]], [0.5], "class indices must be whole numbers"),
])
def test_malformed_batches_are_clear_errors(loss_name, xs, ys, message):
    n_outputs = 3 if loss_name == "softmax_ce" else 1
    compiled = compile_loss(MLP(2, [n_outputs], seed=0), loss_name, 0.0, 2)
    with pytest.raises(ValueError, match=message):
        compiled.loss_and_grads(xs, ys)



class ReluOfInfMinusInf(Quadratic):
    def __call__(self, x):
        return (self.a * x[0] + self.a * x[1]).relu() + self.b


def test_a_nan_through_relu_stays_nan_as_in_the_interpreted_engine():
    """a*x0 + a*x1 is inf - inf = NaN here. Value.relu passes a NaN on (so training
    reports divergence); the compiled relu must not turn it into a finite 0."""
    model = ReluOfInfMinusInf()
    model.a.data = 1e100  # (its square, in the L2 sum even for l2=0, stays finite)
    xs, ys = [[1e300, -1e300]], [0.0]
    expected_loss, _ = interpreted_loss_and_grads(model, "sse", 0.0, xs, ys)
    loss, _ = compile_loss(model, "sse", 0.0, 2).loss_and_grads(xs, ys)
    assert np.isnan(expected_loss) and np.isnan(loss)


def test_tracing_walks_the_graph_once_however_many_outputs(monkeypatch):
    """The outputs lie inside the loss's graph: walking it again from each of them cost
    O(outputs x nodes) (a 256-wide softmax model took ~25 s to trace)."""
    import core.compile_trace
    walked = []

    def spy(root):
        order = topological_order(root)
        walked.append(len(order))
        return order
    monkeypatch.setattr(core.compile_trace, "topological_order", spy)
    trace = core.compile_trace.trace_sample(MLP(2, [8, 8], seed=0), "softmax_ce", 2)
    assert sum(walked) <= len(trace.nodes) + 1


def test_without_l2_huge_parameters_do_not_send_the_batch_to_the_interpreted_engine(caplog):
    """l2 = 0 adds no penalty at all: 0 * (p @ p) must not become NaN when p @ p overflows."""
    model = MLP(1, [1], seed=0)
    model.layers[0].neurons[0].w[0].data = 1e160  # tanh saturates: a finite loss and gradients
    with caplog.at_level("INFO", logger="core.compile"):
        loss, _ = compile_loss(model, "sse", 0.0, 1).loss_and_grads([[1.0]], [0.0])
    assert loss == interpreted_loss_and_grads(model, "sse", 0.0, [[1.0]], [0.0])[0]
    assert "interpreted engine" not in caplog.text


def test_a_tape_is_planned_once_per_architecture_and_serves_every_model_of_that_shape():
    xs, ys = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], [1.0, -1.0]
    first = compile_loss(MLP(3, [5, 4, 1], seed=1), "sse", 0.1, 3)
    model = MLP(3, [5, 4, 1], seed=2)  # other weights, same shape
    second = compile_loss(model, "sse", 0.1, 3)
    assert second.program is first.program and second.parameters == model.parameters()
    loss, outputs = second.loss_and_grads(xs, ys)
    compiled_grads = grads_of(model)
    expected_loss, expected_outputs = interpreted_loss_and_grads(model, "sse", 0.1, xs, ys)
    assert_close([loss, *outputs, *compiled_grads], [expected_loss, *expected_outputs, *grads_of(model)], 1e-12)
    assert compile_loss(MLP(3, [5, 4, 1], ["relu", "relu", "linear"], seed=2), "sse", 0.1, 3).program \
        is not first.program  # another activation is another architecture
    assert compile_loss(MLP(3, [5, 4, 1], seed=2), "mse", 0.1, 3).program is not first.program


def on_arrays(model, compiled, xs, ys):
    """array_loss_and_grads() at parameters the Values do not hold (their halves): (loss, outputs,
    gradients); the Values must be left as they were."""
    params = ParamArray(model.parameters())
    params.data *= 0.5
    before = [(p.data, p.grad) for p in model.parameters()]
    loss, outputs = compiled.array_loss_and_grads(xs, ys, params)
    assert [(p.data, p.grad) for p in model.parameters()] == before
    return loss, outputs, params.grad.tolist()


def halved(model):
    copy = MLP.from_json(model.to_json())
    for p in copy.parameters():
        p.data *= 0.5
    return copy


def test_on_arrays_the_tape_reads_and_writes_the_arrays_only():
    model, xs, ys = MLP(2, [3, 2], seed=0), [[0.5, -1.0], [2.0, 0.25]], [[1.0, -1.0], [0.0, 0.5]]
    loss, outputs, grads = on_arrays(model, compile_loss(model, "mse", 0.1, 2), xs, ys)
    expected = halved(model)
    assert (loss, outputs) == compile_loss(expected, "mse", 0.1, 2).loss_and_grads(xs, ys)
    assert grads == grads_of(expected).tolist()


def test_a_batch_the_tape_cannot_replay_runs_interpreted_at_the_arrays_parameters(monkeypatch):
    def unreplayable(*args):
        raise Unreplayable("as if an overflow")
    monkeypatch.setattr(CompiledLoss, "_replay", unreplayable)
    model, xs, ys = MLP(2, [3, 1], seed=0), [[0.5, -1.0], [2.0, 0.25]], [1.0, -1.0]
    compiled, expected = compile_loss(model, "sse", 0.1, 2), halved(model)
    params = ParamArray(model.parameters())
    params.data *= 0.5
    loss, outputs = compiled.array_loss_and_grads(xs, ys, params)
    assert (loss, outputs) == interpreted_loss_and_grads(expected, "sse", 0.1, xs, ys)
    assert params.grad.tolist() == grads_of(expected).tolist()
