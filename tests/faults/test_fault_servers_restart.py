"""Broker and database restarts while jobs are queued and running (issue 5): every job still
reaches a final state, with no lost or doubled history."""
import pytest

from . import scenarios
from .checks import assert_one_complete_history
from .client import JobClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


@pytest.fixture
def client(cluster):
    return JobClient(cluster.start_api().url)


def test_redis_restart_with_jobs_queued_and_running(cluster, client, redis_server):
    fault = scenarios.redis_restarted(cluster, client, redis_server)

    assert "running" in fault.statuses_before and "queued" in fault.statuses_before, fault.statuses_before
    for job_id, spec in fault.jobs:
        client.wait_final(job_id, timeout=90)
        assert_one_complete_history(client, job_id, spec)


@pytest.mark.parametrize("down_seconds, fraction", [(2, 1.0), (7, 0.6)],
                         ids=["brief", "jobs-end-while-down-longer-than-stale"])
def test_postgres_restart_while_workers_write(cluster, client, postgres_server, down_seconds, fraction):
    """Down 7 s, short jobs end training while the database is away (their final write waits for
    it), and 7 s is past STALE_AFTER_SECONDS=5: a sweeper may hand a job to a new run while the
    old one is alive; the old run must then stop without writing."""
    fault = scenarios.postgres_restarted(cluster, client, postgres_server, down_seconds, fraction)

    assert "running" in fault.statuses_before, fault.statuses_before
    for job_id, spec in fault.jobs:
        job = client.wait_final(job_id, timeout=90)
        assert_one_complete_history(client, job_id, spec)
        assert fault.finished_after_the_fault(job)
