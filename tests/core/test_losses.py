"""Whole-MLP losses and gradients against PyTorch in float64, and numerical stability."""
import math
import random

import pytest

from core import MLP, Value
from core.losses import batch_loss, bce_with_logits, softmax_cross_entropy
from core.train import interpreted_loss_and_grads
from tests.core.torch_twin import torch_loss_and_grads

RNG = random.Random(3)
XS = [[RNG.uniform(-2, 2) for _ in range(3)] for _ in range(6)]

CASES = [  # loss, outputs, activations, targets
    ("sse", 1, "tanh", [RNG.choice([-1.0, 1.0]) for _ in XS]),
    ("mse", 1, ["relu", "sigmoid", "linear"], [RNG.uniform(-1, 1) for _ in XS]),
    ("sse", 2, "tanh", [[RNG.uniform(-1, 1), RNG.uniform(-1, 1)] for _ in XS]),
    ("hinge", 1, ["relu", "relu", "linear"], [RNG.choice([-1.0, 1.0]) for _ in XS]),
    ("bce", 1, ["tanh", "tanh", "linear"], [float(RNG.randint(0, 1)) for _ in XS]),
    ("softmax_ce", 3, ["tanh", "relu", "linear"], [RNG.randint(0, 2) for _ in XS]),
]


@pytest.mark.parametrize("l2", [0.0, 1e-3])
@pytest.mark.parametrize("loss, outputs, activations, ys", CASES, ids=[c[0] + str(c[1]) for c in CASES])
def test_mlp_loss_and_gradients_match_torch(loss, outputs, activations, ys, l2):
    model = MLP(3, [5, 4, outputs], activations, seed=11)
    value, _ = interpreted_loss_and_grads(model, loss, l2, XS, ys)
    t_value, t_grads = torch_loss_and_grads(model.to_json(), loss, l2, XS, ys)
    assert value == pytest.approx(t_value, rel=1e-10, abs=1e-12)
    assert [p.grad for p in model.parameters()] == pytest.approx(t_grads, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("loss, outputs, activations, ys", CASES[:1] + CASES[3:], ids=["sse", "hinge", "bce", "ce"])
def test_mlp_gradients_match_central_differences(loss, outputs, activations, ys):
    model = MLP(3, [4, outputs], activations[-2:] if isinstance(activations, list) else activations, seed=2)
    interpreted_loss_and_grads(model, loss, 0.0, XS, ys)
    for p in model.parameters()[::3]:
        analytic, original, h = p.grad, p.data, 1e-6
        p.data = original + h
        up = batch_loss(loss, [model(x) for x in XS], ys).data
        p.data = original - h
        down = batch_loss(loss, [model(x) for x in XS], ys).data
        p.data = original
        assert analytic == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-7)


def test_bce_is_stable_for_huge_logits():
    for logit, label, expected in [(1000.0, 1.0, 0.0), (1000.0, 0.0, 1000.0), (-1000.0, 0.0, 0.0),
                                   (-1000.0, 1.0, 1000.0)]:
        z = Value(logit)
        out = bce_with_logits(z, label)
        out.backward()
        assert out.data == pytest.approx(expected, abs=1e-12)
        sigmoid = 1.0 if logit > 0 else 0.0  # to double precision
        assert z.grad == pytest.approx(sigmoid - label, abs=1e-12)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = [Value(1000.0), Value(-1000.0), Value(999.0)]
    out = softmax_cross_entropy(logits, 2)
    out.backward()
    assert out.data == pytest.approx(math.log(1 + math.exp(1)), rel=1e-12)
    assert [z.grad for z in logits] == pytest.approx([1 / (1 + math.exp(-1)), 0.0, 1 / (1 + math.exp(1)) - 1],
                                                     rel=1e-12)


def test_the_seed_uses_the_sum_and_mse_is_the_mean():
    outputs, targets = [Value(1.0), Value(3.0)], [0.0, 0.0]
    assert batch_loss("sse", outputs, targets).data == 10.0
    assert batch_loss("mse", outputs, targets).data == 5.0
