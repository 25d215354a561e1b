"""Load test (issue 9 item 10): N simulated users against the PostgreSQL + Redis stack with API keys required
and two Celery workers, each user its own owner, submitting small jobs, polling them, reading their histories
and listing jobs for a fixed time; then every submitted job must end exactly once.

    .venv/bin/pip install -r benchmarks/requirements.txt     # Locust (benchmarks only, never a runtime dependency)
    .venv/bin/python benchmarks/load.py [--users 20] [--seconds 120]

The stack is the compose file's commands run natively (tests/integration/processes.py, as benchmarks/service.py
runs them): migrate, the API on 127.0.0.1, two workers, on a throwaway database on the machine's PostgreSQL
(127.0.0.1:5432) and a redis-server of this run's own on a free port, so nobody else's broker is touched. Keys
are made with the CLI, one owner per user. The per-owner rate limit and active-job cap are raised far out of
reach (RATE_LIMIT_PER_MINUTE, MAX_ACTIVE_JOBS_PER_OWNER), so the numbers are the service's throughput, not
its limiter's; a user keeps at most --in-flight jobs queued or running, so the queue stays bounded as a
real client's would.

Locust runs as a library (Environment + LocalRunner) in this process rather than as its headless CLI: one
process orders everything (stack up, load, drain, checks, stack down), a request listener counts status
codes (5xx apart from other failures) and the users record every job id the API acknowledged straight into
the ledger the checks read, with no CSV or side files to parse; no web UI and no master/worker port is
opened, so the only traffic is to the API on 127.0.0.1. Locust monkey-patches the standard library with
gevent when imported, so it is imported first.

Checks after the load stops (the queue is drained first, at most --drain-seconds): every acknowledged job id
is in the database once, in a final status, claimed once (attempts = 1) with every step of its history
stored once, the workers' runs that ended a job add up to the number of jobs (a redelivery refused by the
claim is counted apart), and no job was seen by a user to leave a final status. Exit status 1 on any 5xx,
any request without a response, or any job lost or ended twice. Logs of the stack: var/load-logs/.
The last line is one JSON object with every number."""
try:
    import locust  # noqa: I001  first: it monkey-patches the standard library with gevent (see the docstring)
except ModuleNotFoundError:
    raise SystemExit("benchmarks/load.py needs Locust, a benchmark-only dependency: "
                     ".venv/bin/pip install -r benchmarks/requirements.txt")
from locust import FastHttpUser, between, task
from locust.env import Environment

import argparse
import collections
import itertools
import json
import os
import random
import re
import secrets
import shutil
import sys
import time
from pathlib import Path

import gevent

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402

from benchmarks.service import session_cpu_seconds  # noqa: E402
from tests.integration.processes import (Process, compose_command, compose_environment, free_port,  # noqa: E402
                                         fresh_postgres_database, own_redis_server, run_to_completion,
                                         wait_until_ready)

