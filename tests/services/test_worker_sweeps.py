"""Sweep trials in the worker (run in-process, as in test_worker.py): the pruner is asked as a trial
reports, a pruned trial stops, and an ended trial makes way for the next, also when its worker
died before it could say so (the sweeper advances the sweep)."""
import pytest

from core.sweep_spec import SweepSpec
from core.train import TrainResult
from services import sweeps
from services.store import sweeps as sweep_store
from services.store.db import session_scope
from tests.services.test_sweeps import play_trial
from tests.services.test_worker import fake_training, history, load, record, worker  # noqa: F401 (fixture)

# A pruner shown the same step twice (Optuna warns and ignores it) means the replay lost its place.
pytestmark = pytest.mark.filterwarnings("error:The reported value is ignored:UserWarning")
SPEC = {"data": {"kind": "moons", "n_samples": 20}, "model": {"layers": [4, 1]}, "loss": "hinge", "steps": 400,
        "record": {"graph_svg": False}}


def make_sweep(**changes):
    body = {"spec": SPEC, "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 1.0}},
            "method": "random", "trials": 5, "parallelism": 1, **changes}
    sweep = SweepSpec.model_validate(body)
    with session_scope() as session:
        row = sweep_store.create_sweep(session, "alice", sweep.model_dump(mode="json"), sweep.trial_count)
    sweeps.advance(row.id)
    return row.id


def active_trial(sweep_id):
    with session_scope() as session:
        (job,) = [job for _, job in sweep_store.trials_with_jobs(session, sweep_id)
                  if job.status in ("queued", "running")]
    return job.id


def trials(sweep_id):
    with session_scope() as session:
        return sweep_store.trials_with_jobs(session, sweep_id)


def test_a_trial_that_loses_its_rung_is_stopped_by_its_worker_and_the_next_one_queued(worker, monkeypatch):
    from services.worker import progress
    monkeypatch.setattr(progress, "FLUSH_SECONDS", 0)  # every step reports (and asks the pruner)
    sweep_id = make_sweep(early_stopping={"rule": "asha", "min_steps": 20, "reduction_factor": 2})
    for _ in range(3):
        play_trial(active_trial(sweep_id), [0.1] * 400)
        sweeps.advance(sweep_id)
    loser = active_trial(sweep_id)
    steps_run = []

    def train(spec, callback):
        for step in range(spec.steps):
            steps_run.append(step)
            if not callback(record(step, loss=1.0)):
                return TrainResult([], {}, {"final_loss": 1.0}, None, True, "compiled")
        return TrainResult([], {}, {"final_loss": 1.0}, None, False, "compiled")
    fake_training(monkeypatch, worker, train)

    assert worker.run_job(str(loser)) == "cancelled"
    assert 20 <= len(steps_run) < 40  # stopped at the first rung, not at the end
    assert load(loser).status == "cancelled" and len(history(loser)) == len(steps_run)
    pruned = [trial for trial, job in trials(sweep_id) if job.id == loser]
    assert pruned[0].pruned and pruned[0].checked_step == 20
    assert load(active_trial(sweep_id)).status == "queued"  # its place went to the next trial at once
    assert len(trials(sweep_id)) == 5


def test_a_trial_whose_worker_died_before_advancing_is_followed_by_the_sweeper(worker):
    from services.worker.sweeper import sweep
    sweep_id = make_sweep(trials=2)
    first = active_trial(sweep_id)
    play_trial(first, [0.5, 0.4])  # the trial ended, then its worker died before advancing the sweep
    assert len(trials(sweep_id)) == 1
    sweep()
    assert len(trials(sweep_id)) == 2
    second = active_trial(sweep_id)
    assert second in worker.sent
    assert worker.run_job(str(second)) == "succeeded"  # and its worker advances the sweep to its end
    with session_scope() as session:
        assert sweep_store.get_sweep(session, sweep_id).status == "finished"


def test_a_sweep_whose_api_died_before_its_first_trials_is_started_by_the_sweeper(worker):
    from services.worker.sweeper import sweep
    spec = SweepSpec.model_validate({"spec": SPEC, "space": {"seed": [1, 2, 3]}, "parallelism": 2})
    with session_scope() as session:  # the row is committed, then the API is killed before it advances
        row = sweep_store.create_sweep(session, "alice", spec.model_dump(mode="json"), spec.trial_count)
    assert trials(row.id) == []
    sweep()
    queued = [job.id for _, job in trials(row.id)]
    assert len(queued) == 2 and sorted(worker.sent) == sorted(queued)
    sweep()  # the next round asks for nothing more while both are queued
    assert len(trials(row.id)) == 2
