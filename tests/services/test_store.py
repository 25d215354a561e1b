"""The persistence module against real databases (SQLite and PostgreSQL, from conftest)."""
import struct
import threading
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import event, update

from core.spec import JobSpec
from services.store import jobs
from services.store.db import session_scope
from services.store.models import Job, utcnow

STALE_NOW = 0  # stale_after=0: any heartbeat in the past counts as stale


@pytest.fixture
def session(service_env):
    with session_scope() as session:
        yield session


def new_job(session, owner="alice", **spec):
    return jobs.create_job(session, owner, JobSpec(**spec))


def claim(session, job, stale_after=60, max_attempts=3):
    return jobs.claim_job(session, job.id, stale_after=stale_after, max_attempts=max_attempts)


def age(session, job, **seconds_ago):
    """Moves the job's timestamps into the past, as if time had passed."""
    now = utcnow()
    session.execute(update(Job).where(Job.id == job.id)
                    .values({name: now - timedelta(seconds=s) for name, s in seconds_ago.items()}))
    session.commit()


def steps(session, job):
    return [(p.step, p.loss) for p in jobs.get_loss_points(session, job.id)]


def test_a_new_job_is_queued_with_its_spec(session):
    job = new_job(session, steps=7)
    loaded = jobs.get_job(session, job.id)
    assert (loaded.status, loaded.total_steps, loaded.attempts) == ("queued", 7, 0)
    assert JobSpec.model_validate(loaded.spec) == JobSpec(steps=7)
    assert loaded.created_at.tzinfo is not None


def test_another_owners_job_is_invisible(session):
    job = new_job(session, owner="alice")
    assert jobs.get_job(session, job.id, owner="bob") is None
    assert jobs.get_job(session, str(job.id), owner="alice").id == job.id


def test_list_is_newest_first_paginated_and_filtered(session):
    created = [new_job(session, owner="carol").id for _ in range(5)]
    new_job(session, owner="dave")
    seen, cursor = [], None
    while True:
        page, cursor = jobs.list_jobs(session, "carol", limit=2, cursor=cursor)
        seen += [job.id for job in page]
        if cursor is None:
            break
    assert seen == created[::-1]
    claim(session, jobs.get_job(session, created[0]))
    running, _ = jobs.list_jobs(session, "carol", status="running")
    assert [job.id for job in running] == [created[0]]
    with pytest.raises(ValueError, match="malformed cursor"):
        jobs.list_jobs(session, "carol", cursor="not-a-cursor")


def test_a_job_is_claimed_once_even_by_racing_workers(session):
    job = new_job(session)
    tokens, barrier = [], threading.Barrier(6)

    def race():
        with session_scope() as own_session:
            barrier.wait()
            tokens.append(claim(own_session, job))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([t for t in tokens if t]) == 1
    loaded = jobs.get_job(session, job.id)
    assert (loaded.status, loaded.attempts) == ("running", 1)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_claims_and_heartbeats_do_not_wait_for_the_disk_but_history_and_results_do(session):
    """A claim is on every job's path, and losing one in a database crash is harmless (the run's next write
    finds the job not its own; the sweeper sends it again): its commit need not wait for an fsync. A lost
    batch of history or a lost result would not be harmless."""
    from sqlalchemy import event
    seen = []

    def note(connection, cursor, statement, *args):
        if "synchronous_commit" in statement or statement.lstrip().upper().startswith(("UPDATE JOBS", "INSERT")):
            seen.append(statement.split()[0].upper() + (" async" if "synchronous_commit" in statement else ""))
    event.listen(session.get_bind(), "before_cursor_execute", note)
    try:
        job = new_job(session)
        seen.clear()
        token = claim(session, job)
        assert seen == ["UPDATE async"]
        seen.clear()
        assert jobs.heartbeat(session, job.id, token)
        assert seen == ["UPDATE async"]
        seen.clear()
        jobs.record_progress(session, job.id, token, [jobs.Point(0, 1.0)], 1, 1.0)
        jobs.finish_job(session, job.id, token, "succeeded", [jobs.Point(1, 0.5)], 2, {"final_loss": 0.5}, "{}")
        assert "SET async" not in seen and seen
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", note)


