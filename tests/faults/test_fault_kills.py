"""Killed and stopped workers: the job runs again and ends with one complete history (issue 5).

Every test starts real processes: the API (uvicorn), Celery prefork workers, a throwaway
PostgreSQL and Redis; MAX_ATTEMPTS=3, STALE_AFTER_SECONDS=5, SWEEP_SECONDS=1."""
import time

import pytest

from . import scenarios
from .checks import assert_one_complete_history, resumed_from, steps_recomputed
from .client import JobClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def client(cluster):
    return JobClient(cluster.start_api().url)


def test_pool_child_killed_mid_job_is_rerun_and_succeeds(cluster, client):
    fault = scenarios.pool_child_killed(cluster, client)
    (job_id, spec), = fault.jobs

    job = client.wait_final(job_id, timeout=60)

    assert fault.statuses_before == ["running"]
    assert job["attempts"] == 2, job
    assert fault.workers["w1"].running(), "losing a pool process must not take the worker down"
    assert_one_complete_history(client, job_id, spec)


def test_a_job_killed_at_80_percent_resumes_from_its_last_checkpoint_bit_identically(cluster, client):
    """Checkpoints every 0.5 s: the re-run goes on from the last one before the kill, recomputing a small
    part of the steps done instead of all of them, and ends exactly as an uninterrupted run."""
    # Twice the usual length: the last 20% (~1.2 s) is then well over the 0.5 s between progress writes,
    # so the poll sees the job past 80% before it ends.
    fault = scenarios.pool_child_killed_at(cluster, client, fraction=0.8, length=2.0)
    (job_id, spec), = fault.jobs
    [done] = fault.steps_before

    job = client.wait_final(job_id, timeout=60)

    assert job["attempts"] == 2, job
    [resumed] = resumed_from(cluster, job_id)
    assert 0 < resumed <= done and steps_recomputed(cluster, client, fault) == done - resumed
    assert done - resumed < done / 2, (done, resumed)  # about 0.5 s of a ~4.8 s run; without checkpoints: all
    assert_one_complete_history(client, job_id, spec)


def test_whole_worker_killed_job_finishes_on_the_other_worker_within_60s(cluster, client):
    fault = scenarios.whole_worker_killed(cluster, client)
    (job_id, spec), = fault.jobs

    client.wait_final(job_id, timeout=60)

    assert time.monotonic() - fault.injected_at < 60
    assert fault.statuses_before == ["running"]
    job = assert_one_complete_history(client, job_id, spec)
    assert job["attempts"] == 2, job
    assert "'succeeded'" in fault.workers["survivor"].log(), "the surviving worker ran it to the end"


def test_crash_loop_fails_after_max_attempts_with_the_reason(cluster, client):
    """The pool process is SIGKILLed every time it picks the job up."""
    worker = cluster.start_worker("w1")
    job_id = client.submit(scenarios.long_spec())

    for attempt in (1, 2, 3):
        client.wait_for(job_id, lambda job: job["status"] == "running" and job["attempts"] == attempt,
                        timeout=30, what=f"running attempt {attempt}")
        assert worker.kill_pool_children()

    job = client.wait_final(job_id, timeout=30)
    assert job["status"] == "failed", job
    assert job["attempts"] == 3
    assert "attempt limit" in job["error"] and "3" in job["error"], job["error"]
    time.sleep(3)  # a few sweeps later, nothing has run it a fourth time
    assert client.job(job_id)["attempts"] == 3


def test_sigterm_lets_the_running_job_finish(cluster, client):
    fault = scenarios.sigterm_mid_job(cluster, client)
    (job_id, spec), = fault.jobs

    job = client.wait_final(job_id, timeout=60)

    assert fault.statuses_before == ["running"] and fault.finished_after_the_fault(job)
    assert fault.workers["old"].wait_exit(timeout=30) == 0, "a warm shutdown exits cleanly"
    assert_one_complete_history(client, job_id, spec)
