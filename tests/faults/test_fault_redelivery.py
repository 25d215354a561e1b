"""Redelivery is harmless: a job sent twice runs once and its results are written once (issue 5)."""
import pytest

from . import scenarios
from .checks import assert_one_complete_history
from .client import JobClient, enqueue_again
from .servers import wait_until
from .specs import long_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def executions(cluster):
    return sum(worker.tasks_finished() for worker in cluster.workers)


def test_job_delivered_twice_runs_once_with_one_history(cluster):
    client = JobClient(cluster.start_api().url)
    (job_id, spec), = scenarios.delivered_twice(cluster, client).jobs

    client.wait_final(job_id, timeout=60)
    wait_until(lambda: executions(cluster) >= 2, 30, what="both deliveries to be processed")
    job = assert_one_complete_history(client, job_id, spec)
    assert job["attempts"] == 1, "the second delivery must not claim the job"


def test_late_duplicate_after_success_writes_nothing(cluster):
    client = JobClient(cluster.start_api().url)
    cluster.start_worker("w1")
    spec = long_spec(fraction=0.2)
    job_id = client.submit(spec)
    before = client.wait_final(job_id, timeout=60)
    runs = wait_until(lambda: executions(cluster), 30, what="the first delivery to be processed")

    enqueue_again(cluster.env, job_id)
    wait_until(lambda: executions(cluster) > runs, 30, what="the late duplicate to be processed")

    after = assert_one_complete_history(client, job_id, spec)
    assert after == before, "a late duplicate must leave the finished job exactly as it was"
