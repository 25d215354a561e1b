"""The training loop: convergence, zeroed gradients, callbacks, divergence, engines, run_spec."""
import logging
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import core.compile
import core.train
from core import MLP
from core.data import generate, seed_example
from core.optim import SGD, Adam, linear_decay
from core.param_array import ParamArray
from core.spec import JobSpec
from core.train import (StepRecord, TrainingDiverged, encode_targets, interpreted_loss_and_grads, predict,
                        run_spec, train)
from tests.reference import seed_engine

ROOT = Path(__file__).resolve().parents[2]
MOONS_SPEC = {
    "model": {"layers": [16, 16, 1], "activations": ["relu", "relu", "linear"]},
    "data": {"kind": "moons", "n_samples": 100, "noise": 0.1},
    "loss": "hinge", "l2": 1e-4, "steps": 100,
    "optimizer": {"name": "sgd", "lr": 1.0, "schedule": "linear", "final_lr": 0.1},
}


def test_the_seed_example_trains_below_0_01():
    xs, ys = seed_example()
    model = MLP(3, [4, 4, 1], seed=0)
    result = train(model, xs, ys, "sse", SGD(model.parameters(), lr=0.1), steps=100, engine="interpreted")
    assert result.metrics["final_loss"] < 0.01
    assert result.metrics["accuracy"] == 1.0


def test_gradients_are_zeroed_every_step_exactly_like_the_seeds_fixed_loop():
    xs, ys = seed_example()
    ours = MLP(3, [4, 4, 1], seed=3)
    theirs = seed_engine.MLP(3, [4, 4, 1])
    seed_engine.copy_weights(ours.parameters(), theirs.parameters())
    history = train(ours, xs, ys, "sse", SGD(ours.parameters(), lr=0.1), steps=30, engine="interpreted").history
    expected = [seed_engine.seed_training_step(theirs, xs, ys, lr=0.1) for _ in range(30)]
    assert [r.loss for r in history] == pytest.approx(expected, abs=1e-12)


def test_the_moons_demo_reaches_97_percent():
    """On the default engine, the one examples/moons.json gets. The interpreted engine took 13-24 s of CPU for
    these 100 steps (it reached the same accuracy at every step when this moved, checked once by hand); what
    the suite checks of the two engines' agreement is this spec's first 15 steps
    (test_the_compiled_engine_gives_the_same_history_format_and_numbers) and random training runs step for step
    (tests/core/test_compile_training.py), not these 100 steps interpreted."""
    result = run_spec(JobSpec.model_validate({**MOONS_SPEC, "record": {"graph_svg": False}}))
    assert result.engine == "compiled"
    assert result.history[-1].accuracy >= 0.97
    assert result.metrics["accuracy"] >= 0.97
    assert [r.lr for r in result.history[:2]] == pytest.approx([1.0, 0.991])


def test_the_callback_sees_every_step_and_the_history_keeps_every_nth():
    seen = []
    xs, ys = seed_example()
    model = MLP(3, [4, 1], seed=0)
    result = train(model, xs, ys, steps=10, loss_every=4, engine="interpreted", callback=seen.append)
    assert [r.step for r in seen] == list(range(10))
    assert [r.step for r in seen if r.recorded] == [0, 4, 8, 9]
    assert result.history == [r for r in seen if r.recorded]
    assert all(isinstance(r, StepRecord) and r.lr == 0.1 and r.accuracy is not None for r in seen)
    assert result.metrics["steps_done"] == 10 and not result.stopped_early


def test_returning_false_from_the_callback_stops_early():
    xs, ys = seed_example()
    result = train(MLP(3, [4, 1], seed=0), xs, ys, steps=50, engine="interpreted",
                   callback=lambda record: record.step < 6)
    assert result.stopped_early and result.metrics["steps_done"] == 7


def test_an_exception_in_the_callback_propagates():
    def boom(record):
        raise RuntimeError("cancelled")
    with pytest.raises(RuntimeError, match="cancelled"):
        run_spec(JobSpec(engine="interpreted"), callback=boom)


