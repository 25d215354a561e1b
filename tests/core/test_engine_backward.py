"""backward(): no recursion, repeatable, deterministic."""
import subprocess
import sys
import textwrap
from pathlib import Path

from core import MLP, Value
from core.engine import topological_order

ROOT = Path(__file__).resolve().parents[2]


def test_a_chain_of_200k_nodes_backpropagates_with_the_default_recursion_limit():
    assert sys.getrecursionlimit() <= 10_000
    x, zero = Value(0.5), Value(0.0)
    out = x
    for _ in range(200_000):
        out = out + zero
    out.backward()
    assert len(topological_order(out)) == 200_002
    assert (x.grad, zero.grad) == (1.0, 200_000.0)
    del out  # freeing the chain must not overflow the C stack either


def test_backward_twice_after_zeroing_gives_the_same_gradients_everywhere():
    model = MLP(3, [4, 4, 1], seed=1)
    loss = sum((model(x) - y) ** 2 for x, y in [([1.0, 2.0, 3.0], 1.0), ([0.5, -1.0, 2.0], -1.0)])
    nodes = topological_order(loss)
    interior_and_parameters = [n for n in nodes if n._prev] + model.parameters()
    loss.backward()
    first = [n.grad for n in nodes]
    first_wanted = [n.grad for n in interior_and_parameters]

    model.zero_grad()  # what a training step zeroes: parameters; interior nodes reset themselves
    loss.backward()
    assert [n.grad for n in interior_and_parameters] == first_wanted

    for leaf in nodes:  # constants are leaves too: with every leaf zeroed, every node repeats
        if not leaf._prev:
            leaf.grad = 0.0
    loss.backward()
    assert [n.grad for n in nodes] == first


def test_shared_subexpressions_accumulate():
    a = Value(3.0)
    b = a * a        # a used twice by one node
    c = b + a        # and again by another
    c.backward()
    assert a.grad == 2 * 3.0 + 1


def test_leaves_accumulate_across_backward_calls_like_the_seed():
    a = Value(2.0)
    out = a * 3.0
    out.backward()
    out.backward()
    assert a.grad == 6.0


GRADIENTS_SCRIPT = textwrap.dedent("""
    from core import MLP
    model = MLP(2, [8, 8, 1], seed=7)
    xs = [[i / 10, (i * 7 % 10) / 10 - 0.5] for i in range(20)]
    loss = sum(((model(x) - (1 if i % 2 else -1)) ** 2 for i, x in enumerate(xs)))
    model.zero_grad()
    loss.backward()
    print([p.grad.hex() for p in model.parameters()])
""")


def test_gradients_are_bitwise_identical_in_fresh_processes():
    """Different hash seeds change every set's iteration order: none may matter."""
    outputs = []
    for hash_seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", GRADIENTS_SCRIPT], cwd=ROOT, capture_output=True,
                              text=True, check=True, env={"PYTHONHASHSEED": hash_seed, "PATH": ""})
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and outputs[0].count("0x") == 8 * 3 + 8 * 9 + 9
