"""The embedded default, started the way the README starts it (`make run` = `python -m services.embedded`),
used with the README's curl example, stopped and started again."""
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.spec import JobSpec
from tests.integration.processes import REPO, Process, free_port, graph_when_drawn, wait_for_final, wait_until_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """Starts the embedded service on a free port with its files under tmp_path; call it again to restart."""
    port = free_port()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "PORT": str(port),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
           "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
           "REDELIVER_QUEUED_AFTER_SECONDS": "1"}
    started = []

    def start():
        process = Process(f"embedded{len(started)}", [sys.executable, "-m", "services.embedded"], env, tmp_path)
        started.append(process)
        wait_until_ready(f"http://127.0.0.1:{port}", [process])
        return process, f"http://127.0.0.1:{port}"

    start.env = env
    yield start
    for process in started:
        process.stop()


def curl_seed_example(base_url):
    """The README's curl example."""
    if shutil.which("curl") is None:
        return httpx.post(f"{base_url}/jobs", content=(REPO / "examples/seed.json").read_bytes(),
                          headers={"Content-Type": "application/json"}).json()["id"]
    done = subprocess.run(["curl", "-s", "-X", "POST", f"{base_url}/jobs", "-H", "Content-Type: application/json",
                           "-d", "@examples/seed.json"], cwd=REPO, capture_output=True, text=True, check=True)
    return httpx.Response(200, content=done.stdout).json()["id"]


def test_the_readme_example_finishes_within_seconds(embedded):
    process, base_url = embedded()
    assert "without API keys, on 127.0.0.1 only" in process.log()
    job_id = curl_seed_example(base_url)
    with httpx.Client(base_url=base_url) as client:
        started = time.monotonic()
        [job] = wait_for_final(client, [job_id], timeout=30).values()
        assert job["status"] == "succeeded" and time.monotonic() - started < 15
        loss = client.get(f"/jobs/{job_id}/loss", params={"max_points": 1000}).json()
        assert [p["step"] for p in loss["points"]] == list(range(100))
        svg = graph_when_drawn(client, job_id)  # drawn after the results are saved
        assert svg.status_code == 200 and "<svg" in svg.text
        assert len(client.get("/workers").json()) == 1  # the worker process beats into the workers table
        assert "mgs_workers_live 1.0" in client.get("/metrics").text
        phases = client.get(f"/jobs/{job_id}").json()["timings"]["phases_ms"]
        assert {"queue_wait", "claim", "steps", "graph", "save"} <= set(phases)
    assert process.stop() == 0
    assert "Warm shutdown" in process.log()


def test_a_job_queued_before_a_restart_runs_after_it(embedded, monkeypatch):
    process, _ = embedded()
    process.stop()
    # The API committed this job and died before the broker got it: only the job table knows it.
    for name in ("DATABASE_URL", "BROKER_URL"):
        monkeypatch.setenv(name, embedded.env[name])
    from services.config import get_settings
    from services.store import jobs
    from services.store.db import session_scope
    get_settings.cache_clear()
    with session_scope() as session:
        job_id = str(jobs.create_job(session, "local", JobSpec(steps=20)).id)
    get_settings.cache_clear()

    _, base_url = embedded()
    with httpx.Client(base_url=base_url) as client:
        [job] = wait_for_final(client, [job_id], timeout=30).values()
    assert job["status"] == "succeeded"


def test_it_refuses_to_serve_open_beyond_loopback(embedded):
    done = subprocess.run([sys.executable, "-m", "services.embedded"], cwd=REPO, capture_output=True, text=True,
                          env={**embedded.env, "HOST": "0.0.0.0"}, timeout=60)
    assert done.returncode != 0 and "without API keys" in done.stderr


def test_ctrl_c_stops_the_api_and_the_worker(embedded):
    process, base_url = embedded()
    children = [Path(f"/proc/{pid}") for pid in
                Path(f"/proc/{process.popen.pid}/task/{process.popen.pid}/children").read_text().split()]
    assert len(children) == 2  # uvicorn and the Celery worker
    process.popen.send_signal(signal.SIGINT)
    assert process.popen.wait(timeout=40) == 0
    assert not any(child.exists() for child in children)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/healthz")


def test_the_start_message_names_the_graph_renderer(monkeypatch, capsys):
    from core import graph
    from services import embedded
    from services.config import get_settings
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    embedded.announce(get_settings())
    assert "graphs   drawn by Graphviz compiled to WebAssembly" in capsys.readouterr().out
    monkeypatch.setattr(graph.shutil, "which", lambda name: "/usr/bin/dot")
    embedded.announce(get_settings())
    assert "graphs   drawn by the system's Graphviz `dot`" in capsys.readouterr().out
