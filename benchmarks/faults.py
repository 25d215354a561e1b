"""Fault injection, measured: each scenario of tests/faults/scenarios.py run a few times against
real processes (API, Celery workers, a throwaway PostgreSQL and Redis), then a table of
jobs lost, jobs duplicated and the time from the fault to every job being final (median).

    .venv/bin/python benchmarks/faults.py [--trials 3] [--only redis,postgres]

A job is lost when it does not succeed within the timeout or its history misses a step of the
reference run; duplicated when a step is served twice, a value differs from the reference run
(two runs mixed) or its parameters differ. Re-runs: attempts beyond one per job (the price of
at-least-once execution). Recovery: from the fault to the last of its jobs being final."""
import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults import scenarios  # noqa: E402
from tests.faults.checks import recorded_curve, reference_run, served_curve  # noqa: E402
from tests.faults.client import JobClient  # noqa: E402
from tests.faults.harness import Cluster, migrate  # noqa: E402
from tests.faults.servers import ThrowawayPostgres, ThrowawayRedis  # noqa: E402

FINAL_TIMEOUT_SECONDS = 120
TEMPLATE_DB = "bench_template"

SCENARIOS = {  # name -> (label, inject(cluster, client, servers) -> Fault)
    "child": ("pool process SIGKILL", lambda c, j, s: scenarios.pool_child_killed(c, j)),
    "worker": ("worker SIGKILL, other alive", lambda c, j, s: scenarios.whole_worker_killed(c, j)),
    "twice": ("job delivered twice", lambda c, j, s: scenarios.delivered_twice(c, j)),
    "sigterm": ("worker SIGTERM mid-job", lambda c, j, s: scenarios.sigterm_mid_job(c, j)),
    "redis": ("Redis restart", lambda c, j, s: scenarios.redis_restarted(c, j, s["redis"])),
    "postgres": ("PostgreSQL down 2 s",
                 lambda c, j, s: scenarios.postgres_restarted(c, j, s["postgres"], down_seconds=2)),
    "postgres-long": ("PostgreSQL down 7 s, jobs end",
                      lambda c, j, s: scenarios.postgres_restarted(c, j, s["postgres"], 7, fraction=0.3)),
}


def judge(client, job_id, spec):
    """(lost, duplicated, runs) for one job that reached a final state (or not)."""
    history, params, _ = reference_run(spec)
    expected = recorded_curve(history)
    job = client.job(job_id)
    if job["status"] != "succeeded":
        return True, False, job["attempts"]
    curve = served_curve(client.loss_points(job_id))
    steps = [step for step, _ in curve]
    lost = not set(step for step, _ in expected) <= set(steps)
    duplicated = (len(steps) != len(set(steps)) or not set(curve) <= set(expected)
                  or client.params(job_id) != params)
    return lost, duplicated, job["attempts"]


def run_trial(inject, servers, database):
    servers["postgres"].sql(f"CREATE DATABASE {database} TEMPLATE {TEMPLATE_DB}")
    servers["redis"].flush()
    log_dir = tempfile.mkdtemp(prefix="faults-bench-")
    cluster = Cluster(servers["postgres"].url(database), servers["redis"].url, log_dir)
    try:
        client = JobClient(cluster.start_api().url)
        fault = inject(cluster, client, servers)
        for job_id, _ in fault.jobs:
            try:
                client.wait_final(job_id, timeout=FINAL_TIMEOUT_SECONDS)
            except TimeoutError:
                pass
        recovered_after = time.monotonic() - fault.injected_at
        verdicts = [judge(client, job_id, spec) for job_id, spec in fault.jobs]
        lost, duplicated, runs = (sum(column) for column in zip(*verdicts))
        return len(fault.jobs), lost, duplicated, runs - len(fault.jobs), recovered_after
    finally:
        cluster.cleanup()
        shutil.rmtree(log_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated, of {list(SCENARIOS)}")
    args = parser.parse_args()

    postgres, redis_server = ThrowawayPostgres().init().start(), ThrowawayRedis().start()
    servers = {"postgres": postgres, "redis": redis_server}
    databases = (f"bench_{n}" for n in itertools.count())
    try:
        postgres.sql(f"CREATE DATABASE {TEMPLATE_DB}")
        migrate(postgres.url(TEMPLATE_DB))
        print(f"| {'fault injected':<30} | trials | jobs | lost | duplicated | re-runs "
              f"| recovery median (s) | max (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.only.split(","):
            label, inject = SCENARIOS[name]
            results = [run_trial(inject, servers, next(databases)) for _ in range(args.trials)]
            jobs, lost, duplicated, reruns = (sum(column) for column in list(zip(*results))[:4])
            times = [result[4] for result in results]
            print(f"| {label:<30} | {args.trials:>6} | {jobs:>4} | {lost:>4} | {duplicated:>10} | {reruns:>7} "
                  f"| {statistics.median(times):>19.1f} | {max(times):>7.1f} |", flush=True)
    finally:
        redis_server.stop()
        postgres.destroy()


if __name__ == "__main__":
    main()