def test_a_stale_run_is_reclaimed_and_the_old_run_cannot_write(session):
    job = new_job(session)
    old = claim(session, job)
    assert claim(session, job) is None  # heartbeat is fresh
    new = claim(session, job, stale_after=STALE_NOW)
    assert new and new != old
    with pytest.raises(jobs.Superseded):
        jobs.record_progress(session, job.id, old, [jobs.Point(0, 9.0)], 1, 9.0)
    with pytest.raises(jobs.Superseded):
        jobs.finish_job(session, job.id, old, "succeeded", [], 1, {"final_loss": 9.0}, "{}")
    with pytest.raises(jobs.Superseded):
        jobs.fail_job(session, job.id, old, "boom")
    assert not jobs.heartbeat(session, job.id, old)
    assert jobs.heartbeat(session, job.id, new)
    loaded = jobs.get_job(session, job.id)
    assert (loaded.status, loaded.attempts, steps(session, job)) == ("running", 2, [])


def test_a_superseded_runs_finish_writes_nothing_and_the_owners_writes_everything(session):
    """finish_job's writes (the history, the parameters) land with the job's status change or not at all (on
    PostgreSQL they are one statement: jobs._finish_statement): a run that lost its claim stores none of its
    points or parameters, and the run that owns the job then stores all of its own, over blocks of two sizes."""
    job = new_job(session, steps=1500)
    old = claim(session, job)
    new = claim(session, job, stale_after=STALE_NOW)
    points = [jobs.Point(s, 1 / (s + 1)) for s in range(1500)]  # two history blocks
    with pytest.raises(jobs.Superseded):
        jobs.finish_job(session, job.id, old, "succeeded", points, 1500, {"final_loss": 9.0}, '{"old": 1}')
    assert steps(session, job) == [] and jobs.get_artifact(session, job.id, "params") is None
    assert jobs.get_job(session, job.id).status == "running"
    jobs.finish_job(session, job.id, new, "succeeded", points, 1500, {"final_loss": 0.5, "accuracy": None},
                    '{"new": 1}', phase_seconds={"save": 0.001})
    loaded = jobs.get_job(session, job.id)
    assert (loaded.status, loaded.final_loss, loaded.progress_step, loaded.heartbeat_at) == ("succeeded", 0.5, 1500,
                                                                                            None)
    assert loaded.metrics == {"final_loss": 0.5, "accuracy": None} and loaded.phase_seconds["save"] >= 0.001
    assert steps(session, job) == [(p.step, p.loss) for p in points]
    assert jobs.get_artifact(session, job.id, "params") == '{"new": 1}'


def test_attempts_are_limited(session):
    job = new_job(session)
    assert claim(session, job, max_attempts=1)
    assert claim(session, job, stale_after=STALE_NOW, max_attempts=1) is None


def test_loss_points_are_unique_per_step_and_the_first_write_wins(session):
    job = new_job(session)
    first = claim(session, job)
    jobs.record_progress(session, job.id, first, [jobs.Point(0, 1.0), jobs.Point(1, 0.5)], 2, 0.5)
    second = claim(session, job, stale_after=STALE_NOW)  # a re-run writes the same steps again
    jobs.record_progress(session, job.id, second, [jobs.Point(0, 1.0), jobs.Point(1, 7.0),
                                                    jobs.Point(2, 0.25), jobs.Point(2, 0.25)], 3, 0.25)
    assert steps(session, job) == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert [(p.step, p.loss) for p in jobs.get_loss_points(session, job.id, start=1, end=1)] == [(1, 0.5)]
    assert len(jobs.get_loss_points(session, job.id, start=-10**30, end=10**30)) == 3
    assert jobs.get_loss_points(session, job.id, start=10**30) == []


def test_histories_across_chunk_boundaries_keep_every_step_once_bit_for_bit(session):
    job = new_job(session, steps=5000)
    first = claim(session, job)
    values = {step: (step + 1) / 3 for step in range(0, 5000, 7)}
    values[0] = -0.0
    batches = [[s for s in values if s < 998], [s for s in values if 998 <= s < 2999], [s for s in values if s >= 2999]]
    for batch in (batches[1], batches[0]):  # out of order, as a re-run after a partial write would
        jobs.record_progress(session, job.id, first, [jobs.Point(s, values[s], lr=0.1) for s in batch], 1, 1.0)
    second = claim(session, job, stale_after=STALE_NOW)
    jobs.record_progress(session, job.id, second, [jobs.Point(s, 42.0) for s in values], 5000, 42.0)
    served = jobs.get_loss_points(session, job.id)
    assert served.steps.tolist() == sorted(values)
    assert [struct.pack("<d", v) for v in served.loss.tolist()] == [
        struct.pack("<d", values[s] if s < 2999 else 42.0) for s in sorted(values)]
    window = jobs.get_loss_points(session, job.id, start=994, end=2001)
    assert window.steps.tolist() == [s for s in sorted(values) if 994 <= s <= 2001]
    assert [p.lr for p in window] == [0.1] * len(window)


