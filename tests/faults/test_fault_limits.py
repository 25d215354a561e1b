"""Jobs that must stop: over their time budget, or diverging (issue 5). Both fail with a readable
reason and keep the history they wrote so far."""
import math

import pytest

from .checks import assert_duplicate_free_prefix, reference_run
from .client import JobClient
from .specs import DIVERGING, long_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def client(cluster):
    cluster.start_worker("w1")
    return JobClient(cluster.start_api().url)


def test_job_over_its_time_budget_fails_and_keeps_its_history(client):
    spec = long_spec(steps=100_000, time_limit_seconds=2)  # 25x its budget
    job_id = client.submit(spec)

    job = client.wait_final(job_id, timeout=60)

    assert job["status"] == "failed", job
    assert "time limit exceeded" in job["error"]
    curve = assert_duplicate_free_prefix(client.loss_points(job_id), spec)
    every = spec["record"]["loss_every"]
    assert len(curve) > 10, "the steps done before the limit stay visible"
    assert [step for step, _ in curve] == list(range(0, curve[-1][0] + 1, every)), "no hole in the history kept"


def test_diverging_job_fails_at_its_step_and_keeps_its_history(client):
    history, _, divergence = reference_run(DIVERGING)
    assert divergence is not None, "the DIVERGING spec must diverge in the reference run"
    job_id = client.submit(DIVERGING)

    job = client.wait_final(job_id, timeout=60)

    assert job["status"] == "failed", job
    assert job["error"].startswith(f"diverged at step {divergence.step}"), job["error"]
    served = client.loss_points(job_id)
    finite = [(record.step, record.loss) for record in history if record.recorded and math.isfinite(record.loss)]
    assert [(p["step"], p["loss"]) for p in served if p["loss"] is not None] == finite
