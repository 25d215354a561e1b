"""The training callback while the database is down: points are kept, and it retries
every FLUSH_SECONDS instead of on every step. The graph drawing's check: the same time limit and
cancel, and a look at the row every FLUSH_SECONDS."""
import contextlib

import pytest
from sqlalchemy.exc import OperationalError

from core.train import StepRecord
from services.store import jobs
from services.worker import progress


def test_a_full_batch_with_the_database_down_retries_on_the_clock_not_every_step(monkeypatch):
    attempts = []

    @contextlib.contextmanager
    def unreachable():
        attempts.append(1)
        raise OperationalError("connect", {}, Exception("connection refused"))
        yield

    monkeypatch.setattr(progress, "session_scope", unreachable)
    monkeypatch.setattr(progress, "FLUSH_SECONDS", 3600)
    callback = progress.Progress("job", "token", time_limit_seconds=3600)
    for step in range(3 * progress.FLUSH_POINTS):
        assert callback(StepRecord(step, 1.0, 0.1, None, True)) is True
    assert len(attempts) == 1  # the first full batch tried once; later steps wait for the clock
    assert len(callback.take_pending()) == 3 * progress.FLUSH_POINTS  # nothing dropped


def test_a_job_that_stops_early_keeps_its_last_step_even_when_loss_every_skipped_it(monkeypatch):
    monkeypatch.setattr(progress, "FLUSH_SECONDS", 3600)
    callback = progress.Progress("job", "token", time_limit_seconds=3600)
    for step in range(6):  # loss_every=2: steps 0, 2, 4 are recorded; the run stops after step 5
        callback(StepRecord(step, float(step), 0.1, None, step % 2 == 0))
    assert [p.step for p in callback.take_pending()] == [0, 2, 4, 5]
    assert callback.take_pending() == []


def test_the_graph_check_looks_at_the_row_on_the_clock_and_goes_on_while_the_database_is_down(monkeypatch):
    answers = [OperationalError("SELECT", {}, Exception("connection refused")), True, False, None]
    looks = []

    @contextlib.contextmanager
    def session():
        yield None

    def graph_wanted(session, job_id, token):
        looks.append((job_id, token))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(progress, "session_scope", session)
    monkeypatch.setattr(jobs, "graph_wanted", graph_wanted)
    monkeypatch.setattr(progress, "FLUSH_SECONDS", 0)
    check = progress.GraphCheck("job", "token", deadline=float("inf")).check
    check()  # the database is down: drawing goes on
    check()  # wanted
    with pytest.raises(progress.Cancelled, match=jobs.CANCELLED_WHILE_DRAWING):
        check()
    with pytest.raises(jobs.Superseded):
        check()  # deleted, or taken by another run
    assert looks == [("job", "token")] * 4
    monkeypatch.setattr(progress, "FLUSH_SECONDS", 3600)
    quiet = progress.GraphCheck("job", "token", deadline=float("inf")).check
    quiet()
    assert len(looks) == 4  # not before FLUSH_SECONDS
    with pytest.raises(progress.TimeLimitExceeded, match="while drawing the graph"):
        progress.GraphCheck("job", "token", deadline=0.0).check()