def test_divergence_is_a_clear_error_that_keeps_the_history():
    xs, ys = seed_example()
    model = MLP(3, [8, 1], ["relu", "linear"], seed=0)
    with pytest.raises(TrainingDiverged) as caught:
        train(model, xs, ys, "sse", SGD(model.parameters(), lr=50.0), steps=100, engine="interpreted")
    error = caught.value
    assert str(error).startswith(f"diverged at step {error.step}")
    assert error.step > 0 and [r.step for r in error.history] == list(range(error.step))
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.step, copy.history) == (str(error), error.step, error.history)


def test_mini_batches_are_seeded():
    xs, ys = generate("blobs", 40, 0.3, seed=1)
    ys = [1.0 if y else -1.0 for y in ys]

    def losses(seed):
        model = MLP(2, [4, 1], seed=0)
        return [r.loss for r in train(model, xs, ys, "hinge", steps=8, batch_size=5, seed=seed,
                                      engine="interpreted").history]
    assert losses(1) == losses(1)
    assert losses(1) != losses(2)


@pytest.mark.parametrize("loss, ys, outputs, expected", [
    ("hinge", [0, 1, 1], 1, [-1.0, 1.0, 1.0]),
    ("sse", [0, 1], 1, [-1.0, 1.0]),
    ("bce", [1, 0], 1, [1.0, 0.0]),
    ("softmax_ce", [2, 0], 3, [2, 0]),
    ("mse", [2, 0], 3, [[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0]]),
])
def test_class_labels_become_each_losss_targets(loss, ys, outputs, expected):
    assert encode_targets(loss, ys, outputs, labels_are_classes=True) == expected


def test_inline_targets():
    assert encode_targets("sse", [0.3, -2.0], 1, labels_are_classes=False) == [0.3, -2.0]
    assert encode_targets("bce", [-1.0, 1.0], 1, labels_are_classes=False) == [0.0, 1.0]
    assert encode_targets("hinge", [0.0, 1.0], 1, labels_are_classes=False) == [-1.0, 1.0]
    with pytest.raises(ValueError, match="binary labels"):
        encode_targets("hinge", [0.5, 1.0], 1, labels_are_classes=False)
    with pytest.raises(ValueError, match="2 values but the last layer has 1"):
        encode_targets("sse", [[1.0, 2.0]], 1, labels_are_classes=False)
    with pytest.raises(ValueError, match="class 3"):
        encode_targets("softmax_ce", [3], 3, labels_are_classes=False)


def test_run_spec_metrics_with_a_validation_split():
    spec = JobSpec.model_validate({
        "model": {"layers": [8, 3]}, "data": {"kind": "blobs", "classes": 3, "n_samples": 30,
                                             "validation_fraction": 0.2},
        "loss": "softmax_ce", "steps": 20, "engine": "interpreted", "record": {"graph_svg": False}})
    metrics = run_spec(spec).metrics
    assert set(metrics) == {"final_loss", "accuracy", "val_loss", "val_accuracy", "steps_done"}
    assert 0 <= metrics["val_accuracy"] <= 1 and metrics["val_loss"] > 0


def test_after_training_the_parameters_hold_the_training_samples_gradients():
    """What the per-neuron graph view shows: the gradients at the final parameters
    over the training samples, not over the validation samples evaluated with them."""
    xs, ys = generate("moons", n_samples=20, noise=0.1, seed=0)
    ys = [1.0 if y else -1.0 for y in ys]
    model = MLP(2, [4, 1], seed=0)
    train(model, xs[:15], ys[:15], "hinge", steps=3, engine="interpreted", validation=(xs[15:], ys[15:]))
    held = [p.grad for p in model.parameters()]
    interpreted_loss_and_grads(model, "hinge", 0.0, xs[15:], ys[15:])
    validation_grads = [p.grad for p in model.parameters()]
    interpreted_loss_and_grads(model, "hinge", 0.0, xs[:15], ys[:15])
    # (computed by the compiled engine, which the final metrics use: equal to rounding)
    assert held == pytest.approx([p.grad for p in model.parameters()], rel=1e-12, abs=1e-15)
    assert held != pytest.approx(validation_grads, rel=1e-6)


