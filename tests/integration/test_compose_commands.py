"""The compose stack's commands (migrate, API, two workers), run natively against the real PostgreSQL
and Redis of this machine: 20 jobs submitted at once all succeed, each with a complete,
duplicate-free history."""
import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from core.spec import JobSpec
from core.train import run_spec
from tests.integration.processes import (Process, compose_command, compose_environment, free_port, graph_when_drawn,
                                         fresh_postgres_database, run_to_completion,
                                         wait_for_final, wait_until_ready)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

JOBS = 20


@pytest.fixture
def stack(tmp_path, broker_url):
    """migrate, then the API and two workers, as `docker compose up --scale worker=2` starts them,
    on a fresh database and this session's own Redis."""
    with fresh_postgres_database() as database_url:
        env = compose_environment("api", DATABASE_URL=database_url, BROKER_URL=broker_url,
                                  API_KEY_SECRET=secrets.token_hex(32), RATE_LIMIT_PER_MINUTE=100_000)
        run_to_completion(compose_command("migrate"), env)
        key = run_to_completion([*compose_command("api")[:2], "services.cli", "keys", "create",
                                 "--owner", "itest"], env).stdout.strip()
        port = free_port()
        api_command = [arg.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port))
                       for arg in compose_command("api")]
        processes = [Process("api", api_command, env, tmp_path)]
        processes += [Process(f"worker{i}", [*compose_command("worker"), f"--hostname=worker{i}@%h"],
                              compose_environment("worker", **{k: env[k] for k in
                                                               ("DATABASE_URL", "BROKER_URL", "API_KEY_SECRET")}),
                              tmp_path) for i in (1, 2)]
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_ready(base_url, processes)
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                yield client, database_url, processes
        finally:
            for process in processes:
                process.stop()


def spec(i):
    """The seed example with different seeds and lengths, so the jobs are not all alike."""
    return {"steps": 150 + 10 * i, "seed": i, "record": {"graph_svg": i % 5 == 0}}


def test_twenty_jobs_at_once_all_succeed_with_complete_histories(stack):
    client, database_url, processes = stack
    assert client.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        responses = list(pool.map(lambda i: client.post("/jobs", json=spec(i)), range(JOBS)))
    assert [r.status_code for r in responses] == [201] * JOBS, [r.text for r in responses]
    job_ids = [r.json()["id"] for r in responses]

    final = wait_for_final(client, job_ids, timeout=180)
    assert {job["status"] for job in final.values()} == {"succeeded"}, final

    for i, job_id in enumerate(job_ids):
        steps = spec(i)["steps"]
        loss = client.get(f"/jobs/{job_id}/loss", params={"max_points": 10_000}).raise_for_status().json()
        assert [p["step"] for p in loss["points"]] == list(range(steps)), job_id
        assert client.get(f"/jobs/{job_id}/params").status_code == 200
    expected = [r.loss for r in run_spec(JobSpec.model_validate(spec(3))).history]
    loss = client.get(f"/jobs/{job_ids[3]}/loss", params={"max_points": 10_000}).json()
    assert [p["loss"] for p in loss["points"]] == expected  # training is deterministic
    svg = graph_when_drawn(client, job_ids[0])  # drawn after the results are saved
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")

    engine = create_engine(database_url)
    with engine.connect() as connection:
        chunks = connection.execute(text("SELECT job_id, steps FROM loss_chunks ORDER BY job_id, chunk")).all()
        attempts = connection.execute(text("SELECT max(attempts) FROM jobs")).scalar()
    engine.dispose()
    stored = {}
    for job_id, steps in chunks:
        stored.setdefault(job_id, []).extend(np.frombuffer(steps, "<i8").tolist())
    assert all(steps == sorted(set(steps)) for steps in stored.values())  # no step twice
    assert sum(len(steps) for steps in stored.values()) == sum(spec(i)["steps"] for i in range(JOBS))
    assert attempts == 1
    for worker in processes[1:]:
        assert "succeeded in" in worker.log(), f"{worker.name} ran no job:\n{worker.log()}"
