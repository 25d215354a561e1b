"""The faults, injected into a running cluster. Shared by the tests (which assert on the outcome)
and benchmarks/faults.py (which counts lost and duplicated jobs and times the recovery).

Each scenario starts the workers it needs, submits its jobs, injects the fault mid-training and
returns a Fault: the jobs (id and spec) and the monotonic time of the injection."""
import time
from dataclasses import dataclass, field

from .client import enqueue_again
from .specs import long_spec


@dataclass
class Fault:
    jobs: list  # [(job_id, spec)]
    injected_at: float
    workers: dict = field(default_factory=dict)


def pool_child_killed(cluster, client):
    worker = cluster.start_worker("w1")
    spec = long_spec()
    job_id = client.submit(spec)
    client.wait_running(job_id, timeout=30, min_step=100)
    killed = worker.kill_pool_children()
    assert killed, "the worker has no pool process to kill"
    return Fault([(job_id, spec)], time.monotonic(), {"w1": worker})


def whole_worker_killed(cluster, client):
    """SIGKILL of the main process of the worker running the job, while another worker is alive."""
    first = cluster.start_worker("w1")
    spec = long_spec()
    job_id = client.submit(spec)
    client.wait_running(job_id, timeout=30, min_step=100)
    second = cluster.start_worker("w2")
    first.kill()
    return Fault([(job_id, spec)], time.monotonic(), {"w1": first, "w2": second})


def delivered_twice(cluster, client):
    workers = {name: cluster.start_worker(name) for name in ("w1", "w2")}
    spec = long_spec()
    job_id = client.submit(spec)
    enqueue_again(cluster.env, job_id)  # both deliveries in flight at once, one per worker
    return Fault([(job_id, spec)], time.monotonic(), workers)


def sigterm_mid_job(cluster, client):
    """A rolling restart: SIGTERM the worker running the job, then start its replacement."""
    old = cluster.start_worker("w1")
    spec = long_spec()
    job_id = client.submit(spec)
    client.wait_running(job_id, timeout=30, min_step=100)
    old.sigterm()
    injected_at = time.monotonic()
    new = cluster.start_worker("w2")
    return Fault([(job_id, spec)], injected_at, {"w1": old, "w2": new})


def redis_restarted(cluster, client, redis_server):
    """Two jobs running and two waiting in Redis when it dies (the waiting messages die with it)."""
    workers = {name: cluster.start_worker(name) for name in ("w1", "w2")}
    jobs = _submit_batch(client, 4)
    client.wait_running(jobs[0][0], timeout=30, min_step=50)
    injected_at = time.monotonic()
    redis_server.restart(down_seconds=1)
    return Fault(jobs, injected_at, workers)


def postgres_restarted(cluster, client, postgres_server):
    """An immediate stop (every connection dies mid-transaction), down 2 s, while workers write."""
    workers = {name: cluster.start_worker(name) for name in ("w1", "w2")}
    jobs = _submit_batch(client, 3)
    client.wait_running(jobs[0][0], timeout=30, min_step=100)
    injected_at = time.monotonic()
    postgres_server.restart(down_seconds=2)
    return Fault(jobs, injected_at, workers)


def _submit_batch(client, count):
    specs = [long_spec() for _ in range(count)]  # one spec: one reference run to compare with
    return [(client.submit(spec), spec) for spec in specs]
