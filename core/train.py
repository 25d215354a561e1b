"""The training loop: forward, zero the gradients, backward, update, report.

train() works on any model and data; run_spec() builds everything from a
JobSpec first. Both engines (interpreted Values, or core.compile's tape)
produce the same history format. While the steps run, the parameters and their
gradients live in one array each (core/param_array.py), which the compiled tape
and the optimizer read and write in a few NumPy calls; the model's Values are
written before the interpreted engine reads them and when the steps end."""
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import core.compile
from core.batches import Batches
from core.step import cycle_collector_paused, interpreted_loss_and_grads, output_data
from core.data import generate, train_validation_split
from core.losses import LOSSES
from core.nn import MLP
from core.optim import SGD, Adam, make_schedule
from core.param_array import ParamArray

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.2  # how often a long single call (compiling, drawing) lets the caller's check() run
EVAL_CHUNK = 1024    # samples per call of the compiled engine in the final metrics (arrays, not graphs)


@dataclass
class StepRecord:
    step: int                 # 0-based
    loss: float               # the batch loss (including L2) before this step's update
    lr: float
    accuracy: Optional[float]  # on the batch; None for regression
    recorded: bool            # kept in the history (every loss_every-th step and the last)


@dataclass
class TrainResult:
    history: list
    params: dict              # MLP.to_json() of the final parameters
    metrics: dict             # final_loss, accuracy, val_loss, val_accuracy, steps_done
    graph_svg: Optional[str]
    stopped_early: bool
    engine: str               # the engine that actually ran: 'compiled' or 'interpreted'
    graph_error: Optional[str] = None  # why graph_svg is None although the spec asked for it
    timings: dict = field(default_factory=dict)  # seconds per phase: data, compile, steps, final_metrics, graph
    draw_graph: Optional[object] = None  # run_spec(draw_graph=False): draws the graph later (see run_spec)


@dataclass
class TrainState:
    """Where a run stands after `step` steps: enough to go on from there (train(resume=...)) with the
    same history and final parameters, bit for bit, as a run that never stopped."""
    step: int                   # steps done: the next step to run, and the schedule's position
    params: list                # every parameter's value, in model.parameters() order
    optimizer: dict             # the optimizer's state(): momentum velocity, or Adam's moments and t
    rng: list                   # the mini-batch sampler's random.Random state, getstate() as lists
    last_loss: Optional[float]  # the loss of step `step - 1`: the final loss when no step is left


class TrainingDiverged(Exception):
    def __init__(self, step, history, reason):
        super().__init__(f"diverged at step {step}: {reason}")
        self.step = step
        self.history = history
        self.reason = reason

    def __reduce__(self):  # picklable, for callers that train in another process
        return type(self), (self.step, self.history, self.reason)


def _loss_function(engine, model, loss_name, l2, n_inputs, check=None):
    """(loss_and_grads(batch, params), name of the engine that will run, the CompiledLoss or None):
    (loss, outputs) of a core.batches.Batch at params.data, its gradients left in params.grad."""
    def interpreted(batch, params):
        params.write_back()  # the interpreted engine reads the Values and sets their .grad
        result = interpreted_loss_and_grads(model, loss_name, l2, batch.xs, batch.ys)
        params.read_grads()
        return result

    if engine == "interpreted":
        return interpreted, "interpreted", None
    if engine != "compiled":
        raise ValueError(f"unknown engine {engine!r}; choose 'compiled' or 'interpreted'")
    compiled = _compiled(model, loss_name, l2, n_inputs, check)
    if compiled is None:
        return interpreted, "interpreted", None
    def on_tape(batch, params):
        return compiled.array_loss_and_grads(batch.xs, batch.ys, params, arrays=batch.arrays)
    return on_tape, "compiled", compiled


def _compiled(model, loss_name, l2, n_inputs, check):
    """The CompiledLoss, or None when the model cannot compile. Compiling a wide model takes
    seconds: check() keeps running meanwhile. A tape planned already (the shape was seen) is taken at once,
    without the helper thread: starting and joining it cost more than the lookup (the worker's small jobs)."""
    try:
        if core.compile.is_planned(model, loss_name, n_inputs):
            return core.compile.compile_loss(model, loss_name, l2, n_inputs)
        return interruptible(lambda: core.compile.compile_loss(model, loss_name, l2, n_inputs), check)
    except core.compile.CannotCompile as e:
        log.warning("cannot compile this model (%s); using the interpreted engine", e)
        return None


