"""Resuming from a TrainState: the history and the final parameters are bit-identical to a run that
never stopped, for every optimizer, schedule, engine and batching (issue 9 item 9)."""
import dataclasses
import json

import pytest

from core.spec import JobSpec
from core.train import TrainState, run_spec

SPECS = {
    "sgd, momentum, linear decay, mini-batches": {
        "model": {"layers": [6, 1]}, "data": {"kind": "moons", "n_samples": 40}, "loss": "hinge", "l2": 1e-3,
        "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9, "schedule": "linear", "final_lr": 0.05},
        "batch_size": 8, "steps": 30, "seed": 3},
    "adam, cosine, validation, interpreted": {
        "model": {"layers": [5, 3]}, "data": {"kind": "blobs", "n_samples": 45, "classes": 3,
                                              "validation_fraction": 0.2},
        "loss": "softmax_ce", "optimizer": {"name": "adam", "lr": 0.05, "schedule": "cosine"},
        "batch_size": 10, "steps": 25, "seed": 7, "engine": "interpreted"},
    "plain sgd, full batch, loss_every 4": {
        "model": {"layers": [4, 4, 1]}, "data": {"kind": "seed"}, "loss": "sse", "optimizer": {"lr": 0.05},
        "steps": 23, "record": {"loss_every": 4}},
}


def spec_of(name):
    return JobSpec.model_validate({**SPECS[name], "record": {**SPECS[name].get("record", {}), "graph_svg": False}})


def stored(state):
    """Through JSON and back, as a checkpoint store would keep it."""
    return TrainState(**json.loads(json.dumps(dataclasses.asdict(state))))


class Crash(Exception):
    pass


def run_until_crash(spec, checkpoint_at, crash_at):
    """A run that hands out its state at step `checkpoint_at` and dies at `crash_at`: the last checkpoint."""
    states = []

    def checkpoint(snapshot):
        state = snapshot()
        if state.step == checkpoint_at:
            states.append(stored(state))
        if state.step == crash_at:
            raise Crash
    with pytest.raises(Crash):
        run_spec(spec, checkpoint=checkpoint)
    return states[-1]


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("checkpoint_at", [1, 12, "last"])
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(name, checkpoint_at):
    spec = spec_of(name)
    checkpoint_at = spec.steps if checkpoint_at == "last" else checkpoint_at
    whole = run_spec(spec)

    state = run_until_crash(spec, checkpoint_at, crash_at=min(checkpoint_at + 5, spec.steps))
    resumed = run_spec(spec, resume=state)

    assert state.step == checkpoint_at
    expected = [record for record in whole.history if record.step >= checkpoint_at]
    assert resumed.history == expected  # dataclass ==: every float exactly
    assert resumed.params == whole.params
    assert resumed.metrics == whole.metrics
    assert resumed.stopped_early is False


def test_the_compiled_and_interpreted_engines_resume_each_others_states():
    """A state is plain numbers: a run may go on with the other engine and stay on the same path
    (the engines agree to rounding, so the check is approximate here, exact above)."""
    spec = spec_of("sgd, momentum, linear decay, mini-batches")
    state = run_until_crash(spec, 10, 15)
    compiled = run_spec(spec, resume=state)
    interpreted = run_spec(spec.model_copy(update={"engine": "interpreted"}), resume=state)
    assert [r.loss for r in interpreted.history] == pytest.approx([r.loss for r in compiled.history], rel=1e-9)


def test_a_state_of_another_training_is_refused():
    spec = spec_of("plain sgd, full batch, loss_every 4")
    state = run_until_crash(spec, 5, 6)
    wider = JobSpec.model_validate({**SPECS["plain sgd, full batch, loss_every 4"], "model": {"layers": [5, 4, 1]},
                                    "record": {"graph_svg": False}})
    with pytest.raises(ValueError, match="not of this training"):
        run_spec(wider, resume=state)
    with pytest.raises(ValueError, match="not of this training"):
        run_spec(spec.model_copy(update={"steps": 4}), resume=state)
