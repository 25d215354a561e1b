"""The service's speed, every goal of issue 12 measured side by side in one run, printed as ONE table.

  1. the embedded default, started as `make run` starts it (SQLite, the server-less broker, one worker):
     POST /jobs -> succeeded for the seed example with and without its graph; its CPU use at idle;
     serving 10,000-, 100,000- and 1,000,000-point histories; the same 10,000 points read from MLflow 3
     (SQLite store) side by side, measured as ours is (see history_vs_mlflow), where MLflow is installed
     (benchmarks/requirements-mlflow.txt; MLFLOW_PYTHON may name an interpreter that has it);
  2. the compose stack's commands run natively (PostgreSQL, Redis, API, workers; tests/integration/processes.py):
     the same latencies, and 200 small jobs submitted at once to two workers, with each job's fixed cost
     per phase (GET /jobs/{id} timings.phases_ms: everything but the training steps and the queue wait),
     plus the final write's part no phase holds (the workers' mgs_job_final_write_seconds; see throughput).

    .venv/bin/python benchmarks/service.py [--quick] [--only serve|throughput ...]

The last line is one JSON object with every number."""
import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import orjson  # noqa: E402

from tests.integration.processes import (Process, compose_command, compose_environment,  # noqa: E402
                                         free_port, fresh_postgres_database, own_redis_server,
                                         run_to_completion, wait_until_ready)

SEED = json.loads((REPO / "examples/seed.json").read_text())
SEED_NO_GRAPH = {**SEED, "record": {"graph_svg": False}}
SMALL = {**SEED, "steps": 20, "record": {"graph_svg": False}}
POLL_SECONDS = 0.005
FINAL = ("succeeded", "failed", "cancelled")
HISTORY_SIZES = (10_000, 100_000, 1_000_000)
IDLE_SECONDS = 10
AFTER_IDLE_JOBS, AFTER_IDLE_SECONDS = 5, 3  # jobs posted after the worker has been idle (its broker is watched
                                            # more lazily then: see services.queue.SQLiteTransport)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def main():
    args = parse_args()
    n_latency, n_throughput, repeats = (8, 60, 5) if args.quick else (30, 200, 15)
    mlflow_reads = args.mlflow_reads or (10 if args.quick else 30)
    parts = set(args.only or PARTS)
    results = {"load_average": {"start": os.getloadavg()[0]}}  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if parts & {"latency", "idle", "serve"}:
            results["embedded"] = embedded(scratch, n_latency, repeats, parts, mlflow_reads)
        if parts & {"latency", "throughput"}:
            results["stack"] = stack(scratch, n_latency, n_throughput, parts)
    results["load_average"]["end"] = os.getloadavg()[0]
    print(f"load average (1 min): {results['load_average']['start']:.1f} at the start, "
          f"{results['load_average']['end']:.1f} at the end")
    print_table(results, n_latency, n_throughput)
    print(json.dumps(results))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs and repeats, for a smoke run")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="measure only these rows (default: all): the "
                        "seed-job latencies, the embedded idle CPU, serving histories, the 200-job throughput")
    parser.add_argument("--mlflow-reads", type=int, metavar="N", help="reads of each side in the 10,000-point "
                        "history comparison with MLflow (default 30, 10 with --quick; 2 more each to warm up)")
    return parser.parse_args()


# ---- the embedded default ---------------------------------------------------------------------------------

PARTS = ("latency", "idle", "serve", "throughput")