def interruptible(work, check=None):
    """work(), run in a helper thread while this thread calls check() every CHECK_SECONDS, so a
    long single call (compiling, drawing a graph) ends as soon as check() raises. The abandoned
    call then runs on, in the background, to its end (its work is bounded by the spec's limits);
    its result is dropped. Without check, work() runs here."""
    if check is None:
        return work()
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as e:  # handed to the waiting thread
            outcome["error"] = e

    helper = threading.Thread(target=run, name="core-interruptible", daemon=True)
    helper.start()
    while helper.is_alive():
        helper.join(CHECK_SECONDS)
        check()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- accuracy -----------------------------------------------------------------

def accuracy_rule(loss_name, ys):
    """A function (outputs, targets) -> fraction correct, or None when the
    targets are not class labels (regression)."""
    if loss_name == "softmax_ce":
        return lambda outs, ts: _fraction(_argmax(o) == t for o, t in zip(outs, ts))
    if loss_name == "bce":
        return lambda outs, ts: _fraction((o > 0) == (t == 1) for o, t in zip(outs, ts))
    if all(isinstance(y, list) for y in ys):  # several outputs: one-hot targets are classes
        if all(_is_one_hot(y) for y in ys):
            return lambda outs, ts: _fraction(_argmax(o) == _argmax(t) for o, t in zip(outs, ts))
        return None
    if loss_name == "hinge" or all(y in (-1, 1) for y in ys):
        return lambda outs, ts: _fraction((o > 0) == (t > 0) for o, t in zip(outs, ts))
    return None


def _is_one_hot(target):
    """One entry 1, the others -1 or 0."""
    return target.count(1) == 1 and all(v in (-1, 0, 1) for v in target)


def _argmax(values):
    return max(range(len(values)), key=values.__getitem__)


def _fraction(hits):
    hits = list(hits)
    return sum(hits) / len(hits)


# -- the loop -----------------------------------------------------------------

def train(model, xs, ys, loss="sse", optimizer=None, steps=100, batch_size=None, l2=0.0, seed=0,
          engine="compiled", callback=None, loss_every=1, validation=None, resume=None, checkpoint=None,
          check=None):
    """Train `model` for `steps` steps and return a TrainResult.

    optimizer: an SGD or Adam over model.parameters() (default SGD, lr 0.1), or another
    core.optim.Optimizer, which updates them with update(data, grad, lr) on arrays;
    batch_size: None for full batch, else seeded random mini-batches;
    callback(StepRecord) after every step, returning False stops early;
    validation: optional (xs, ys) for the val_loss/val_accuracy metrics;
    resume: a TrainState of an earlier run of the same training, to go on from (the history then
    starts at its step);
    checkpoint(snapshot) after every step's callback: snapshot() is the TrainState now (a copy of
    every parameter; call it only when a checkpoint is due);
    check(): called before every step, every chunk of the final metrics and every
    CHECK_SECONDS of compiling; it stops training by raising (a time limit, a cancel)."""
    _check_arguments(loss, xs, ys, steps, batch_size, loss_every)
    xs, ys = _plain_lists(xs), _plain_lists(ys)
    optimizer = optimizer if optimizer is not None else SGD(model.parameters(), lr=0.1)
    started = time.perf_counter()
    loss_and_grads, engine_used, compiled = _loss_function(engine, model, loss, l2, len(xs[0]), check)
    timings = {"compile": time.perf_counter() - started}
    started = time.perf_counter()
    score = accuracy_rule(loss, ys)
    rng = random.Random(seed)
    batches = Batches(xs, ys, batch_size, rng, compiled.batch_arrays if compiled is not None else None)
    history, stopped_early, steps_done, last_loss = [], False, 0, None
    if resume is not None:
        steps_done, last_loss = _load_state(resume, model, optimizer, rng, steps), resume.last_loss
    params = _param_array(model, optimizer)

    def snapshot():
        version, internal, gauss = rng.getstate()
        return TrainState(steps_done, params.data.tolist(), optimizer.state(),
                          [version, list(internal), gauss], last_loss)
    try:
        for step in range(steps_done, steps):
            if check is not None:
                check()
            batch = batches.next()
            lr = optimizer.schedule(step)
            loss_value, outputs = _guarded_step(loss_and_grads, batch, params, step, history)
            optimizer.update(params.data, params.grad, lr)
            steps_done, last_loss = step + 1, loss_value
            record = StepRecord(step, loss_value, lr, score(outputs, batch.ys) if score else None,
                                recorded=step % loss_every == 0 or step == steps - 1)
            if record.recorded:
                history.append(record)
            if callback is not None and callback(record) is False:
                stopped_early = True
                break
            if checkpoint is not None:
                checkpoint(snapshot)
    finally:
        params.write_back()  # the model where its training stopped, for whatever reads it next
    timings["steps"], started = time.perf_counter() - started, time.perf_counter()
    if compiled is None and engine == "interpreted":
        compiled = _compiled(model, loss, l2, len(xs[0]), check)
    evaluate = _final_evaluation(model, loss, l2, compiled, min(batch_size or len(xs), len(xs)), check)
    metrics = _final_metrics(evaluate, score, xs, ys, validation, last_loss, steps_done)
    timings["final_metrics"] = time.perf_counter() - started
    return TrainResult(history, model.to_json(), metrics, None, stopped_early, engine_used, timings=timings)