SEED = json.loads((REPO / "examples/seed.json").read_text())
FINAL = ("succeeded", "failed", "cancelled")
LOG_DIR = REPO / "var" / "load-logs"
STARTED = time.monotonic()
OUT_OF_REACH = {"RATE_LIMIT_PER_MINUTE": 10_000_000, "MAX_ACTIVE_JOBS_PER_OWNER": 100_000}
# Celery's line for every task run that returned (services/worker/tasks.py returns the job's final status,
# or 'not claimed' / 'superseded' for a run that did not own the job).
TASK_RETURNED = re.compile(r"Task train_job\[[^\]]+\] succeeded in \S+s: '([a-z ]+)'")
# `mgs keys create --owner NAME` (the README's way: python -m services.cli keys create ...) once per owner,
# in one process: twenty interpreters importing the CLI took ~2 minutes of this loaded 2-core machine.
MAKE_KEYS = "import sys; from services.cli import main; [main(['keys', 'create', '--owner', o]) for o in sys.argv[1:]]"
ENDPOINTS = (("POST", "/jobs"), ("GET", "/jobs/{id}"), ("GET", "/jobs/{id}/loss"), ("GET", "/jobs"))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--users", type=int, default=20, help="simulated users, each its own owner with its own key")
    parser.add_argument("--seconds", type=float, default=120, help="how long the users run")
    parser.add_argument("--steps", type=int, default=100, help="training steps of each submitted job")
    parser.add_argument("--in-flight", type=int, default=3, help="a user's jobs queued or running at most")
    parser.add_argument("--think", type=float, nargs=2, default=(0.1, 0.5), metavar=("MIN", "MAX"),
                        help="seconds a user waits between two requests (uniform)")
    parser.add_argument("--drain-seconds", type=float, default=300,
                        help="how long to wait after the load for every job to end")
    args = parser.parse_args()
    if args.users < 1 or args.seconds <= 0 or args.steps < 1 or args.in_flight < 1:
        parser.error("--users, --seconds, --steps and --in-flight must be positive")
    return args


# ---- what the users saw -----------------------------------------------------------------------------------

class Ledger:
    """Every job id the API acknowledged (201), the last status a user saw for it, status codes per endpoint,
    and jobs seen to leave a final status (a job that ended twice would)."""

    def __init__(self):
        self.acknowledged = {}  # job id -> owner
        self.seen = {}  # job id -> last status seen
        self.left_final = []  # (job id, final status seen, status seen after it)
        self.codes = collections.Counter()  # (method, name, status code) -> count; 0 = no response

    def observe(self, job_id, status):
        before = self.seen.get(job_id)
        if before in FINAL and status != before:
            self.left_final.append((job_id, before, status))
        self.seen[job_id] = status

    def on_request(self, request_type, name, response, exception, **_):
        code = getattr(response, "status_code", 0) or 0
        self.codes[(request_type, name, code)] += 1


LEDGER = Ledger()


class ServiceUser(FastHttpUser):
    """One owner: submits a small job while it has fewer than `in_flight` unfinished, polls those, reads
    histories of its jobs and lists them. Configured by `configure` before the run."""
    wait_time = between(0.1, 0.5)
    network_timeout = connection_timeout = 60.0
    keys: list = []
    spec: dict = {}
    in_flight = 3
    _numbers = itertools.count()

    def on_start(self):
        self.owner, key = self.keys[next(self._numbers) % len(self.keys)]
        self.headers = {"Authorization": f"Bearer {key}"}
        self.jobs, self.active = [], set()

    @task(2)
    def submit(self):
        if len(self.active) >= self.in_flight:
            return self.poll()
        spec = {**self.spec, "seed": random.randrange(2 ** 31)}
        response = self.client.post("/jobs", json=spec, headers=self.headers, name="/jobs")
        if response.status_code == 201:
            job_id = response.json()["id"]
            LEDGER.acknowledged[job_id] = self.owner
            LEDGER.observe(job_id, "queued")
            self.jobs.append(job_id)
            self.active.add(job_id)

    @task(4)
    def poll(self):
        if not self.jobs:
            return self.submit()
        job_id = random.choice(sorted(self.active) or self.jobs)
        response = self.client.get(f"/jobs/{job_id}", headers=self.headers, name="/jobs/{id}")
        if response.status_code == 200:
            self.saw(job_id, response.json()["status"])

    @task(2)
    def history(self):
        if not self.jobs:
            return self.submit()
        self.client.get(f"/jobs/{random.choice(self.jobs)}/loss", headers=self.headers, name="/jobs/{id}/loss")

    @task(2)
    def list_jobs(self):
        response = self.client.get("/jobs?limit=20", headers=self.headers, name="/jobs")
        if response.status_code == 200:
            for item in response.json()["items"]:
                self.saw(item["id"], item["status"])

    def saw(self, job_id, status):
        LEDGER.observe(job_id, status)
        if status in FINAL:
            self.active.discard(job_id)


