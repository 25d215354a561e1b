"""The embedded default (`make run`) loses power mid-job: every process of it is SIGKILLed at once.
Its SQLite broker never redelivers the job's message, so only the job table can bring the job
back: after a restart the sweeper re-runs it and it ends with one complete history."""
import sys

import pytest

from .checks import assert_one_complete_history
from .client import JobClient
from .harness import RELIABILITY_ENV, ServiceProcess
from .servers import free_port
from .specs import long_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def start_embedded(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "PORT": str(port),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
           "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}", **RELIABILITY_ENV}
    started = []

    def start():
        # `make run`: the API and a Celery worker as its children, all in one process group
        service = ServiceProcess(f"embedded{len(started)}", [sys.executable, "-m", "services.embedded"],
                                 env, tmp_path).start()
        started.append(service)
        return service.wait_healthy(start.url)

    start.url = f"http://127.0.0.1:{port}"
    try:
        yield start
    finally:
        for service in started:
            service.cleanup()
        print("\n".join(f"===== {s.name} =====\n{s.log()[-4000:]}" for s in started))


def test_power_loss_mid_job_then_restart_finishes_the_job(start_embedded):
    first = start_embedded()
    client = JobClient(start_embedded.url)
    spec = long_spec()
    job_id = client.submit(spec)
    client.wait_running(job_id, timeout=30, min_step=100)

    first.cleanup()  # SIGKILL to the whole process group: main, API, worker and its pool process
    start_embedded()

    job = client.wait_final(job_id, timeout=60)
    assert job["attempts"] == 2, job
    assert_one_complete_history(client, job_id, spec)
