"""The service's speed against the real API, Celery workers, Redis and PostgreSQL of this machine,
started with the compose stack's own commands (see tests/integration/processes.py):

  1. latency from POST /jobs to `succeeded` for the seed example (median and p95 over 50 jobs,
     submitted one after another, with an idle worker);
  2. jobs per second for 200 small jobs submitted at once, with one and with two worker processes;
  3. the time to serve a 10,000-point loss history (GET /jobs/{id}/loss), whole and downsampled.

    .venv/bin/python benchmarks/service.py [--quick]

The last line is one JSON object."""
import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from tests.integration.processes import (Process, compose_command, compose_environment,  # noqa: E402
                                         free_port, fresh_postgres_database, own_redis_server,
                                         run_to_completion, wait_for_final, wait_until_ready)

SEED = json.loads((Path(__file__).resolve().parents[1] / "examples/seed.json").read_text())
SMALL = {**SEED, "steps": 20, "record": {"graph_svg": False}}
LONG = {**SEED, "steps": 10_000, "record": {"graph_svg": False}}
POLL_SECONDS = 0.01


def main():
    args = parse_args()
    latency_jobs, throughput_jobs, serve_repeats = (10, 40, 5) if args.quick else (50, 200, 20)
    with fresh_postgres_database() as database_url, own_redis_server() as broker_url, \
            tempfile.TemporaryDirectory() as logs:
        env = compose_environment("api", DATABASE_URL=database_url, BROKER_URL=broker_url,
                                  API_KEY_SECRET=secrets.token_hex(32), RATE_LIMIT_PER_MINUTE=10_000_000,
                                  MAX_ACTIVE_JOBS_PER_OWNER=100_000)
        run_to_completion(compose_command("migrate"), env)
        key = run_to_completion([*compose_command("api")[:2], "services.cli", "keys", "create", "--owner", "bench"],
                                env).stdout.strip()
        port = free_port()
        api = Process("api", [a.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port))
                              for a in compose_command("api")], env, Path(logs))
        workers = []
        base_url = f"http://127.0.0.1:{port}"
        try:
            workers.append(start_worker(1, env, logs))
            wait_until_ready(base_url, [api, *workers])
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                results = {"latency_seconds": latency(client, latency_jobs)}
                results["jobs_per_second_1_worker"] = throughput(client, throughput_jobs)
                workers.append(start_worker(2, env, logs))
                time.sleep(3)  # the second worker connects
                results["jobs_per_second_2_workers"] = throughput(client, throughput_jobs)
                results["serve_10k_loss_ms"] = serve_loss_history(client, serve_repeats)
        finally:
            for process in [api, *workers]:
                process.stop()
    report(results, latency_jobs, throughput_jobs)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs, for a smoke run")
    return parser.parse_args()


def start_worker(n, env, logs):
    return Process(f"worker{n}", [*compose_command("worker"), f"--hostname=bench{n}@%h"], env, Path(logs))


def latency(client, jobs):
    seconds = []
    for _ in range(jobs):
        started = time.perf_counter()
        job_id = client.post("/jobs", json=SEED).raise_for_status().json()["id"]
        while (status := client.get(f"/jobs/{job_id}").json()["status"]) in ("queued", "running"):
            time.sleep(POLL_SECONDS)
        assert status == "succeeded", status
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {"median": statistics.median(seconds), "p95": seconds[max(0, round(0.95 * len(seconds)) - 1)],
            "jobs": jobs}


def throughput(client, jobs):
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        job_ids = list(pool.map(lambda _: client.post("/jobs", json=SMALL).raise_for_status().json()["id"],
                                range(jobs)))
    final = wait_for_final(client, job_ids, timeout=600)
    elapsed = time.perf_counter() - started
    assert {job["status"] for job in final.values()} == {"succeeded"}
    return jobs / elapsed


def serve_loss_history(client, repeats):
    job_id = client.post("/jobs", json=LONG).raise_for_status().json()["id"]
    wait_for_final(client, [job_id], timeout=300)
    timings = {}
    for label, max_points in (("whole", 10_000), ("downsampled_to_1000", 1000)):
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            points = client.get(f"/jobs/{job_id}/loss", params={"max_points": max_points}).raise_for_status()
            samples.append(time.perf_counter() - started)
        assert len(points.json()["points"]) <= max_points
        timings[label] = 1000 * statistics.median(samples)
    return timings


def report(results, latency_jobs, throughput_jobs):
    lat, serve = results["latency_seconds"], results["serve_10k_loss_ms"]
    one, two = results["jobs_per_second_1_worker"], results["jobs_per_second_2_workers"]
    print(f"POST /jobs -> succeeded, seed example ({latency_jobs} jobs): "
          f"median {lat['median'] * 1000:.0f} ms, p95 {lat['p95'] * 1000:.0f} ms")
    print(f"{throughput_jobs} small jobs at once: 1 worker {one:.1f} jobs/s | 2 workers {two:.1f} jobs/s "
          f"| ratio {two / one:.2f}x")
    print(f"GET a 10,000-point loss history: whole {serve['whole']:.0f} ms | "
          f"downsampled to 1,000 points {serve['downsampled_to_1000']:.0f} ms (medians)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
