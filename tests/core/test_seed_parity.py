"""The seed lecture's code, run against our classes, and our numbers against
an engine written exactly the way the seed writes it."""
import random

import graphviz
import pytest

from core import MLP, Value
from core.graph import draw_dot
from tests.reference import seed_engine
from tests.reference.seed_engine import SEED_XS, SEED_YS


def twin_models(seed=0):
    ours = MLP(3, [4, 4, 1], seed=seed)
    theirs = seed_engine.MLP(3, [4, 4, 1])
    seed_engine.copy_weights(ours.parameters(), theirs.parameters())
    return ours, theirs


def seed_style_step(n, xs, ys, value_class):
    """The seed's training loop body, verbatim apart from the Value class."""
    ypred = [n(x) for x in xs]
    ys_value = [value_class(y) for y in ys]
    loss = sum([(yout - ygt) ** 2 for ygt, yout in zip(ys_value, ypred)], value_class(0.0))
    for p in n.parameters():
        p.grad = 0.0
    loss.backward()
    for p in n.parameters():
        p.data += -.10 * p.grad
    return loss


def test_the_seeds_usage_works_as_written():
    x = [2.0, 3.0, -1.0]
    n = MLP(3, [4, 4, 1])
    assert isinstance(n(x), Value)
    assert len(n.parameters()) == 41
    loss = seed_style_step(n, SEED_XS, SEED_YS, Value)
    assert all(p.grad != 0.0 for p in n.parameters())
    assert isinstance(draw_dot(loss), graphviz.Digraph)


def test_forward_values_and_gradients_match_the_seed_engine():
    ours, theirs = twin_models()
    for x in SEED_XS:
        assert ours(x).data == pytest.approx(theirs(x).data, abs=1e-12)
    our_loss = seed_style_step(ours, SEED_XS, SEED_YS, Value)
    their_loss = seed_style_step(theirs, SEED_XS, SEED_YS, seed_engine.Value)
    assert our_loss.data == pytest.approx(their_loss.data, abs=1e-12)
    # (the step has updated both models with these gradients; compare them too)
    for ours_p, theirs_p in zip(ours.parameters(), theirs.parameters()):
        assert ours_p.grad == pytest.approx(theirs_p.grad, abs=1e-12)
        assert ours_p.data == pytest.approx(theirs_p.data, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_loss_curve_matches_the_seed_engine(seed):
    ours, theirs = twin_models(seed)
    for _ in range(50):
        our_loss = seed_style_step(ours, SEED_XS, SEED_YS, Value).data
        their_loss = seed_style_step(theirs, SEED_XS, SEED_YS, seed_engine.Value).data
        assert our_loss == pytest.approx(their_loss, abs=1e-12)


def test_initialisation_never_touches_the_global_random_module():
    state = random.getstate()
    MLP(3, [4, 4, 1])
    MLP(3, [4, 4, 1], seed=5)
    assert random.getstate() == state
    assert MLP(3, [4, 4, 1], seed=5).to_json() == MLP(3, [4, 4, 1], seed=5).to_json()