def test_when_the_graph_cannot_be_drawn_a_job_still_trains_and_says_why(monkeypatch, caplog):
    from core import graph

    def broken(dot, renderer="auto"):
        raise graph.RenderFailed("Graphviz (WebAssembly) could not draw the graph: out of memory")
    monkeypatch.setattr(graph, "render_svg", broken)
    with caplog.at_level(logging.WARNING, logger="core.train"):
        result = run_spec(JobSpec(steps=2))
    assert result.graph_svg is None and len(result.history) == 2
    assert result.graph_error == "Graphviz (WebAssembly) could not draw the graph: out of memory"
    assert "out of memory" in caplog.text


def test_a_job_that_asked_for_no_graph_has_no_graph_and_no_error():
    result = run_spec(JobSpec(steps=2, record={"graph_svg": False}))
    assert result.graph_svg is None and result.graph_error is None


def test_a_graph_left_to_the_caller_is_the_graph_run_spec_draws(monkeypatch):
    from core import graph
    monkeypatch.setattr(graph, "render_svg", lambda dot: dot.source)  # the picture's source, not its layout
    spec = JobSpec(steps=5)
    drawn = run_spec(spec)
    later = run_spec(spec, draw_graph=False)
    assert later.graph_svg is None and "graph" not in later.timings
    assert later.draw_graph() == (drawn.graph_svg, None) and "loss graph" in drawn.graph_svg


@pytest.mark.parametrize("spec", [
    JobSpec(steps=5),  # the whole batch's loss graph
    JobSpec(model={"layers": [16, 16, 1]}, data={"kind": "moons", "n_samples": 60, "validation_fraction": 0.25},
            loss="hinge", batch_size=10, l2=1e-3, steps=7),  # per-neuron view: gradients of the last chunk
    JobSpec(model={"layers": [4, 1]}, data={"kind": "moons", "n_samples": 30}, loss="hinge",
            engine="interpreted", steps=3)])
def test_a_graph_drawn_again_from_the_final_parameters_is_the_same_picture(monkeypatch, spec):
    """A worker that died while drawing leaves the results saved and the graph not: the re-run draws it
    from the saved parameters, and must draw what the first run would have."""
    from core import graph
    from core.train import graph_from_params
    monkeypatch.setattr(graph, "render_svg", lambda dot: dot.source)
    result = run_spec(spec)
    assert result.graph_svg and result.graph_error is None
    assert graph_from_params(spec, result.params) == (result.graph_svg, None)


@pytest.mark.parametrize("loss", ["mse", "sse"])
def test_the_final_evaluation_is_never_bigger_than_a_training_step(monkeypatch, loss):
    """A job may train on mini-batches of far more samples than one graph could hold:
    without the compiled engine, the final metrics run in chunks of batch_size, and
    still measure the whole set."""
    def cannot_compile(*args):
        raise core.compile.CannotCompile("as for a graph the tape cannot replay")
    monkeypatch.setattr(core.compile, "compile_loss", cannot_compile)
    xs, ys = generate("moons", n_samples=40, noise=0.1, seed=0)
    ys = [1.0 if y else -1.0 for y in ys]
    sizes = interpreted_batch_sizes(monkeypatch)
    model = MLP(2, [4, 1], seed=0)
    metrics = train(model, xs[:10], ys[:10], loss, steps=3, batch_size=3, l2=0.01, engine="interpreted",
                    validation=(xs[10:], ys[10:])).metrics
    assert max(sizes) == 3
    val_loss, val_outputs = interpreted_loss_and_grads(model, loss, 0.01, xs[10:], ys[10:])
    assert metrics["val_loss"] == pytest.approx(val_loss, rel=1e-12)
    assert metrics["val_accuracy"] == sum((o > 0) == (y > 0) for o, y in zip(val_outputs, ys[10:])) / 30