def test_progress_is_visible_while_running_and_non_finite_losses_are_not_stored(session):
    job = new_job(session, steps=10)
    token = claim(session, job)
    points = [jobs.Point(0, 2.0, accuracy=0.5, lr=0.1), jobs.Point(1, float("nan")), jobs.Point(2, float("inf"))]
    assert jobs.record_progress(session, job.id, token, points, 3, float("inf")) is False
    loaded = jobs.get_job(session, job.id)
    assert (loaded.progress_step, loaded.latest_loss) == (3, None)
    [point] = jobs.get_loss_points(session, job.id)
    assert (point.step, point.loss, point.accuracy, point.lr) == (0, 2.0, 0.5, 0.1)


def test_finishing_stores_results_and_status_together(session):
    job = new_job(session)
    token = claim(session, job)
    metrics = {"final_loss": 0.125, "accuracy": None, "val_loss": None, "val_accuracy": None, "steps_done": 2}
    jobs.finish_job(session, job.id, token, "succeeded", [jobs.Point(0, 0.5), jobs.Point(1, 0.125)], 2,
                    metrics, '{"nin": 3}', graph_pending=True)
    assert jobs.store_graph(session, job.id, token, "<svg/>", None)
    loaded = jobs.get_job(session, job.id)
    assert (loaded.status, loaded.final_loss, loaded.metrics, loaded.progress_step) == ("succeeded", 0.125,
                                                                                         metrics, 2)
    assert loaded.finished_at >= loaded.started_at >= loaded.created_at
    assert jobs.get_artifact(session, job.id, "params") == '{"nin": 3}'
    assert jobs.get_artifact(session, job.id, "graph_svg") == "<svg/>"
    assert steps(session, job) == [(0, 0.5), (1, 0.125)]
    assert claim(session, job, stale_after=STALE_NOW) is None  # final jobs are never claimed again


def test_failing_keeps_the_history(session):
    job = new_job(session)
    token = claim(session, job)
    jobs.record_progress(session, job.id, token, [jobs.Point(0, 1.0)], 1, 1.0)
    jobs.fail_job(session, job.id, token, "diverged at step 1", [jobs.Point(1, float("nan"))], steps_done=2)
    loaded = jobs.get_job(session, job.id)
    assert (loaded.status, loaded.error, loaded.progress_step) == ("failed", "diverged at step 1", 2)
    assert steps(session, job) == [(0, 1.0)]
    assert jobs.get_artifact(session, job.id, "params") is None


def test_cancelling_a_queued_job_means_it_never_starts(session):
    job = new_job(session)
    assert jobs.cancel_job(session, job.id).status == "cancelled"
    assert claim(session, job) is None


def test_cancelling_a_running_job_asks_the_worker_to_stop(session):
    job = new_job(session)
    token = claim(session, job)
    assert jobs.cancel_job(session, job.id).status == "running"
    assert claim(session, job, stale_after=STALE_NOW) is None  # were its worker dead, it is not run again
    assert jobs.record_progress(session, job.id, token, [], 1, 1.0) is True
    jobs.finish_job(session, job.id, token, "cancelled", [], 1, {"final_loss": 1.0}, None)
    assert jobs.cancel_job(session, job.id).status == "cancelled"


def test_cancelling_a_final_job_changes_nothing(session):
    job = new_job(session)
    jobs.fail_job(session, job.id, claim(session, job), "boom")
    assert jobs.cancel_job(session, job.id).status == "failed"
    with pytest.raises(LookupError):
        jobs.cancel_job(session, "00000000-0000-0000-0000-000000000000")


def test_active_jobs_are_counted_per_owner(session):
    running, queued, done = new_job(session), new_job(session), new_job(session)
    new_job(session, owner="bob")
    claim(session, running)
    jobs.fail_job(session, done.id, claim(session, done), "boom")
    assert jobs.count_active_jobs(session, "alice") == 2


def test_undelivered_and_stale_jobs_are_taken_for_redelivery_once(session):
    queued, running, fresh = new_job(session), new_job(session), new_job(session)
    claim(session, running)
    taken = jobs.take_jobs_to_redeliver(session, stale_after=STALE_NOW, redeliver_after=0.5, max_attempts=3)
    assert taken == [running.id]  # the queued ones were created or sent a moment ago: not yet "a while"
    taken = set(jobs.take_jobs_to_redeliver(session, stale_after=STALE_NOW, redeliver_after=0, max_attempts=3))
    assert taken == {queued.id, running.id, fresh.id}
    assert jobs.take_jobs_to_redeliver(session, stale_after=60, redeliver_after=60, max_attempts=3) == []


