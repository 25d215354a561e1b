"""Checkpoints (issue 9 item 9): stored exactly, written only by the run holding the job, saved every
CHECKPOINT_STEPS / CHECKPOINT_SECONDS after the history they cover, resumed from by the next run, whose
history and parameters are then bit-identical to an uninterrupted run's; gone once the job is final."""
import json
import logging
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from core.spec import JobSpec
from core.train import TrainState, run_spec
from services.store import checkpoints, jobs
from services.store.db import session_scope
from services.store.models import Checkpoint, Job
from tests.services.test_worker import history

SPEC = {"model": {"layers": [6, 1]}, "data": {"kind": "moons", "n_samples": 30}, "loss": "hinge",
        "optimizer": {"name": "adam", "lr": 0.05, "schedule": "cosine"}, "batch_size": 7, "steps": 60, "seed": 5,
        "record": {"graph_svg": False, "loss_every": 3}}


@pytest.fixture
def worker(service_env, tmp_path):
    service_env(BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.db'}", HEARTBEAT_SECONDS=0.05)
    from services.worker import tasks
    return tasks


def submit(**changes):
    with session_scope() as session:
        return jobs.create_job(session, "alice", JobSpec.model_validate({**SPEC, **changes})).id


def claim(job_id):
    with session_scope() as session:
        return jobs.claim_job(session, job_id, stale_after=60, max_attempts=3)


def die(job_id):
    """The run holding the job stops beating, as a killed worker does."""
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=datetime(2000, 1, 1, tzinfo=timezone.utc)))
        session.commit()


def stored_checkpoint(job_id):
    with session_scope() as session:
        return checkpoints.load_checkpoint(session, job_id)


def state_at(spec, step):
    """The TrainState a run of `spec` hands out after `step` steps."""
    states = {}
    run_spec(JobSpec.model_validate(spec), checkpoint=lambda snapshot: states.setdefault(snapshot().step, snapshot()))
    return states[step]


def test_a_checkpoint_is_stored_exactly_and_only_by_the_run_holding_the_job(service_env):
    job_id = submit()
    token = claim(job_id)
    state = state_at(SPEC, 17)
    state.params[0] = -0.0  # a sign a lossy store would drop
    with session_scope() as session:
        checkpoints.save_checkpoint(session, job_id, token, state)
    assert stored_checkpoint(job_id) == state  # every float bit for bit, the RNG state, Adam's t
    assert json.dumps(stored_checkpoint(job_id).params[0]) == "-0.0"

    later = state_at(SPEC, 40)
    with session_scope() as session:
        checkpoints.save_checkpoint(session, job_id, token, later)
        assert session.scalar(select(Checkpoint.step).where(Checkpoint.job_id == job_id)) == 40  # replaced
        with pytest.raises(jobs.Superseded):
            checkpoints.save_checkpoint(session, job_id, "another run's token", state)
    assert stored_checkpoint(job_id) == later

    with session_scope() as session:
        jobs.fail_job(session, job_id, token, "it ended")
    assert stored_checkpoint(job_id) is None  # a final job is never resumed


def test_jobs_the_sweeper_ends_lose_their_checkpoints(service_env):
    """A crash loop on its last attempt (failed) and a dead worker's job asked to cancel (cancelled)."""
    exhausted, abandoned = submit(), submit()
    for job_id in (exhausted, abandoned):
        with session_scope() as session:
            checkpoints.save_checkpoint(session, job_id, claim(job_id), state_at(SPEC, 5))
        die(job_id)
    with session_scope() as session:
        jobs.cancel_job(session, abandoned)
        assert jobs.cancel_abandoned_jobs(session, stale_after=60) == [abandoned]
        assert jobs.fail_exhausted_jobs(session, stale_after=60, max_attempts=1) == [exhausted]
    assert stored_checkpoint(exhausted) is None and stored_checkpoint(abandoned) is None


def test_a_run_checkpoints_every_n_steps_after_writing_the_history_up_to_there(worker, service_env, monkeypatch):
    service_env(CHECKPOINT_STEPS=20, CHECKPOINT_SECONDS=0)
    from services.worker import checkpointing
    saved = []

    def save(session, job_id, token, state):
        saved.append((state.step, max(step for step, _ in history(job_id))))
        return real_save(session, job_id, token, state)
    real_save = checkpointing.save_checkpoint
    monkeypatch.setattr(checkpointing, "save_checkpoint", save)
    job_id = submit()
    assert worker.run_job(str(job_id)) == "succeeded"
    # at steps 20, 40, 60; the history written by then reaches the last recorded step before each
    assert saved == [(20, 18), (40, 39), (60, 59)]
    assert stored_checkpoint(job_id) is None


def test_a_rerun_resumes_from_the_checkpoint_and_ends_bit_identical(worker, caplog):
    """A first run wrote its history up to step 33 and a checkpoint at 33, then died; the next run goes on
    from 33 and the job ends exactly as an uninterrupted run (history, parameters, metrics)."""
    job_id = submit()
    token = claim(job_id)
    whole = run_spec(JobSpec.model_validate(SPEC))
    first_part = [jobs.Point(r.step, r.loss, r.accuracy, r.lr) for r in whole.history if r.step < 33]
    with session_scope() as session:
        jobs.record_progress(session, job_id, token, first_part, steps_done=33, latest_loss=first_part[-1].loss)
        checkpoints.save_checkpoint(session, job_id, token, state_at(SPEC, 33))
    die(job_id)

    with caplog.at_level(logging.INFO, logger="services.worker.tasks"):
        assert worker.run_job(str(job_id)) == "succeeded"

    assert f"job {job_id}: resuming from its checkpoint at step 33 of 60" in caplog.text
    assert history(job_id) == [(r.step, r.loss) for r in whole.history]
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        assert (job.attempts, job.progress_step, job.metrics) == (2, 60, whole.metrics)
        assert json.loads(jobs.get_artifact(session, job_id, "params")) == whole.params
    assert stored_checkpoint(job_id) is None


def test_without_a_checkpoint_a_rerun_starts_from_step_0(worker):
    job_id = submit()
    claim(job_id)
    die(job_id)
    assert worker.run_job(str(job_id)) == "succeeded"
    assert history(job_id) == [(r.step, r.loss) for r in run_spec(JobSpec.model_validate(SPEC)).history]


def test_train_state_is_plain_data():
    state = state_at(SPEC, 3)
    assert isinstance(state, TrainState) and state.step == 3 and state.optimizer["t"] == 3