def _load_state(state, model, optimizer, rng, steps):
    """Puts a run where `state` left it; returns the step to go on from."""
    parameters = model.parameters()
    if len(state.params) != len(parameters) or not 0 <= state.step <= steps:
        raise ValueError(f"this state ({len(state.params)} parameters, step {state.step}) is not of this "
                         f"training ({len(parameters)} parameters, {steps} steps)")
    for p, value in zip(parameters, state.params):
        p.data = float(value)
    optimizer.load_state(state.optimizer)
    version, internal, gauss = state.rng
    rng.setstate((version, tuple(internal), gauss))
    return state.step


def _param_array(model, optimizer):
    """The model's parameters as the arrays the steps work on; the optimizer must update these."""
    params = ParamArray(model.parameters())
    theirs = optimizer.parameters
    if len(theirs) != len(params) or any(a is not b for a, b in zip(theirs, params.parameters)):
        raise ValueError("the optimizer must be over model.parameters(), in that order")
    return params


def _guarded_step(loss_and_grads, batch, params, step, history):
    """One loss-and-gradients call; a NaN/inf loss or an overflow is divergence."""
    try:
        loss_value, outputs = loss_and_grads(batch, params)
    except (OverflowError, ZeroDivisionError) as e:
        raise TrainingDiverged(step, history, str(e)) from e
    if not math.isfinite(loss_value):
        raise TrainingDiverged(step, history, f"the loss is {loss_value}")
    return loss_value, outputs


def _no_check():
    pass


def _final_evaluation(model, loss_name, l2, compiled, batch, check):
    """loss_and_grads(xs, ys) for the final metrics, over any number of samples. The compiled
    engine whenever the model compiles (train() compiles it also for a job trained interpreted:
    the final pass covers every sample and would take far longer than its steps), EVAL_CHUNK
    samples or a batch at a time (a chunk that overflows has no metric: never an interpreted
    graph of EVAL_CHUNK samples); else the interpreted one, a training batch at a time."""
    check = check or _no_check
    penalty = lambda: l2 * sum(p.data * p.data for p in model.parameters())  # noqa: E731
    mean = LOSSES[loss_name][1] == "mean"
    if compiled is not None:
        def vectorised(xs, ys):
            return compiled.loss_and_grads(xs, ys, fallback=False)
        return _in_chunks(vectorised, max(batch, EVAL_CHUNK), mean, penalty, check)

    def interpreted(xs, ys):
        return interpreted_loss_and_grads(model, loss_name, l2, xs, ys)
    return _in_chunks(interpreted, batch, mean, penalty, check)


def _final_metrics(loss_and_grads, score, xs, ys, validation, last_loss, steps_done):
    """Training accuracy and validation loss/accuracy at the final parameters.
    The training samples go last, so the parameters are left holding their
    gradients at the final parameters (what the per-neuron graph view shows;
    of the last batch_size samples when training used mini-batches)."""
    metrics = {"final_loss": last_loss, "accuracy": None,
               "val_loss": None, "val_accuracy": None, "steps_done": steps_done}
    if validation is not None and len(validation[0]) > 0:
        val_xs, val_ys = _plain_lists(validation[0]), _plain_lists(validation[1])
        metrics["val_loss"], val_outputs = _evaluate(loss_and_grads, val_xs, val_ys)
        if score is not None and val_outputs is not None:
            metrics["val_accuracy"] = score(val_outputs, val_ys)
    _, outputs = _evaluate(loss_and_grads, xs, ys)
    if score is not None and outputs is not None:
        metrics["accuracy"] = score(outputs, ys)
    return metrics


