"""A sweep survives a killed worker: no trial lost, none started beyond `trials` (issue 10).

Real processes, as in test_fault_kills.py: the API, two Celery prefork workers, a throwaway
PostgreSQL and Redis; STALE_AFTER_SECONDS=5, SWEEP_SECONDS=1."""
import pytest

from . import scenarios
from .checks import assert_one_complete_history
from .client import JobClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def client(cluster):
    return JobClient(cluster.start_api().url)


def test_worker_killed_mid_sweep_loses_no_trial_and_adds_none(cluster, client):
    fault = scenarios.sweep_worker_killed(cluster, client)
    assert "running" in fault.statuses_before and "succeeded" in fault.statuses_before

    sweep, jobs_in_all = scenarios.sweep_trials(client, fault, timeout=120)
    trials = fault.jobs

    assert sweep["status"] == "finished", sweep
    assert sweep["trials_created"] == scenarios.SWEEP_TRIALS == len(trials) == jobs_in_all
    assert sweep["counts"]["succeeded"] == scenarios.SWEEP_TRIALS, sweep["counts"]
    assert sorted(t["params"]["seed"] for t in sweep["leaderboard"]) == list(range(scenarios.SWEEP_TRIALS))
    for job_id, spec in trials:  # every trial one complete, undoubled history, as an uninterrupted run
        assert_one_complete_history(client, job_id, spec)
    assert max(client.job(job_id)["attempts"] for job_id, _ in trials) == 2, "the killed trial ran again"
    assert "'succeeded'" in fault.workers["survivor"].log()