def test_a_regression_has_no_accuracy():
    xs = [[x / 10] for x in range(10)]
    result = train(MLP(1, [4, 1], seed=0), xs, [x[0] ** 2 for x in xs], "mse", steps=3, engine="interpreted")
    assert result.history[0].accuracy is None and result.metrics["accuracy"] is None


def test_predict_uses_the_exported_parameters():
    model = MLP(3, [4, 2], seed=0)
    xs, _ = seed_example()
    assert predict(model.to_json(), xs) == [[o.data for o in model(x)] for x in xs]
    single = MLP(3, [4, 1], seed=0)
    assert predict(single.to_json(), xs) == [single(x).data for x in xs]


def test_the_compiled_engine_gives_the_same_history_format_and_numbers():
    spec = {**MOONS_SPEC, "steps": 15, "record": {"graph_svg": False}}
    compiled = run_spec(JobSpec.model_validate({**spec, "engine": "compiled"}))
    interpreted = run_spec(JobSpec.model_validate({**spec, "engine": "interpreted"}))
    assert (compiled.engine, interpreted.engine) == ("compiled", "interpreted")
    assert [(r.step, r.lr, r.accuracy, r.recorded) for r in compiled.history] == \
        [(r.step, r.lr, r.accuracy, r.recorded) for r in interpreted.history]
    assert [r.loss for r in compiled.history] == pytest.approx([r.loss for r in interpreted.history], rel=1e-9)


def test_falls_back_to_the_interpreted_engine_when_the_model_cannot_compile(monkeypatch, caplog):
    def refuse(*args):
        raise core.compile.CannotCompile("test says no")
    monkeypatch.setattr(core.compile, "compile_loss", refuse)
    with caplog.at_level(logging.WARNING, logger="core.train"):
        result = run_spec(JobSpec(steps=3, record={"graph_svg": False}))
    assert result.engine == "interpreted" and "test says no" in caplog.text
    assert len(result.history) == 3


@pytest.mark.parametrize("engine", ["compiled", "interpreted"])
def test_a_run_stopped_by_an_exception_leaves_the_model_at_its_last_step(engine):
    """The steps update arrays, not the Values: the Values are written when the steps end, also by an error."""
    xs, ys = seed_example()

    def train_adam(model, steps, callback=None):
        return train(model, xs, ys, "sse", Adam(model.parameters(), 0.05), steps, engine=engine, callback=callback)

    def stop_at_step_5(record):
        if record.step == 5:
            raise Stop
    model = MLP(3, [4, 1], seed=0)
    with pytest.raises(Stop):
        train_adam(model, 50, stop_at_step_5)
    assert model.to_json() == train_adam(MLP(3, [4, 1], seed=0), 6).params


def test_compiled_training_writes_the_values_once_when_its_steps_end(monkeypatch):
    """Not once per step: for 7,500 parameters that loop was most of a compiled step."""
    writes = []
    write_back = ParamArray.write_back
    monkeypatch.setattr(ParamArray, "write_back", lambda self: (writes.append(1), write_back(self)))
    xs, ys = seed_example()
    model = MLP(3, [4, 1], seed=0)
    initial = [p.data for p in model.parameters()]
    during = []
    train(model, xs, ys, "sse", SGD(model.parameters(), 0.1), 5,
          callback=lambda record: during.append([p.data for p in model.parameters()]))
    assert during == [initial] * 5 and len(writes) == 1
    assert [p.data for p in model.parameters()] != initial


def test_an_optimizer_over_other_parameters_is_refused():
    xs, ys = seed_example()
    model = MLP(3, [4, 1], seed=0)
    with pytest.raises(ValueError, match="optimizer must be over model.parameters()"):
        train(model, xs, ys, "sse", SGD(model.parameters()[1:], 0.1), 5)