def configure(args, keys):
    ServiceUser.keys, ServiceUser.in_flight = keys, args.in_flight
    ServiceUser.wait_time = between(*args.think)
    ServiceUser.spec = {**SEED, "steps": args.steps, "record": {"graph_svg": False}}


def run_load(base_url, users, seconds):
    """The users for `seconds` (started 50 a second: Locust warns that a faster ramp can misbehave); then each
    finishes the request it is in (stop_timeout), so that no job is created without its id reaching the ledger."""
    environment = Environment(user_classes=[ServiceUser], host=base_url, stop_timeout=30)
    environment.events.request.add_listener(LEDGER.on_request)
    runner = environment.create_local_runner()
    started = time.monotonic()
    runner.start(users, spawn_rate=min(users, 50))
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    return environment.stats, time.monotonic() - started


# ---- the stack --------------------------------------------------------------------------------------------

def start_stack(database_url, broker_url, users):
    """migrate, keys (the CLI's `keys create`, one owner per user), the API on 127.0.0.1 and two workers; returns
    (base URL, keys, processes)."""
    settings = dict(DATABASE_URL=database_url, BROKER_URL=broker_url, API_KEY_SECRET=secrets.token_hex(32),
                    **OUT_OF_REACH)
    env = compose_environment("api", **settings)
    run_to_completion(compose_command("migrate"), env)
    say("migrated; making one key per user with the CLI")
    owners = [f"load-{n:03d}" for n in range(users)]
    made = run_to_completion([sys.executable, "-c", MAKE_KEYS, *owners], env).stdout.split()
    assert len(made) == users, made
    keys = list(zip(owners, made))
    say("keys made; starting the API and 2 workers")
    port = free_port()
    api = Process("api", [a.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port))
                          for a in compose_command("api")], env, LOG_DIR)
    workers = [Process(f"worker{n}", [*compose_command("worker"), f"--hostname=load{n}@%h"],
                       compose_environment("worker", **settings), LOG_DIR) for n in (1, 2)]
    return f"http://127.0.0.1:{port}", keys, [api, *workers]


def cpu_seconds(processes):
    """CPU seconds so far of the API (its session: uvicorn), of both workers (their sessions: Celery and its
    pool child) and of this process (Locust); PostgreSQL's and Redis's are not told apart from others'."""
    own = os.times()
    return {"api": session_cpu_seconds(processes[0].popen.pid),
            "workers": sum(session_cpu_seconds(p.popen.pid) for p in processes[1:]),
            "locust": own.user + own.system}


def wait_for_workers(database_url, processes, count, timeout=120):
    """Both workers beating in the workers table (GET /workers reads the same rows)."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while connection.execute(text("SELECT count(*) FROM workers")).scalar() < count:
            for process in processes:
                assert process.popen.poll() is None, f"{process.name} exited:\n{process.log()}"
            assert time.monotonic() < deadline, f"fewer than {count} workers after {timeout} s"
            connection.rollback()
            time.sleep(0.5)
    engine.dispose()


# ---- after the load ---------------------------------------------------------------------------------------

def drain(engine, timeout):
    """Waits until every job is final (one query a second, at most `timeout`); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with engine.connect() as connection:
            open_jobs = connection.execute(text("SELECT count(*) FROM jobs WHERE status NOT IN "
                                                "('succeeded', 'failed', 'cancelled')")).scalar()
        if open_jobs == 0:
            break
        time.sleep(1)
    return time.monotonic() - started


