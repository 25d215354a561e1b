"""Random expression graphs (hypothesis): gradients match PyTorch in float64."""
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from core import Value
from tests.core.torch_twin import torch

SAFE_FLOATS = st.floats(min_value=-3, max_value=3, allow_nan=False).filter(lambda x: abs(x) > 1e-3)

# (arity, function) pairs that work the same on Values and on torch tensors and stay finite for |x| <= ~30
OPS = [
    (2, lambda a, b: a + b),
    (2, lambda a, b: a - b),
    (2, lambda a, b: a * b),
    (2, lambda a, b: a / (b * b + 1)),
    (1, lambda a: a.tanh()),
    (1, lambda a: a.sigmoid()),
    (1, lambda a: (a * 0.1).exp()),
    (1, lambda a: (a * a + 1).log()),
    (1, lambda a: a.relu() + a * 0.5),
    (1, lambda a: -a),
    (1, lambda a: a ** 2 * 0.1),
    (1, lambda a: 2 - a),
]


def torch_op(i):
    arity, f = OPS[i]
    substitutes = {4: torch.tanh, 5: torch.sigmoid, 8: lambda a: torch.relu(a) + a * 0.5}
    if i == 6:
        return arity, lambda a: torch.exp(a * 0.1)
    if i == 7:
        return arity, lambda a: torch.log(a * a + 1)
    return arity, substitutes.get(i, f)


@st.composite
def programs(draw):
    """Leaves, then a list of (op index, operand indices) each reading earlier results."""
    leaves = draw(st.lists(SAFE_FLOATS, min_size=1, max_size=4))
    steps = []
    for k in range(draw(st.integers(1, 25))):
        op = draw(st.integers(0, len(OPS) - 1))
        available = len(leaves) + k
        operands = [draw(st.integers(0, available - 1)) for _ in range(OPS[op][0])]
        steps.append((op, operands))
    return leaves, steps


def run(program, leaf, op_for):
    leaves, steps = program
    values = [leaf(x) for x in leaves]
    for op, operands in steps:
        values.append(op_for(op)[1](*(values[i] for i in operands)))
    out = values[len(leaves)]
    for v in values[len(leaves) + 1:]:  # every result takes part, so all paths are exercised
        out = out + v * 0.5
    return values[:len(leaves)], out


@settings(max_examples=150, deadline=None, derandomize=True)  # the same graphs in every CI run
@given(programs())
def test_random_graphs_match_torch(program):
    our_leaves, ours = run(program, Value, lambda i: OPS[i])
    torch_leaves, theirs = run(program, lambda x: torch.tensor(x, dtype=torch.float64, requires_grad=True),
                               torch_op)
    if not math.isfinite(theirs.item()) or abs(theirs.item()) > 1e12:
        return  # a rare blow-up; the op tests cover overflow behaviour
    ours.backward()
    theirs.backward()
    assert math.isclose(ours.data, theirs.item(), rel_tol=1e-10, abs_tol=1e-10)
    for v, t in zip(our_leaves, torch_leaves):
        expected = t.grad.item() if t.grad is not None else 0.0
        assert math.isclose(v.grad, expected, rel_tol=1e-10, abs_tol=1e-10), (v.grad, expected)
