"""Training with the compiled engine follows the interpreted engine's loss curve
and ends at its parameters, for every optimizer, schedule, loss and batch mode."""
import random

import numpy as np
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from core.nn import ACTIVATIONS, MLP
from core.optim import SGD, Adam, make_schedule
from core.spec import JobSpec
from core.train import TrainingDiverged, run_spec, train
from tests.core.test_compile import LOSS_NAMES, assert_close, output_width, random_targets

STEPS = 50


@st.composite
def training_runs(draw):
    loss_name = draw(st.sampled_from(LOSS_NAMES))
    n_inputs = draw(st.integers(1, 3))
    hidden = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
    layers = hidden + [output_width(loss_name, draw)]
    activations = draw(st.lists(st.sampled_from(list(ACTIVATIONS)), min_size=len(layers), max_size=len(layers)))
    n_samples = draw(st.integers(2, 10))
    return dict(
        loss_name=loss_name, n_inputs=n_inputs, layers=layers, activations=activations, n_samples=n_samples,
        seed=draw(st.integers(0, 2**32 - 1)),
        optimizer=draw(st.sampled_from(["sgd", "momentum", "adam"])),
        schedule=draw(st.sampled_from(["constant", "linear", "cosine"])),
        batch_size=draw(st.one_of(st.none(), st.integers(1, n_samples))),
        l2=draw(st.sampled_from([0.0, 1e-3])),
    )


def make_optimizer(kind, schedule_name, model):
    lr = 0.01 if kind == "adam" else 0.05
    schedule = make_schedule(schedule_name, lr, lr / 10, STEPS)
    if kind == "adam":
        return Adam(model.parameters(), lr, schedule=schedule)
    return SGD(model.parameters(), lr, momentum=0.9 if kind == "momentum" else 0.0, schedule=schedule)


def run(engine, r, nudge=0.0):
    rng = random.Random(r["seed"])
    xs = [[rng.uniform(-2, 2) * (1 + nudge) for _ in range(r["n_inputs"])] for _ in range(r["n_samples"])]
    ys = random_targets(r["loss_name"], r["layers"][-1], r["n_samples"], rng)
    model = MLP(r["n_inputs"], r["layers"], r["activations"], seed=r["seed"])
    return train(model, xs, ys, r["loss_name"], make_optimizer(r["optimizer"], r["schedule"], model), STEPS,
                 r["batch_size"], r["l2"], r["seed"], engine=engine)


def flat_params(params_json):
    return [v for layer in params_json["layers"] for n in layer["neurons"] for v in n["w"] + [n["b"]]]


@settings(max_examples=40, deadline=None)
@given(training_runs())
@example(dict(loss_name="sse", n_inputs=1, layers=[3, 1, 2], activations=["linear", "linear", "tanh"], n_samples=2,
              seed=65178, optimizer="momentum", schedule="constant", batch_size=None, l2=0.0))  # see steady_steps
def test_compiled_training_follows_the_interpreted_loss_curve(r):
    """Step for step, including the step where a run diverges (if it does), for as long as the run is
    well-conditioned: see steady_steps."""
    note(f"run: {r}")
    compiled, interpreted = outcome("compiled", r), outcome("interpreted", r)
    steady = steady_steps(r, interpreted)
    note(f"well-conditioned for the first {steady} of {len(interpreted['losses'])} steps")
    if steady == len(interpreted["losses"]):
        assert compiled["diverged_at"] == interpreted["diverged_at"]
        assert_close(compiled["params"], interpreted["params"], 1e-9)
    assert len(compiled["losses"]) >= steady
    assert_close(compiled["losses"][:steady], interpreted["losses"][:steady], 1e-9)  # relative to the curve's scale
    assert compiled["accuracies"][:steady] == interpreted["accuracies"][:steady]


# The data nudged by 1e-12 (relative), ~10^4 times what the engines' different summation orders change per
# operation, may move the curve by up to 1e-9 (relative to its scale) in the steps compared: so a rounding
# difference cannot come near the 1e-9 allowed there, and a real difference between the engines is seen.
NUDGE, STEADY = 1e-12, 1e-9


def steady_steps(r, interpreted):
    """How many of the interpreted curve's first steps stay put when the data is nudged. Some runs amplify
    rounding: e.g. two points, linear-linear-tanh layers and momentum bounce (loss 1.2 -> 6.8 -> 9.4 -> 0.05),
    and the engines' last-bit differences grow from 1e-16 to 1e-6 in 50 steps, as a nudge of the data does in
    the interpreted engine alone. Past the first step that moves, the two curves may rightly part."""
    nudged = outcome("interpreted", r, nudge=NUDGE)
    losses, moved = np.asarray(interpreted["losses"], dtype=float), np.asarray(nudged["losses"], dtype=float)
    steps = min(len(losses), len(moved))
    scale = float(np.max(np.abs(losses))) if losses.size else 0.0
    apart = np.flatnonzero(~(np.abs(moved[:steps] - losses[:steps]) <= STEADY * scale))
    if apart.size:
        return int(apart[0])
    return steps if len(moved) == len(losses) and nudged["diverged_at"] == interpreted["diverged_at"] else steps - 1


def outcome(engine, r, nudge=0.0):
    try:
        result = run(engine, r, nudge)
    except TrainingDiverged as diverged:
        history, diverged_at, params = diverged.history, diverged.step, []
    else:
        assert result.engine == engine
        history, diverged_at, params = result.history, None, flat_params(result.params)
    return dict(diverged_at=diverged_at, params=params, losses=[s.loss for s in history],
                accuracies=[s.accuracy for s in history])


def test_the_default_job_trains_compiled_to_the_interpreted_result():
    spec = {"steps": 50, "record": {"graph_svg": False}}
    compiled = run_spec(JobSpec(**spec))
    interpreted = run_spec(JobSpec(**spec, engine="interpreted"))
    assert compiled.engine == "compiled"
    assert_close([s.loss for s in compiled.history], [s.loss for s in interpreted.history], 1e-9)
    assert_close(flat_params(compiled.params), flat_params(interpreted.params), 1e-9)