def check_jobs(engine, steps, worker_logs):
    """Every acknowledged job once in the database, final, claimed once, its history whole; the task runs
    that ended a job add up to the jobs."""
    acknowledged = LEDGER.acknowledged
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT CAST(id AS TEXT), status, attempts, progress_step FROM jobs")).all()
        repeated_ids = connection.execute(text("SELECT count(*) FROM (SELECT id FROM jobs GROUP BY id "
                                               "HAVING count(*) > 1) AS repeated")).scalar()
        points = dict(connection.execute(text("SELECT CAST(job_id AS TEXT), sum(octet_length(steps)) / 8 "
                                               "FROM loss_chunks GROUP BY job_id")).all())
    jobs = {row[0]: row for row in rows}  # id -> (id, status, attempts, progress_step)
    statuses = collections.Counter(row[1] for row in rows)
    runs = collections.Counter(TASK_RETURNED.findall("".join(worker_logs)))
    ended_runs = sum(runs[status] for status in FINAL)
    return {
        "acknowledged": len(acknowledged),
        "in_database": len(jobs),
        "statuses": dict(statuses),
        "lost": sorted(set(acknowledged) - set(jobs)),
        "not_final": sorted(job_id for job_id in acknowledged if job_id in jobs and jobs[job_id][1] not in FINAL),
        "unacknowledged_rows": sorted(set(jobs) - set(acknowledged)),
        "repeated_ids": repeated_ids,
        "claimed_more_than_once": sorted(job_id for job_id, row in jobs.items() if row[2] != 1),
        "incomplete_history": sorted(job_id for job_id, (_, status, _, done) in jobs.items() if status == "succeeded"
                                     and (done, int(points.get(job_id, 0))) != (steps, steps)),
        "runs_that_ended_a_job": ended_runs,
        "runs_refused_by_the_claim": runs["not claimed"] + runs["superseded"],
        "seen_leaving_a_final_status": LEDGER.left_final,
    }


def problems(jobs, codes):
    found = []
    server_errors = sum(n for (_, _, code), n in codes.items() if code >= 500)
    no_response = sum(n for (_, _, code), n in codes.items() if code == 0)
    if server_errors:
        found.append(f"{server_errors} responses with a 5xx status")
    if no_response:
        found.append(f"{no_response} requests without a response")
    for key, what in (("lost", "acknowledged jobs not in the database"),
                      ("not_final", "jobs not final after the drain"),
                      ("claimed_more_than_once", "jobs claimed more than once"),
                      ("incomplete_history", "succeeded jobs without exactly one point per step"),
                      ("seen_leaving_a_final_status", "jobs seen leaving a final status")):
        if jobs[key]:
            found.append(f"{len(jobs[key])} {what}: {jobs[key][:5]}")
    if jobs["repeated_ids"]:
        found.append(f"{jobs['repeated_ids']} job ids stored more than once")
    if jobs["runs_that_ended_a_job"] != jobs["in_database"]:
        found.append(f"{jobs['runs_that_ended_a_job']} worker runs ended a job, for {jobs['in_database']} jobs")
    return found


# ---- the table --------------------------------------------------------------------------------------------

def endpoint_rows(stats, seconds, codes):
    rows = []
    for method, name in ENDPOINTS:
        entry = stats.get(name, method)
        rows.append(row(f"{method} {name}", entry, seconds,
                        sum(n for (m, nm, code), n in codes.items() if (m, nm) == (method, name) and code >= 500)))
    rows.append(row("all", stats.total, seconds, sum(n for (_, _, code), n in codes.items() if code >= 500)))
    return rows


def row(label, entry, seconds, server_errors):
    return {"endpoint": label, "requests": entry.num_requests, "per_second": entry.num_requests / seconds,
            "p50_ms": entry.get_response_time_percentile(0.5) if entry.num_requests else None,
            "p99_ms": entry.get_response_time_percentile(0.99) if entry.num_requests else None,
            "failures": entry.num_failures, "5xx": server_errors}