RUN_SCRIPT = textwrap.dedent("""
    import json, sys
    from core.spec import JobSpec
    from core.train import run_spec
    result = run_spec(JobSpec.model_validate(json.loads(sys.argv[1])))
    print(json.dumps([[r.step, r.loss.hex(), r.lr.hex(), r.accuracy] for r in result.history]))
    print(json.dumps(result.params))
    print(len(result.graph_svg or ""))
""")


@pytest.mark.parametrize("engine", ["interpreted", "compiled"])
def test_same_spec_same_history_and_parameters_in_fresh_processes(engine):
    spec = JobSpec.model_validate({**MOONS_SPEC, "steps": 10, "batch_size": 30, "seed": 12,
                                   "engine": engine, "optimizer": {"name": "adam", "lr": 0.05},
                                   "data": {"kind": "moons", "n_samples": 60, "validation_fraction": 0.2}})
    runs = [subprocess.run([sys.executable, "-c", RUN_SCRIPT, spec.model_dump_json()], cwd=ROOT, check=True,
                           capture_output=True, text=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
            for seed in ("1", "2")]
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.count("0x") >= 20


@pytest.mark.parametrize("spec", [
    {"loss": "bce"},
    {"loss": "hinge"},
    {"loss": "softmax_ce", "model": {"layers": [4, 2]}},
    {"loss": "mse", "model": {"layers": [4, 2]}},
    {"data": {"kind": "inline", "xs": [[0.0], [1.0], [2.0]], "ys": [-1, 1, 1]}, "loss": "bce"},
    {"data": {"kind": "inline", "xs": [[0.0], [1.0]], "ys": [[0.5, 1.0], [0.0, 2.0]]}, "loss": "sse",
     "model": {"layers": [3, 2]}},
    {"data": {"kind": "spirals", "classes": 3, "n_samples": 30}, "loss": "softmax_ce", "model": {"layers": [8, 3]},
     "batch_size": 10, "optimizer": {"name": "adam", "lr": 0.01, "schedule": "cosine"}},
], ids=["seed-bce", "seed-hinge", "seed-ce", "seed-mse-onehot", "inline-bce", "inline-regression", "spirals"])
def test_run_spec_trains_every_loss_on_its_encoding(spec):
    result = run_spec(JobSpec.model_validate({**spec, "steps": 30, "engine": "interpreted",
                                              "record": {"graph_svg": False}}))
    assert result.history[-1].loss < result.history[0].loss
    regression = spec.get("data", {}).get("kind") == "inline" and spec["loss"] == "sse"
    assert (result.metrics["accuracy"] is None) == regression


def test_accuracy_rules():
    from core.train import accuracy_rule
    assert accuracy_rule("softmax_ce", [0, 2])([[1.0, 0.0, 0.5], [0.0, 0.1, 0.2]], [0, 1]) == 0.5
    assert accuracy_rule("bce", [0.0, 1.0])([-0.1, 0.3], [0.0, 0.0]) == 0.5
    assert accuracy_rule("sse", [[1.0, -1.0], [-1.0, 1.0]])([[0.2, 0.1], [0.0, 0.4]], [[1.0, -1.0]] * 2) == 0.5
    assert accuracy_rule("sse", [1.0, -1.0])([0.3, 0.2], [1.0, -1.0]) == 0.5
    assert accuracy_rule("sse", [0.5, -1.0]) is None


# -- check(): a time limit or a cancel stops every phase -------------------------------------

class Stop(Exception):
    pass


def test_check_runs_in_every_chunk_of_the_final_metrics_and_its_exception_stops_them():
    """The final pass covers every sample; a caller's check() must be able to stop it."""
    xs, ys = generate("moons", n_samples=3000, noise=0.1, seed=0)
    ys = [1.0 if y else -1.0 for y in ys]
    calls, steps_seen = [], []

    def check():
        calls.append(len(steps_seen))
        if steps_seen and len(calls) > 3:  # the final pass has begun
            raise Stop
    with pytest.raises(Stop):
        train(MLP(2, [4, 1], seed=0), xs, ys, "hinge", steps=2, batch_size=1, engine="interpreted",
              callback=steps_seen.append, check=check)
    assert calls[:2] == [0, 1] and len(steps_seen) == 2  # before each step, then in the final pass


def test_the_final_metrics_of_an_interpreted_job_run_on_the_compiled_engine(monkeypatch):
    """Not one interpreted graph per sample: a batch_size 1 job over 10,000 samples would spend
    minutes there after a one-step training."""
    xs, ys = generate("moons", n_samples=200, noise=0.1, seed=0)
    ys = [1.0 if y else -1.0 for y in ys]
    sizes = interpreted_batch_sizes(monkeypatch)
    model = MLP(2, [8, 1], seed=0)
    metrics = train(model, xs[:100], ys[:100], "hinge", steps=2, batch_size=1, engine="interpreted",
                    validation=(xs[100:], ys[100:])).metrics
    assert sizes == [1, 1]  # the two steps only
    val_loss, _ = interpreted_loss_and_grads(model, "hinge", 0.0, xs[100:], ys[100:])
    assert metrics["val_loss"] == pytest.approx(val_loss, rel=1e-12)


def test_a_planned_tape_is_taken_without_a_helper_thread(monkeypatch):
    """A shape seen before compiles at once (its tape is planned): no thread is started for it to be
    interruptible, which cost a worker's small job more than the compile (starting and joining it)."""
    xs, ys = seed_example()
    train(MLP(3, [4, 1], seed=0), xs, ys, "sse", steps=1, engine="compiled", check=lambda: None)  # plans it
    started, real_thread = [], threading.Thread

    def thread(*args, **kwargs):
        started.append(kwargs.get("name"))
        return real_thread(*args, **kwargs)
    monkeypatch.setattr(core.train.threading, "Thread", thread)
    result = train(MLP(3, [4, 1], seed=1), xs, ys, "sse", steps=1, engine="compiled", check=lambda: None)
    assert result.engine == "compiled" and "core-interruptible" not in started


def test_a_long_compile_stops_when_check_raises(monkeypatch):
    """A compile that traces (no tape planned for the shape yet: a planned one is taken at once, on this thread)."""
    release, finished = threading.Event(), threading.Event()
    monkeypatch.setattr(core.compile, "_programs", type(core.compile._programs)())

    def slow_compile(*args):
        release.wait(30)
        finished.set()
        raise core.compile.CannotCompile("released")
    monkeypatch.setattr(core.compile, "compile_loss", slow_compile)
    xs, ys = seed_example()
    checks = []

    def check():
        checks.append(1)
        if len(checks) >= 3:
            raise Stop
    try:
        with pytest.raises(Stop):
            train(MLP(3, [4, 1], seed=0), xs, ys, "sse", steps=5, engine="compiled", check=check)
        assert not finished.is_set()  # stopped while the compile was still running
    finally:
        release.set()


def test_drawing_the_graph_stops_when_check_raises(monkeypatch):
    release, finished = threading.Event(), threading.Event()

    def slow_drawing(*args):
        release.wait(30)
        finished.set()
        return "<svg/>", None
    monkeypatch.setattr("core.train._graph_svg", slow_drawing)
    drawing = []

    def check():
        if drawing:
            raise Stop
    monkeypatch.setattr("core.train.CHECK_SECONDS", 0.05)
    real_train = core.train.train

    def train_then_draw(*args, **kwargs):
        result = real_train(*args, **kwargs)
        drawing.append(1)
        return result
    monkeypatch.setattr("core.train.train", train_then_draw)
    try:
        with pytest.raises(Stop):
            run_spec(JobSpec(steps=2), check=check)
        assert not finished.is_set()
    finally:
        release.set()


def interpreted_batch_sizes(monkeypatch):
    """The sizes of the batches core.train runs on the interpreted engine, in order (a list it fills)."""
    sizes = []

    def spy(*args):
        sizes.append(len(args[3]))
        return interpreted_loss_and_grads(*args)
    monkeypatch.setattr("core.train.interpreted_loss_and_grads", spy)
    return sizes

