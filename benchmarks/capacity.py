"""Capacity measurements for docs/scaling.md: what each component costs per job and per loss point on this
machine, with N simulated workers writing at once to a fresh PostgreSQL database.

A simulated worker is a process that does, through the store, exactly the database work of a real job and
nothing else (no training): create the job (the API's insert), claim it, write its history in batches of
POINTS_PER_BATCH points with the progress fields (record_progress, as a worker flushes), then the final
write (finish_job). Also measured: a Redis broker round trip per message (kombu publish + get), and the
API's read of a history through the store.

    .venv/bin/python benchmarks/capacity.py [--quick]

The last line is one JSON object."""
import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.processes import (compose_command, compose_environment, fresh_postgres_database,  # noqa: E402
                                         own_redis_server, run_to_completion)

STEPS_PER_JOB = 1000
POINTS_PER_BATCH = 200


def simulated_worker(database_url, seconds, results):
    os.environ["DATABASE_URL"] = database_url
    from core.spec import JobSpec
    from services.store import jobs
    from services.store.db import session_scope
    spec = JobSpec(steps=STEPS_PER_JOB, record={"graph_svg": False})
    timings = {"create": [], "claim": [], "batch": [], "finish": []}
    done, deadline = 0, time.monotonic() + seconds
    with session_scope() as session:
        while time.monotonic() < deadline:
            t = time.perf_counter()
            job = jobs.create_job(session, "load", spec)
            timings["create"].append(time.perf_counter() - t)
            t = time.perf_counter()
            token = jobs.claim_job(session, job.id, stale_after=60, max_attempts=3)
            timings["claim"].append(time.perf_counter() - t)
            for start in range(0, STEPS_PER_JOB, POINTS_PER_BATCH):
                points = [jobs.Point(s, 1.0 / (1 + s), 0.5, 0.1) for s in range(start, start + POINTS_PER_BATCH)]
                t = time.perf_counter()
                jobs.record_progress(session, job.id, token, points, start + POINTS_PER_BATCH, points[-1].loss)
                timings["batch"].append(time.perf_counter() - t)
            t = time.perf_counter()
            jobs.finish_job(session, job.id, token, "succeeded", [], STEPS_PER_JOB, {"final_loss": 0.001},
                            '{"params": []}')
            timings["finish"].append(time.perf_counter() - t)
            done += 1
    results.put((done, {k: statistics.median(v) * 1000 for k, v in timings.items() if v}))


def load(database_url, n_workers, seconds):
    results = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=simulated_worker, args=(database_url, seconds, results))
                 for _ in range(n_workers)]
    started = time.perf_counter()
    for p in processes:
        p.start()
    outcomes = [results.get() for _ in processes]
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - started
    jobs_done = sum(done for done, _ in outcomes)
    medians = {k: statistics.median(o[k] for _, o in outcomes) for k in outcomes[0][1]}
    return {"workers": n_workers, "jobs_per_second": jobs_done / elapsed,
            "points_per_second": jobs_done * STEPS_PER_JOB / elapsed, "median_ms": medians}


def redis_round_trip(broker_url, messages):
    from kombu import Connection
    with Connection(broker_url) as connection:
        queue = connection.SimpleQueue("capacity")
        started = time.perf_counter()
        for i in range(messages):
            queue.put({"job": i})
        put = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(messages):
            queue.get(timeout=5).ack()
        get = time.perf_counter() - started
        queue.close()
    return {"publish_per_second": messages / put, "consume_per_second": messages / get}


def read_history(database_url, size, repeats):
    os.environ["DATABASE_URL"] = database_url
    from core.spec import JobSpec
    from services.config import get_settings
    from services.store import jobs
    from services.store.db import session_scope
    get_settings.cache_clear()
    with session_scope() as session:
        job = jobs.create_job(session, "load", JobSpec(steps=size))
        token = jobs.claim_job(session, job.id, stale_after=60, max_attempts=3)
        jobs.finish_job(session, job.id, token, "succeeded", [jobs.Point(s, 1.0 / (1 + s)) for s in range(size)],
                        size, {"final_loss": 0.1}, None)
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            assert len(jobs.get_loss_points(session, job.id)) == size
            samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    seconds, counts = (3, (1, 4)) if quick else (10, (1, 2, 4, 8, 16))
    out = {"steps_per_job": STEPS_PER_JOB, "points_per_batch": POINTS_PER_BATCH, "seconds": seconds}
    with fresh_postgres_database() as database_url, own_redis_server() as broker_url:
        run_to_completion(compose_command("migrate"), compose_environment("migrate", DATABASE_URL=database_url))
        out["load"] = [load(database_url, n, seconds) for n in counts]
        out["read_100k_history_ms"] = read_history(database_url, 100_000, 5)
        out["redis"] = redis_round_trip(broker_url, 2000 if quick else 10_000)
    print(f"{'workers':>8} {'jobs/s':>8} {'points/s':>10} " + " ".join(f"{k + ' ms':>10}" for k in out["load"][0]["median_ms"]))
    for row in out["load"]:
        print(f"{row['workers']:>8} {row['jobs_per_second']:>8.1f} {row['points_per_second']:>10.0f} "
              + " ".join(f"{v:>10.2f}" for v in row["median_ms"].values()))
    print(f"read a 100,000-point history through the store: {out['read_100k_history_ms']:.1f} ms; "
          f"Redis: {out['redis']['publish_per_second']:.0f} publishes/s, {out['redis']['consume_per_second']:.0f} gets/s "
          f"(one client)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