def test_a_dead_workers_job_is_sent_again_soon_after_its_heartbeat_stops(session):
    """However recently it was first sent: a job that ran 5 s on a worker killed then is back after
    `stale_after`, not after `redeliver_after`; and once sent, not again until it has been stale that long."""
    job = new_job(session)
    claim(session, job)
    age(session, job, heartbeat_at=20, enqueued_at=25)
    assert jobs.take_jobs_to_redeliver(session, stale_after=15, redeliver_after=60, max_attempts=3) == [job.id]
    assert jobs.take_jobs_to_redeliver(session, stale_after=15, redeliver_after=60, max_attempts=3) == []


def test_a_fresh_heartbeat_is_left_alone(session):
    job = new_job(session)
    token = claim(session, job)
    assert jobs.heartbeat(session, job.id, token)
    assert jobs.take_jobs_to_redeliver(session, stale_after=60, redeliver_after=0, max_attempts=3) == []
    assert jobs.fail_exhausted_jobs(session, stale_after=60, max_attempts=1) == []


def test_a_crash_loop_ends_after_the_attempt_limit(session):
    job = new_job(session)
    claim(session, job)
    assert jobs.take_jobs_to_redeliver(session, stale_after=STALE_NOW, redeliver_after=0, max_attempts=1) == []
    assert jobs.fail_exhausted_jobs(session, stale_after=STALE_NOW, max_attempts=1) == [job.id]
    loaded = jobs.get_job(session, job.id)
    assert loaded.status == "failed"
    assert loaded.error == "worker crashed 1 times (attempt limit reached)"


def test_unknown_artifact_kinds_are_refused(session):
    with pytest.raises(ValueError):
        jobs.get_artifact(session, new_job(session).id, "secrets")



def test_full_blocks_partial_blocks_and_picked_points_read_alike(session):
    """Full blocks (their steps are not read back but made), partial ones and gaps, whole and in ranges; a
    picked read (what GET /loss downsamples through) gives the same points as picking from the whole read."""
    job = new_job(session, steps=6000)
    token = claim(session, job)
    written = list(range(0, 2500)) + list(range(3000, 3500, 2)) + list(range(4000, 5000))
    points = [jobs.Point(s, 1 / (s + 1), accuracy=(s % 13) / 13 if s % 3 else None, lr=0.1 + s * 1e-6)
              for s in written]
    jobs.record_progress(session, job.id, token, points, 5000, 0.5)
    for start, end in [(None, None), (0, 999), (999, 1000), (500, 3001), (2400, 4500), (3001, 3001), (5000, None)]:
        inside = [p for p in points if (start is None or p.step >= start) and (end is None or p.step <= end)]
        served = jobs.get_loss_points(session, job.id, start=start, end=end)
        assert list(served) == inside
        for pick in (lambda loss: np.arange(0, len(loss), 37), lambda loss: np.arange(len(loss))):
            picked, total = jobs.get_loss_curve(session, job.id, pick, start=start, end=end)
            assert total == len(inside)
            assert list(picked) == [inside[i] for i in pick(np.empty(len(inside)))]


def test_a_new_history_is_written_in_one_statement(session):
    """The write that ends a small job's first run stores its history with one INSERT (blocks that do not exist
    yet are not read first); steps written again, as a re-run does, are read and merged (the first write wins).
    On PostgreSQL that INSERT is part of the one statement that ends the job (WITH ...: jobs._finish_statement);
    where a block is stored already, that statement writes nothing and the transaction that merges follows."""
    statements = []

    def record(connection, cursor, statement, *_):
        if "loss_chunks" in statement:
            statements.append(statement.split()[0].upper())

    job = new_job(session, steps=3)
    token = claim(session, job)
    points = [jobs.Point(s, 1 / (s + 1)) for s in range(3)]
    event.listen(session.get_bind(), "before_cursor_execute", record)
    try:
        jobs.finish_job(session, job.id, token, "succeeded", points, 3, {"final_loss": 0.25}, "{}")
        one_statement = session.get_bind().dialect.name == "postgresql"
        assert statements == (["WITH"] if one_statement else ["INSERT"])
        rerun = new_job(session, steps=3)
        token = claim(session, rerun)
        jobs.record_progress(session, rerun.id, token, points[:2], 2, 0.5)
        statements.clear()
        jobs.finish_job(session, rerun.id, token, "succeeded", [jobs.Point(1, 9.0), *points[2:]], 3,
                        {"final_loss": 0.25}, "{}")
        assert statements == (["WITH"] if one_statement else []) + ["INSERT", "SELECT", "UPDATE"]
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", record)
    assert steps(session, rerun) == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
