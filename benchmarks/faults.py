"""Fault injection, measured: each scenario of tests/faults/scenarios.py run a few times against
real processes (API, Celery workers, a throwaway PostgreSQL and Redis), then a table of
jobs lost, jobs duplicated, steps recomputed and the time from the fault to every job being final (median).

    .venv/bin/python benchmarks/faults.py [--trials 3] [--only redis,postgres]

A job is lost when it does not succeed within the timeout or its history misses a step of the
reference run; duplicated when a step is served twice, a value differs from the reference run
(two runs mixed) or its parameters differ. Re-runs: attempts beyond one per job (the price of
at-least-once execution). Steps recomputed: of the steps a re-run job had reported done at the fault,
those its re-run computed again (from its last checkpoint, or from step 0 without one), in all and as a
share of the jobs' steps. Recovery: from the fault to the last of its jobs being final.
The sweep row counts trials: one that never ran (or failed) is lost, a job beyond the sweep's
`trials` is duplicated, and its recovery is from the fault to the sweep's end.

Workers checkpoint every 0.5 s (tests/faults/harness.py) unless a row says otherwise."""
import argparse
import itertools
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults import scenarios  # noqa: E402
from tests.faults.checks import recorded_curve, reference_run, served_curve, steps_recomputed  # noqa: E402
from tests.faults.client import JobClient  # noqa: E402
from tests.faults.harness import Cluster, migrate  # noqa: E402
from tests.faults.servers import ThrowawayPostgres, ThrowawayRedis  # noqa: E402

FINAL_TIMEOUT_SECONDS = 120
TEMPLATE_DB = "bench_template"
LONG_JOB = 4.0  # times the fault tests' job length (about 3 s here): about 12 s
KILL_DELAY = random.Random(0)  # the 80% kills land 0-1 s after the progress write that passed 80%

SCENARIOS = {  # name -> (label, inject(cluster, client, servers) -> Fault[, environment of the service])
    "child": ("pool process SIGKILL", lambda c, j, s: scenarios.pool_child_killed(c, j)),
    "at80": ("pool SIGKILL at 80%, ckpt every 1 s",
             lambda c, j, s: scenarios.pool_child_killed_at(c, j, 0.8, LONG_JOB, KILL_DELAY.uniform(0, 1)),
             {"CHECKPOINT_SECONDS": 1}),
    "at80-none": ("pool SIGKILL at 80%, no checkpoints",
                  lambda c, j, s: scenarios.pool_child_killed_at(c, j, 0.8, LONG_JOB, KILL_DELAY.uniform(0, 1)),
                  {"CHECKPOINT_SECONDS": 0}),
    "worker": ("worker SIGKILL, other alive", lambda c, j, s: scenarios.whole_worker_killed(c, j)),
    "twice": ("job delivered twice", lambda c, j, s: scenarios.delivered_twice(c, j)),
    "sigterm": ("worker SIGTERM mid-job", lambda c, j, s: scenarios.sigterm_mid_job(c, j)),
    "redis": ("Redis restart", lambda c, j, s: scenarios.redis_restarted(c, j, s["redis"])),
    "postgres": ("PostgreSQL down 2 s",
                 lambda c, j, s: scenarios.postgres_restarted(c, j, s["postgres"], down_seconds=2)),
    "postgres-long": ("PostgreSQL down 7 s, jobs end",
                      lambda c, j, s: scenarios.postgres_restarted(c, j, s["postgres"], 7, fraction=0.3)),
    "sweep": ("worker SIGKILL mid-sweep", lambda c, j, s: scenarios.sweep_worker_killed(c, j)),
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


def run_trial(inject, servers, database, env):
    servers["postgres"].sql(f"CREATE DATABASE {database} TEMPLATE {TEMPLATE_DB}")
    servers["redis"].flush()
    log_dir = tempfile.mkdtemp(prefix="faults-bench-")
    cluster = Cluster(servers["postgres"].url(database), servers["redis"].url, log_dir, **env)
    try:
        client = JobClient(cluster.start_api().url)
        fault = inject(cluster, client, servers)
        wanted = missing = extra = 0
        if fault.sweep_id:  # the jobs are the sweep's trials; a missing trial is lost, one too many doubled
            sweep, jobs_in_all = scenarios.sweep_trials(client, fault, FINAL_TIMEOUT_SECONDS)
            wanted = sweep["trials"]
            missing, extra = max(0, wanted - len(fault.jobs)), max(0, jobs_in_all - wanted)
        for job_id, _ in fault.jobs:
            try:
                client.wait_final(job_id, timeout=FINAL_TIMEOUT_SECONDS)
            except TimeoutError:
                pass
        recovered_after = time.monotonic() - fault.injected_at
        verdicts = [judge(client, job_id, spec) for job_id, spec in fault.jobs]
        lost, duplicated, runs = (sum(column) for column in zip(*verdicts))
        recomputed, steps = steps_recomputed(cluster, client, fault), sum(spec["steps"] for _, spec in fault.jobs)
        return (max(wanted, len(fault.jobs)), lost + missing, duplicated + extra, runs - len(fault.jobs), recomputed,
                steps, recovered_after)
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
        print(f"| {'fault injected':<36} | trials | jobs | lost | duplicated | re-runs | steps recomputed "
              f"| recovery median (s) | max (s) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in args.only.split(","):
            label, inject, *env = SCENARIOS[name]
            results = [run_trial(inject, servers, next(databases), *env or [{}]) for _ in range(args.trials)]
            jobs, lost, duplicated, reruns, recomputed, steps = (sum(column) for column in list(zip(*results))[:6])
            times = [result[6] for result in results]
            recomputed = f"{recomputed} ({recomputed / steps:.0%})"
            print(f"| {label:<36} | {args.trials:>6} | {jobs:>4} | {lost:>4} | {duplicated:>10} | {reruns:>7} "
                  f"| {recomputed:>16} | {statistics.median(times):>19.1f} | {max(times):>7.1f} |", flush=True)
    finally:
        redis_server.stop()
        postgres.destroy()


if __name__ == "__main__":
    main()