def _in_chunks(loss_and_grads, chunk, mean, penalty, check):
    """loss_and_grads over any number of samples, at most `chunk` (a training
    step's batch) at a time: a job training on mini-batches may have far more
    samples than one graph can hold. The chunks' losses combine into the whole
    set's; each includes the L2 term, penalty(), once. check() runs before every chunk."""
    def evaluate(xs, ys):
        check()
        if len(xs) <= chunk:
            return loss_and_grads(xs, ys)
        l2_term = penalty()
        total, outputs = l2_term, []
        for start in range(0, len(xs), chunk):
            check()
            part, part_outputs = loss_and_grads(xs[start:start + chunk], ys[start:start + chunk])
            total += (part - l2_term) * (len(part_outputs) / len(xs) if mean else 1.0)
            outputs += part_outputs
        return total, outputs
    return evaluate


def _evaluate(loss_and_grads, xs, ys):
    """(loss, outputs), or (None, None) when the final parameters overflow."""
    try:
        loss_value, outputs = loss_and_grads(xs, ys)
    except (OverflowError, ZeroDivisionError):
        return None, None
    return (loss_value if math.isfinite(loss_value) else None), outputs


def _check_arguments(loss, xs, ys, steps, batch_size, loss_every):
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    if len(xs) == 0 or len(xs) != len(ys):
        raise ValueError(f"need as many targets as samples, and at least one: {len(xs)} xs, {len(ys)} ys")
    if steps < 1 or loss_every < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError("steps, loss_every and batch_size must be positive")


def _plain_lists(values):
    """numpy arrays -> lists of Python floats (a numpy scalar on the left of a
    Value would try to broadcast instead of calling Value's reflected ops)."""
    return values.tolist() if hasattr(values, "tolist") else [
        v.tolist() if hasattr(v, "tolist") else v for v in values]


def predict(params, xs):
    """Outputs of the MLP exported as `params` (MLP.to_json()): a float per
    sample for one output, else a list of floats per sample."""
    model = MLP.from_json(params)
    with cycle_collector_paused():
        return [output_data(model(x)) for x in _plain_lists(xs)]


# -- from a JobSpec -----------------------------------------------------------

def run_spec(spec, callback=None, resume=None, checkpoint=None, check=None, draw_graph=True):
    """Build data, model, loss and optimizer from a JobSpec and train; the
    same spec and seed give bitwise-identical history and parameters, also
    when resumed from a TrainState of an earlier run (see train).
    check() (see train()) also runs between the phases and while the graph is drawn.
    draw_graph=False leaves the graph (when the spec asks for one) to the caller:
    result.draw_graph(check) then draws it, as this would have, and returns
    (svg or None, why not or None) — so a service can save the results first."""
    between_phases = check or _no_check
    between_phases()
    started = time.perf_counter()
    xs, ys = _spec_data(spec)
    n_outputs = spec.model.layers[-1]
    ys = encode_targets(spec.loss, ys, n_outputs, labels_are_classes=spec.data.kind != "inline")
    train_xs, train_ys, val_xs, val_ys = train_validation_split(
        xs, ys, spec.data.validation_fraction, spec.seed)
    between_phases()
    model = MLP(spec.input_count(), spec.model.layers, spec.model.activation_list(), seed=spec.seed)
    data_seconds = time.perf_counter() - started
    result = train(model, train_xs, train_ys, spec.loss, make_optimizer(spec.optimizer, model, spec.steps),
                   spec.steps, spec.batch_size, spec.l2, spec.seed, spec.engine, callback,
                   spec.record.loss_every, validation=(val_xs, val_ys), resume=resume, checkpoint=checkpoint,
                   check=check)
    result.timings = {"data": data_seconds, **result.timings}
    if spec.record.graph_svg:
        result.draw_graph = lambda check=None: interruptible(lambda: _graph_svg(model, spec, train_xs, train_ys),
                                                             check)
        if draw_graph:
            started = time.perf_counter()
            result.graph_svg, result.graph_error = result.draw_graph(check)
            result.timings["graph"] = time.perf_counter() - started
            between_phases()
    return result