def embedded(scratch, n_latency, repeats, parts=PARTS, mlflow_reads=10):
    port = free_port()
    database = f"sqlite:///{scratch / 'service.db'}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", DATABASE_URL=database, BROKER_URL=f"sqla+sqlite:///{scratch / 'broker.db'}",
               PORT=str(port), RATE_LIMIT_PER_MINUTE="10000000", MAX_ACTIVE_JOBS_PER_OWNER="100000")
    process = Process("embedded", [sys.executable, "-m", "services.embedded"], env, scratch)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, [process], timeout=120)
        with httpx.Client(base_url=base_url, timeout=60) as client:
            out = {}
            if "latency" in parts:
                latency(client, SEED, 3)  # warm up: first imports, first compile, the graph renderer
                out.update(latency_graph=latency(client, SEED, n_latency),
                           latency_no_graph=latency(client, SEED_NO_GRAPH, n_latency))
            if "idle" in parts:
                time.sleep(2)  # settle
                out["idle_cpu_percent"] = idle_cpu_percent(process.popen.pid, IDLE_SECONDS)
                out["latency_after_idle"] = latency(client, SEED_NO_GRAPH, AFTER_IDLE_JOBS,
                                                    idle_before=AFTER_IDLE_SECONDS)
            if "serve" in parts:
                histories = {size: write_history(database, size) for size in HISTORY_SIZES}
                api = api_process(process.popen.pid)
                served = {"10k_whole": serve(client, histories[10_000], 10_000, repeats, api),
                          "100k_range_to_1000": serve(client, histories[100_000], 1000, repeats, api),
                          "100k_range_to_10000": serve(client, histories[100_000], 10_000, repeats, api),
                          "1m_range_to_1000": serve(client, histories[1_000_000], 1000, repeats, api)}
                served["100k_events"] = stream_events(client, histories[100_000], 100_000, repeats, api)
                out["serve_ms"] = {name: wall for name, (wall, _, _) in served.items()}
                out["serve_api_cpu_ms"] = {name: cpu for name, (_, cpu, _) in served.items()}
                out["serve_client_cpu_ms"] = {name: cpu for name, (_, _, cpu) in served.items()}
                out["vs_mlflow"] = history_vs_mlflow(client, histories[10_000], api, scratch, mlflow_reads)
    finally:
        process.stop()
    return out


def idle_cpu_percent(session_id, seconds):
    """CPU time of every process of the service's session over `seconds` of idling, in % of one core."""
    before = session_cpu_seconds(session_id)
    time.sleep(seconds)
    return 100 * (session_cpu_seconds(session_id) - before) / seconds


def session_cpu_seconds(session_id):
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # field 6 of stat (session), counted after the command name
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def api_process(session_id):
    """The pid of the service session's uvicorn (the API), whose CPU time the history rows report too."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            stat = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
            command = cmdline.read_bytes()
        except OSError:
            continue
        if int(stat[3]) == session_id and b"uvicorn" in command:
            return int(cmdline.parent.name)
    raise LookupError("no uvicorn process in the service's session")


def process_cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def write_history(database_url, size):
    """A succeeded job with a `size`-point history, written through the store as a worker writes it
    (batches of 200 points per record_progress), so the benchmark does not train for minutes."""
    code = f"""
import os, sys
os.environ["DATABASE_URL"] = {database_url!r}
sys.path.insert(0, {str(REPO)!r})
from core.spec import JobSpec
from services.store import jobs
from services.store.db import session_scope
with session_scope() as session:
    job = jobs.create_job(session, "local", JobSpec(steps={size}, record={{"graph_svg": False}}))
    token = jobs.claim_job(session, job.id, stale_after=60, max_attempts=3)
    points = [jobs.Point(s, 1.0 / (1 + s) + (s % 7) * 1e-3, None, 0.1) for s in range({size})]
    for start in range(0, {size}, 10_000):  # beating as a worker does, or the sweeper hands the job to one
        jobs.heartbeat(session, job.id, token)
        jobs.record_progress(session, job.id, token, points[start:start + 10_000], start + 10_000, 0.5)
    jobs.finish_job(session, job.id, token, "succeeded", [], {size}, {{"final_loss": 0.5}}, None)
print(job.id)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"writing a {size}-point history failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def serve(client, job_id, max_points, repeats, api_pid):
    """(median wall ms, mean CPU ms of the API process, median CPU ms of this client: the request and its JSON
    parsed with orjson, as in history_vs_mlflow) per GET /jobs/{id}/loss. The CPU times do not grow with the
    machine's load as the wall time does (the API's CPU clock ticks every 10 ms: hence a mean of all)."""
    samples, client_cpu = [], []
    cpu_before = process_cpu_seconds(api_pid)
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        body = orjson.loads(client.get(f"/jobs/{job_id}/loss", params={"max_points": max_points})
                            .raise_for_status().content)
        samples.append(time.perf_counter() - started)
        client_cpu.append(time.process_time() - started_cpu)
    cpu = (process_cpu_seconds(api_pid) - cpu_before) / repeats
    assert len(body["points"]) <= max_points
    return 1000 * statistics.median(samples), 1000 * cpu, 1000 * statistics.median(client_cpu)