def print_table(rows, jobs, args, seconds, drained, cpu):
    header = ("endpoint", "requests", "req/s", "p50 ms", "p99 ms", "failures", "5xx")
    lines = [(r["endpoint"], str(r["requests"]), f"{r['per_second']:.1f}", _ms(r["p50_ms"]), _ms(r["p99_ms"]),
              str(r["failures"]), str(r["5xx"])) for r in rows]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    print(f"\n{args.users} users for {seconds:.0f} s (think {args.think[0]}-{args.think[1]} s, "
          f"<= {args.in_flight} jobs in flight each, {args.steps}-step jobs), PostgreSQL + Redis, 2 workers:")
    for line in [header, tuple("-" * w for w in widths), *lines]:
        print("| " + " | ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                for i, (cell, w) in enumerate(zip(line, widths))) + " |")
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(jobs["statuses"].items()))
    print(f"\nCPU during the load, in % of one core (of 2 shared): API {100 * cpu['api'] / seconds:.0f} % "
          f"({1000 * cpu['api'] / max(1, rows[-1]['requests']):.1f} ms per request), workers "
          f"{100 * cpu['workers'] / seconds:.0f} %, Locust {100 * cpu['locust'] / seconds:.0f} %; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"jobs: {jobs['acknowledged']} acknowledged, {jobs['in_database']} in the database ({statuses}); "
          f"queue drained {drained:.1f} s after the load; {len(jobs['lost'])} lost, "
          f"{len(jobs['claimed_more_than_once'])} claimed twice, {jobs['repeated_ids']} ids stored twice; "
          f"{jobs['runs_that_ended_a_job']} worker runs ended a job, "
          f"{jobs['runs_refused_by_the_claim']} redeliveries refused by the claim")


def say(message):
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def _ms(value):
    return "-" if value is None else f"{value:.0f}"


def main():
    args = parse_args()
    configure(args, [])
    if shutil.which("redis-server") is None:
        sys.exit("benchmarks/load.py needs redis-server (Debian: apt-get install redis-server)")
    if LOG_DIR.exists():
        shutil.rmtree(LOG_DIR)
    LOG_DIR.mkdir(parents=True)
    with fresh_postgres_database() as database_url, own_redis_server() as broker_url:
        say("throwaway database and redis-server up; migrating")
        base_url, keys, processes = start_stack(database_url, broker_url, args.users)
        engine = create_engine(database_url)
        try:
            wait_until_ready(base_url, processes, timeout=120)
            say("API ready; waiting for both workers")
            wait_for_workers(database_url, processes, 2)
            configure(args, keys)
            say(f"stack up ({base_url}); {args.users} users for {args.seconds:g} s")
            cpu_before = cpu_seconds(processes)
            stats, seconds = run_load(base_url, args.users, args.seconds)
            cpu = {name: after - cpu_before[name] for name, after in cpu_seconds(processes).items()}
            say(f"load done; draining the queue (at most {args.drain_seconds:g} s)")
            drained = drain(engine, args.drain_seconds)
        finally:
            for process in processes:
                process.stop()
        say("stack stopped; checking every job")
        jobs = check_jobs(engine, args.steps, [p.log() for p in processes[1:]])
        engine.dispose()
    rows = endpoint_rows(stats, seconds, LEDGER.codes)
    print_table(rows, jobs, args, seconds, drained, cpu)
    found = problems(jobs, LEDGER.codes)
    other = sorted({code for (_, _, code), n in LEDGER.codes.items() if code not in (0, 200, 201) and code < 500})
    if other:
        print(f"other status codes: {other} (counted as failures above)")
    for problem in found:
        print(f"PROBLEM: {problem}")
    print(json.dumps({"users": args.users, "seconds": seconds, "endpoints": rows, "drain_seconds": drained,
                      "cpu_seconds": cpu,
                      "status_codes": {f"{m} {n} {c}": k for (m, n, c), k in sorted(LEDGER.codes.items())},
                      "jobs": {k: (v if isinstance(v, (int, dict)) else len(v)) for k, v in jobs.items()},
                      "problems": found, "locust": locust.__version__}))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