def graph_from_params(spec, params, check=None):
    """(svg or None, why not or None): the graph run_spec draws for this spec,
    drawn again from the job's final parameters (MLP.to_json()) alone — for a
    job whose results were saved but whose graph was not (its worker died while
    drawing). The final-metrics pass is repeated first, so the parameters hold
    the same gradients as after training (what the per-neuron view shows): the
    same picture, bit for bit."""
    xs, ys = _spec_data(spec)
    ys = encode_targets(spec.loss, ys, spec.model.layers[-1], labels_are_classes=spec.data.kind != "inline")
    train_xs, train_ys, val_xs, val_ys = train_validation_split(xs, ys, spec.data.validation_fraction, spec.seed)
    train_xs, train_ys = _plain_lists(train_xs), _plain_lists(train_ys)
    model = MLP.from_json(params)
    compiled = _compiled(model, spec.loss, spec.l2, len(train_xs[0]), check)
    evaluate = _final_evaluation(model, spec.loss, spec.l2, compiled,
                                 min(spec.batch_size or len(train_xs), len(train_xs)), check)
    _final_metrics(evaluate, accuracy_rule(spec.loss, train_ys), train_xs, train_ys, (val_xs, val_ys), None, 0)
    return interruptible(lambda: _graph_svg(model, spec, train_xs, train_ys), check)


def _graph_svg(model, spec, xs, ys):
    """(SVG of the trained model's graph, None), or (None, why not): the
    training itself is not lost for want of a picture."""
    from core.graph import RenderFailed, render_svg, training_graph
    try:
        return render_svg(training_graph(model, spec.loss, xs, ys, spec.l2)), None
    except RenderFailed as e:
        log.warning("no graph SVG for this job: %s", e)
        return None, str(e)


def _spec_data(spec):
    data = spec.data
    if data.kind == "inline":
        return data.xs, data.ys
    xs, ys = generate(data.kind, data.n_samples, data.noise, spec.seed, data.classes)
    if data.kind == "seed":  # its +-1 targets as class indices, like every other generator
        ys = [int(y > 0) for y in ys]
    return xs, ys


def make_optimizer(optimizer_spec, model, steps):
    o = optimizer_spec
    schedule = make_schedule(o.schedule, o.lr, o.final_lr, steps)
    if o.name == "adam":
        return Adam(model.parameters(), o.lr, o.beta1, o.beta2, o.eps, schedule=schedule)
    return SGD(model.parameters(), o.lr, o.momentum, schedule=schedule)


def encode_targets(loss_name, ys, n_outputs, labels_are_classes):
    """Targets in the encoding loss_name expects: hinge -1/+1, bce 0/1,
    softmax_ce a class index, sse/mse -1/+1 (one-hot over several outputs).

    Generated data brings class indices; inline data brings its own targets,
    which are kept for sse/mse and read as labels for the classification losses
    (-1/+1 or 0/1 for hinge and bce, a class index for softmax_ce)."""
    if loss_name in ("sse", "mse") and not labels_are_classes:
        return _check_regression_targets(ys, n_outputs)
    classes = _class_indices(loss_name, ys, n_outputs, labels_are_classes)
    if loss_name == "softmax_ce":
        return classes
    if loss_name == "bce":
        return [float(c) for c in classes]
    if n_outputs == 1:  # hinge, or sse/mse on two classes
        if max(classes) > 1:
            raise ValueError(f"{loss_name} with one output needs 2 classes, the data has {max(classes) + 1}")
        return [1.0 if c else -1.0 for c in classes]
    return [[1.0 if k == c else -1.0 for k in range(n_outputs)] for c in classes]


def _class_indices(loss_name, ys, n_outputs, labels_are_classes):
    if labels_are_classes or loss_name == "softmax_ce":
        if any(isinstance(y, list) or y != int(y) or y < 0 for y in ys):
            raise ValueError(f"{loss_name} needs class indices 0, 1, 2, ... as targets")
        classes = [int(y) for y in ys]
        limit = n_outputs if n_outputs > 1 else 2
        if max(classes) >= limit:
            raise ValueError(f"class {max(classes)} needs more outputs than the last layer's {n_outputs}")
        return classes
    binary = not any(isinstance(y, list) for y in ys) and (set(ys) <= {-1, 1} or set(ys) <= {0, 1})
    if not binary:
        raise ValueError(f"{loss_name} needs binary labels, all -1/+1 or all 0/1")
    return [int(y > 0) for y in ys]


def _check_regression_targets(ys, n_outputs):
    for y in ys:
        width = len(y) if isinstance(y, list) else 1
        if width != n_outputs:
            raise ValueError(f"a target has {width} values but the last layer has {n_outputs} outputs")
    return [list(y) if isinstance(y, list) else y for y in ys]