def stream_events(client, job_id, size, repeats, api_pid):
    """(median wall ms, mean API CPU ms, median client CPU ms) to read a finished job's whole history from
    GET /jobs/{id}/events (the dashboard's live feed: events of up to 2,000 points, then `end`)."""
    samples, client_cpu = [], []
    cpu_before = process_cpu_seconds(api_pid)
    for _ in range(max(1, repeats // 3)):
        started, started_cpu = time.perf_counter(), time.process_time()
        text = client.get(f"/jobs/{job_id}/events").raise_for_status().text
        samples.append(time.perf_counter() - started)
        client_cpu.append(time.process_time() - started_cpu)
    cpu = (process_cpu_seconds(api_pid) - cpu_before) / max(1, repeats // 3)
    points = sum(len(json.loads(line[len("data: "):])["points"]) for line in text.splitlines()
                 if line.startswith("data: "))
    assert points == size, points
    return 1000 * statistics.median(samples), 1000 * cpu, 1000 * statistics.median(client_cpu)


def history_vs_mlflow(client, job_id, api_pid, scratch, reads):
    """The same 10,000-point history read from our embedded API and from MLflow 3, measured the same way on
    both sides, their reads taking turns so that both see the same load (the machine is shared):

      - ours: GET /jobs/{id}/loss?max_points=10000 (the whole history) from the embedded API (SQLite);
      - MLflow's tracking server (`mlflow server`, SQLite store, one uvicorn worker, its job runner off):
        GET /api/2.0/mlflow/metrics/get-history, the REST call behind its get-history;
      - MLflow without a server: its Python client's get_metric_history on the SQLite file, in-process (its
        best case: no HTTP, no JSON), in a process of its own that reads once each time it is asked.

    An HTTP read is timed in this process from the request to its full answer decoded by the same decoder
    (orjson, for both sides): wall time and this process's CPU time; the server's CPU time (its process tree,
    from /proc) is taken around each read. MLflow's in-process read is timed inside its process. Every number
    is the median of `reads` reads (server CPU: the mean, as the kernel counts it in 10 ms ticks), after 2
    reads each to warm up. None where MLflow is not installed (MLFLOW_PYTHON names an interpreter that has it);
    {"failed": why} where MLflow's side failed (the traceback on stderr), so that the rest of the run goes on."""
    python = os.environ.get("MLFLOW_PYTHON", sys.executable)
    if subprocess.run([python, "-c", "import mlflow"], capture_output=True).returncode != 0:
        return None
    try:
        return compare_reads(client, job_id, api_pid, scratch, reads, python)
    except Exception as e:  # noqa: BLE001 - MLflow's server or client, not ours: report it, measure the rest
        traceback.print_exc()
        return {"failed": f"{type(e).__name__}: {str(e)[:200]}"}


def compare_reads(client, job_id, api_pid, scratch, reads, python):
    size = 10_000

    def ours():
        body = client.get(f"/jobs/{job_id}/loss", params={"max_points": size}).raise_for_status().content
        assert len(orjson.loads(body)["points"]) == size

    with mlflow_server(python, scratch, size) as (server, server_pid, run_id), \
            mlflow_in_process(python, scratch, size) as read_in_process:
        def theirs():
            body = server.get("/api/2.0/mlflow/metrics/get-history",
                              params={"run_id": run_id, "metric_key": "loss"}).raise_for_status().content
            assert len(orjson.loads(body)["metrics"]) == size

        http = {"ours": (ours, lambda: process_cpu_seconds(api_pid)),
                "mlflow_server": (theirs, lambda: tree_cpu_seconds(server_pid))}
        samples = {name: [] for name in (*http, "mlflow_in_process")}
        for _ in range(MLFLOW_WARM_UP + reads):
            for name, (read, server_cpu) in http.items():
                server_before = server_cpu()
                started, started_cpu = time.perf_counter(), time.process_time()
                read()
                wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
                samples[name].append((wall, cpu, server_cpu() - server_before))
            samples["mlflow_in_process"].append(read_in_process())
    out = {"reads": reads}
    for name, measured in samples.items():
        wall, cpu, server_cpu = zip(*measured[MLFLOW_WARM_UP:])
        out[name] = {"wall_ms": 1000 * statistics.median(wall), "client_cpu_ms": 1000 * statistics.median(cpu),
                     "server_cpu_ms": 1000 * statistics.mean(server_cpu)}
    return out


MLFLOW_WARM_UP = 2
MLFLOW_IN_PROCESS = """
import json, sys, time
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
client = MlflowClient("sqlite:///" + sys.argv[1])
run_id = client.create_run(client.create_experiment("bench")).info.run_id
with open(sys.argv[2]) as points:
    metrics = [Metric(**point) for point in json.load(points)]
size = len(metrics)
for start in range(0, size, 1000):
    client.log_batch(run_id, metrics=metrics[start:start + 1000])
print("ready", flush=True)
for _ in sys.stdin:  # a line asks for one read
    started, started_cpu = time.perf_counter(), time.process_time()
    history = client.get_metric_history(run_id, "loss")
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    assert len(history) == size and history[size - 1].value == metrics[size - 1].value
    print(json.dumps([wall, cpu, 0.0]), flush=True)
"""


def mlflow_points(size):
    """The history write_history gives our service, as MLflow metrics."""
    now = int(time.time() * 1000)
    return [{"key": "loss", "value": 1.0 / (1 + s) + (s % 7) * 1e-3, "timestamp": now, "step": s} for s in range(size)]


@contextlib.contextmanager
def mlflow_in_process(python, scratch, size):
    """A function that has MLflow's Python client read the history once in its own process: (wall s, CPU s, 0)."""
    points = scratch / "mlflow-points.json"
    points.write_bytes(orjson.dumps(mlflow_points(size)))
    reader = subprocess.Popen([python, "-c", MLFLOW_IN_PROCESS, str(scratch / "mlflow-client.db"), str(points)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready", "MLflow's in-process reader did not start"

        def read():
            reader.stdin.write("read\n")
            reader.stdin.flush()
            return tuple(json.loads(reader.stdout.readline()))
        yield read
    finally:
        reader.kill()
        reader.wait()


@contextlib.contextmanager
def mlflow_server(python, scratch, size):
    """MLflow's tracking server on a SQLite file holding the history (logged through its REST API, 1,000
    points per log-batch, its limit): (an httpx client for it, the server's pid, the run's id)."""
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no job runner, no huey consumers
    server = Process("mlflow-server", [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                                       "--workers", "1", "--backend-store-uri", f"sqlite:///{scratch / 'mlflow.db'}",
                                       "--no-serve-artifacts", "--default-artifact-root", str(scratch / "mlruns")],
                     env, scratch)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            deadline = time.monotonic() + 180
            while True:
                assert server.popen.poll() is None, f"the MLflow server exited:\n{server.log()[-3000:]}"
                assert time.monotonic() < deadline, f"the MLflow server is not up:\n{server.log()[-3000:]}"
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/health", timeout=2).status_code == 200:
                        break
                time.sleep(0.5)
            experiment = client.post("/api/2.0/mlflow/experiments/create", json={"name": "bench"})
            run_id = client.post("/api/2.0/mlflow/runs/create", json={
                "experiment_id": experiment.raise_for_status().json()["experiment_id"]}).raise_for_status()
            run_id = run_id.json()["run"]["info"]["run_id"]
            points = mlflow_points(size)
            for start in range(0, size, 1000):
                client.post("/api/2.0/mlflow/runs/log-batch",
                            json={"run_id": run_id, "metrics": points[start:start + 1000]}).raise_for_status()
            yield client, server.popen.pid, run_id
    finally:
        server.stop()


# ---- the compose stack's commands -------------------------------------------------------------------------

def stack(scratch, n_latency, n_throughput, parts=PARTS):
    logs = scratch / "stack"
    logs.mkdir()
    with fresh_postgres_database() as database_url, own_redis_server() as broker_url:
        env = compose_environment("api", DATABASE_URL=database_url, BROKER_URL=broker_url,
                                  API_KEY_SECRET=secrets.token_hex(32), RATE_LIMIT_PER_MINUTE=10_000_000,
                                  MAX_ACTIVE_JOBS_PER_OWNER=100_000)
        run_to_completion(compose_command("migrate"), env)
        key = run_to_completion([*compose_command("api")[:2], "services.cli", "keys", "create", "--owner", "bench"],
                                env).stdout.strip().splitlines()[-1]
        port = free_port()
        api = Process("api", [a.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port))
                              for a in compose_command("api")], env, logs)
        metrics_ports = [free_port(), free_port()]  # each worker's Prometheus metrics (the final write's time)
        workers = [Process(f"worker{n}", [*compose_command("worker"), f"--hostname=bench{n}@%h"],
                           {**env, "WORKER_METRICS_PORT": str(metrics_port)}, logs)
                   for n, metrics_port in zip((1, 2), metrics_ports)]
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base_url, [api, *workers])
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                wait_for_workers(client, 2)
                latency(client, SEED, 6)  # warm up both workers (imports, compile, graph renderer)
                out = {}
                if "latency" in parts:
                    out.update(latency_graph=latency(client, SEED, n_latency),
                               latency_no_graph=latency(client, SEED_NO_GRAPH, n_latency))
                if "throughput" in parts:
                    out["throughput"] = throughput(client, n_throughput, [
                        ("api", api.popen.pid), *((f"worker{n}", w.popen.pid) for n, w in enumerate(workers, 1))],
                        metrics_urls=[f"http://127.0.0.1:{metrics_port}/metrics" for metrics_port in metrics_ports])
                    out["throughput_split"] = throughput_split(client, n_throughput, workers, api)
        finally:
            for process in [api, *workers]:
                process.stop()
    return out


def wait_for_workers(client, count, timeout=60):
    deadline = time.monotonic() + timeout
    while len(client.get("/workers").json()) < count:
        assert time.monotonic() < deadline, "the workers did not show up in GET /workers"
        time.sleep(0.2)


def latency(client, spec, jobs, idle_before=0.0):
    """POST -> succeeded, one job at a time (the client polls every 5 ms). A job's results are saved before its
    graph is drawn: where the spec asks for a graph, also POST -> graph drawn (GET /jobs/{id} "graph": ready),
    and the next job is posted only then, so that no job waits behind the previous one's drawing.
    idle_before: seconds to wait before each job.
    `timeline_ms`: medians of when, counted from the POST's start, the POST returned, the job was created (its
    queued_at), claimed (started_at) and finished (finished_at, stamped just before the result write's commit),
    and the client saw it succeeded: the wall time the phases do not show (the POST, the client's polls). The
    client's clock and the service's are the same machine's."""
    seconds, graph_seconds, phases, timeline = [], [], {}, {}
    for _ in range(jobs):
        time.sleep(idle_before)
        started, started_at = time.perf_counter(), time.time()
        job_id = client.post("/jobs", json=spec).raise_for_status().json()["id"]
        posted = time.perf_counter() - started
        while (job := client.get(f"/jobs/{job_id}").json())["status"] not in FINAL:
            time.sleep(POLL_SECONDS)
        assert job["status"] == "succeeded", job["status"]
        seconds.append(time.perf_counter() - started)
        stamps = {name: datetime.fromisoformat(job["timings"][name]).timestamp() - started_at
                  for name in ("queued_at", "started_at", "finished_at")}
        for name, at in {"posted": posted, **stamps, "seen": seconds[-1]}.items():
            timeline.setdefault(name, []).append(1000 * at)
        if job["graph"] is not None:
            while (job := client.get(f"/jobs/{job_id}").json())["graph"] == "pending":
                time.sleep(POLL_SECONDS)
            assert job["graph"] == "ready", job["graph"]
            graph_seconds.append(time.perf_counter() - started)
        for phase, ms in job["timings"]["phases_ms"].items():
            phases.setdefault(phase, []).append(ms)
    out = {**percentiles(seconds), "jobs": jobs,
           "phases_ms": {phase: statistics.median(values) for phase, values in phases.items()},
           "timeline_ms": {name: statistics.median(values) for name, values in timeline.items()}}
    if graph_seconds:
        out["graph_ready"] = percentiles(graph_seconds)
    return out


def percentiles(seconds):
    seconds = sorted(seconds)
    return {"p50_ms": 1000 * statistics.median(seconds),
            "p95_ms": 1000 * seconds[max(0, round(0.95 * len(seconds)) - 1)]}


def throughput(client, jobs, processes=(), metrics_urls=()):
    """`jobs` small jobs submitted at once (16 threads); jobs/s from the first POST to the last job's end (its
    `finished_at`, so the rate does not depend on how often the client looks). The client looks every
    THROUGHPUT_POLL_SECONDS with one list request: it used to look every 20 ms, and listing 200 jobs took the
    API 20-30 ms of CPU each time, a large share of the two cores the workers were being measured on.
    `processes`: (name, pid) whose CPU time (with their children's) is reported per job.
    The fixed cost is each job's phases but steps and queue wait (median over the jobs), plus the median of
    the final write's part that is in no phase: the statement that ends a job stores its phases, so its round
    trip and commit cannot be in them; the workers time it (`mgs_job_final_write_seconds`, scraped from
    `metrics_urls` before and after the run; its median is interpolated within the histogram's buckets)."""
    writes_before = final_write_buckets(metrics_urls)
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in processes}
    client_before = time.process_time()
    started_at, started = time.time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        job_ids = list(pool.map(lambda _: client.post("/jobs", json=SMALL).raise_for_status().json()["id"],
                                range(jobs)))
    posted = time.perf_counter() - started
    pending = set(job_ids)
    deadline = time.monotonic() + 600
    while pending:  # one list request per poll, not one per job
        assert time.monotonic() < deadline, f"{len(pending)} jobs not final after 600 s"
        time.sleep(THROUGHPUT_POLL_SECONDS)
        listed = client.get("/jobs", params={"limit": 200}).json()["items"]
        pending -= {job["id"] for job in listed if job["status"] in FINAL}
    cpu_ms = {name: 1000 * (tree_cpu_seconds(pid) - cpu_before[name]) / jobs for name, pid in processes}
    cpu_ms["client"] = 1000 * (time.process_time() - client_before) / jobs
    finals = [client.get(f"/jobs/{job_id}").json() for job_id in job_ids]
    assert {job["status"] for job in finals} == {"succeeded"}
    elapsed = max(datetime.fromisoformat(job["timings"]["finished_at"]).timestamp() for job in finals) - started_at
    phases = {}
    for job in finals:
        for phase, ms in job["timings"]["phases_ms"].items():
            phases.setdefault(phase, []).append(ms)
    medians = {phase: statistics.median(values) for phase, values in phases.items()}
    fixed = [sum(ms for phase, ms in job["timings"]["phases_ms"].items() if phase not in ("queue_wait", "steps"))
             for job in finals]
    out = {"jobs_per_second": jobs / elapsed, "fixed_cost_ms": statistics.median(fixed), "phases_ms": medians,
           "posting_seconds": posted, "cpu_ms_per_job": cpu_ms}
    writes = final_write_buckets(metrics_urls, since=writes_before) if metrics_urls else None
    if writes is not None and not writes["buckets"]:
        print("note: the workers export no mgs_job_final_write_seconds (older code): the fixed cost leaves out "
              "the final write", file=sys.stderr)
    elif writes is not None:
        assert writes["count"] == jobs, f"the workers timed {writes['count']} final writes for {jobs} jobs"
        out["final_write_ms"] = {"median": 1000 * bucket_quantile(writes["buckets"], 0.5),
                                 "mean": 1000 * writes["sum"] / writes["count"]}
        out["fixed_cost_ms"] += out["final_write_ms"]["median"]
    return out


def final_write_buckets(urls, since=None):
    """The workers' `mgs_job_final_write_seconds` histograms, added up: {"buckets": {le: cumulative count},
    "count", "sum"}, less `since` (an earlier reading) when given."""
    from prometheus_client.parser import text_string_to_metric_families
    total = {"buckets": {}, "count": 0.0, "sum": 0.0}
    for url in urls:
        for family in text_string_to_metric_families(httpx.get(url, timeout=10).raise_for_status().text):
            if family.name != "mgs_job_final_write_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    le = float(sample.labels["le"])
                    total["buckets"][le] = total["buckets"].get(le, 0.0) + sample.value
                elif sample.name.endswith("_count"):
                    total["count"] += sample.value
                elif sample.name.endswith("_sum"):
                    total["sum"] += sample.value
    if since is not None:
        total = {"buckets": {le: n - since["buckets"].get(le, 0.0) for le, n in total["buckets"].items()},
                 "count": total["count"] - since["count"], "sum": total["sum"] - since["sum"]}
    return total


def bucket_quantile(buckets, q):
    """The q-quantile of a histogram's cumulative buckets {upper bound: count}, interpolated linearly within
    its bucket, as Prometheus's histogram_quantile does (the first bucket from 0)."""
    bounds = sorted(buckets)
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(buckets[bound] - below, 1e-12)
        lower, below = bound, buckets[bound]
    return lower


THROUGHPUT_POLL_SECONDS = 0.25


def throughput_split(client, jobs, workers, api=None):
    """The two halves of the 200-job run apart, each with the cores to itself (but for other users): the API
    taking the jobs while both workers are stopped (SIGSTOP), then the workers draining the full queue. On one
    shared pair of cores the mixed run cannot beat either; if each is at rate a and w and both are CPU-bound,
    the mixed rate is about 1 / (1/a + 1/w).
    Also the CPU of each half per job: the API's per POST (nothing else asks it meanwhile), the workers' per
    job drained (with their children; the client's polls cost the API, not them). Unlike the mixed run's CPU
    per job, these do not grow with the run's length (the API's share there includes the client's polls)."""
    api_before = tree_cpu_seconds(api.popen.pid) if api else 0.0
    for worker in workers:
        os.killpg(worker.popen.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            job_ids = list(pool.map(lambda _: client.post("/jobs", json=SMALL).raise_for_status().json()["id"],
                                    range(jobs)))
        posting = time.perf_counter() - started
        api_cpu = tree_cpu_seconds(api.popen.pid) - api_before if api else None
    finally:
        workers_before = sum(tree_cpu_seconds(worker.popen.pid) for worker in workers)
        resumed_at = time.time()
        for worker in workers:
            os.killpg(worker.popen.pid, signal.SIGCONT)
    pending = set(job_ids)
    deadline = time.monotonic() + 600
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} jobs not final after 600 s"
        time.sleep(THROUGHPUT_POLL_SECONDS)
        pending -= {job["id"] for job in client.get("/jobs", params={"limit": 200}).json()["items"]
                    if job["status"] in FINAL}
    ended = max(datetime.fromisoformat(client.get(f"/jobs/{job_id}").json()["timings"]["finished_at"]).timestamp()
                for job_id in job_ids)
    workers_cpu = sum(tree_cpu_seconds(worker.popen.pid) for worker in workers) - workers_before
    out = {"api_alone_jobs_per_second": jobs / posting, "workers_alone_jobs_per_second": jobs / (ended - resumed_at),
           "workers_alone_cpu_ms_per_job": 1000 * workers_cpu / jobs}
    if api_cpu is not None:
        out["api_alone_cpu_ms_per_post"] = 1000 * api_cpu / jobs
    return out


def tree_cpu_seconds(pid):
    """CPU time of a process and of all its descendants still alive (a worker and its pool child)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))  # field 4: the parent's pid
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            total += process_cpu_seconds(current)
        except OSError:
            pass
    return total


# ---- the table --------------------------------------------------------------------------------------------

def print_table(results, n_latency, n_throughput):
    """One row per goal measured in this run (--only leaves the others out)."""
    e, s = results.get("embedded", {}), results.get("stack", {})
    rows = []
    if "latency_graph" in e:
        rows += [(f"seed job POST -> succeeded, embedded (`make run`), {n_latency} jobs",
                  f"p50 {e['latency_graph']['p50_ms']:.0f} ms with the graph, "
                  f"{e['latency_no_graph']['p50_ms']:.0f} ms without",
                  "p50 <= 150 ms with the graph, <= 80 ms without", "~700 ms"),
                 ("  same, POST -> graph drawn (it is drawn after the results are saved)",
                  f"p50 {e['latency_graph']['graph_ready']['p50_ms']:.0f} ms", "-", "(was the succeeded time)"),
                 ("  where a job's time goes, without the graph (phases_ms medians, ms)",
                  ", ".join(f"{phase} {ms:.1f}" for phase, ms in e["latency_no_graph"]["phases_ms"].items()), "-",
                  "-"),
                 timeline_row(e["latency_no_graph"])]
    if "idle_cpu_percent" in e:
        rows += [("embedded default at idle (API + worker + sweeper)", f"{e['idle_cpu_percent']:.1f} % of one core",
                  "low", "-"),
                 (f"  a seed job (no graph) posted after {AFTER_IDLE_SECONDS} s of idling, POST -> succeeded",
                  f"p50 {e['latency_after_idle']['p50_ms']:.0f} ms ({AFTER_IDLE_JOBS} jobs)", "as without idling",
                  "-")]
    if "latency_graph" in s:
        rows += [(f"same, PostgreSQL + Redis stack, {n_latency} jobs",
                  f"p50 {s['latency_graph']['p50_ms']:.0f} ms (p95 {s['latency_graph']['p95_ms']:.0f}) with the "
                  f"graph, p50 {s['latency_no_graph']['p50_ms']:.0f} ms (p95 {s['latency_no_graph']['p95_ms']:.0f}) "
                  "without", "p50 <= 120 ms with the graph, <= 60 ms without", "p50 265 ms, p95 312 ms"),
                 ("  same, POST -> graph drawn",
                  f"p50 {s['latency_graph']['graph_ready']['p50_ms']:.0f} ms "
                  f"(p95 {s['latency_graph']['graph_ready']['p95_ms']:.0f})", "-", "(was the succeeded time)"),
                 ("  where a job's time goes, without the graph (phases_ms medians, ms)",
                  ", ".join(f"{phase} {ms:.1f}" for phase, ms in s["latency_no_graph"]["phases_ms"].items()), "-",
                  "-"),
                 timeline_row(s["latency_no_graph"])]
    if "throughput" in s:
        t = s["throughput"]
        phases = ", ".join(f"{phase} {ms:.1f}" for phase, ms in t["phases_ms"].items())
        if "final_write_ms" in t:
            phases += f", final write {t['final_write_ms']['median']:.1f}"
        rows.append((f"{n_throughput} small jobs (20 steps), 2 workers, stack", f"{t['jobs_per_second']:.1f} jobs/s",
                     ">= 80 jobs/s", "30 jobs/s"))
        rows.append(("fixed cost per job (all but steps and queue wait, final write included; medians, ms)",
                     f"{t['fixed_cost_ms']:.1f} ms ({phases})", "<= 10 ms, shown per phase", "~40 ms"))
        if "throughput_split" in s:
            split = s["throughput_split"]
            rows.append(("the same apart: the API taking the jobs (workers stopped) | the workers draining them",
                         f"{split['api_alone_jobs_per_second']:.1f} jobs/s | "
                         f"{split['workers_alone_jobs_per_second']:.1f} jobs/s", "-", "-"))
            if "api_alone_cpu_ms_per_post" in split:
                rows.append(("  their CPU: the API's per POST | the workers' per job drained",
                             f"{split['api_alone_cpu_ms_per_post']:.1f} ms | "
                             f"{split['workers_alone_cpu_ms_per_job']:.1f} ms", "-", "-"))
        rows.append(("CPU per job, by process (the mixed run; the API's includes the client's polls)",
                     ", ".join(f"{name} {ms:.1f}" for name, ms in t["cpu_ms_per_job"].items()) + " ms", "-", "-"))
    if "serve_ms" in e:
        served, cpu = e["serve_ms"], e["serve_api_cpu_ms"]
        rows += history_vs_mlflow_rows(e.get("vs_mlflow"))
        rows.append(("100,000-point history, whole range (to 1,000 | to 10,000 points)",
                     f"{served['100k_range_to_1000']:.1f} ms | {served['100k_range_to_10000']:.1f} ms (API CPU "
                     f"{cpu['100k_range_to_1000']:.0f} | {cpu['100k_range_to_10000']:.0f} ms)",
                     "<= 100 ms", "~500 ms"))
        rows.append(("100,000-point history through GET /jobs/{id}/events (2,000 points an event)",
                     f"{served['100k_events']:.1f} ms (API CPU {cpu['100k_events']:.0f} ms)", "-", "-"))
        rows.append(("1,000,000-point history downsampled to 1,000 points",
                     f"{served['1m_range_to_1000']:.1f} ms (API CPU {cpu['1m_range_to_1000']:.0f} ms)",
                     "<= 50 ms", "-"))
    widths = [max(len(row[i]) for row in rows + [HEADER]) for i in range(4)]
    for row in [HEADER, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")


def timeline_row(measured):
    t = measured["timeline_ms"]
    return ("  same, ms after the POST's start (medians): POST answered | job created | claimed | finished | seen",
            " | ".join(f"{t[name]:.1f}" for name in ("posted", "queued_at", "started_at", "finished_at", "seen")),
            "-", "-")


def history_vs_mlflow_rows(compared):
    """The 10,000-point comparison (history_vs_mlflow): each side's HTTP read, request to decoded answer, in one
    client; then MLflow's in-process read against the same HTTP read of ours."""
    goal, before = ">= 10x faster", "131 ms vs 415 ms: 3.2x"
    if compared is None or "failed" in compared:
        return [("10,000-point history, embedded, vs MLflow 3 get-history (SQLite store)",
                 "MLflow not installed" if compared is None else f"MLflow failed: {compared['failed']}", goal, before)]
    ours, server, local = compared["ours"], compared["mlflow_server"], compared["mlflow_in_process"]
    our_cpu = ours["server_cpu_ms"] + ours["client_cpu_ms"]
    return [(f"10,000-point history, embedded, vs MLflow 3 server's get-history (SQLite store); {compared['reads']} "
             "reads each in turn, request -> decoded answer in one client",
             f"{ours['wall_ms']:.1f} ms vs {server['wall_ms']:.0f} ms: {server['wall_ms'] / ours['wall_ms']:.1f}x "
             f"(CPU, server + client: {ours['server_cpu_ms']:.1f} + {ours['client_cpu_ms']:.1f} ms vs "
             f"{server['server_cpu_ms']:.0f} + {server['client_cpu_ms']:.1f} ms: "
             f"{(server['server_cpu_ms'] + server['client_cpu_ms']) / our_cpu:.1f}x)", goal, before),
            ("  same, vs MLflow's Python client on its SQLite file in-process (no server: its best case)",
             f"{ours['wall_ms']:.1f} ms vs {local['wall_ms']:.0f} ms: {local['wall_ms'] / ours['wall_ms']:.1f}x"
             f" (CPU: {our_cpu:.1f} ms vs {local['client_cpu_ms']:.0f} ms: {local['client_cpu_ms'] / our_cpu:.1f}x)",
             goal, "-")]


HEADER = ("what", "measured now", "goal", "before (issue 12)")


if __name__ == "__main__":
    if shutil.which("dot") is None:
        print("note: no system Graphviz; graphs render with the WebAssembly build", file=sys.stderr)
    main()
