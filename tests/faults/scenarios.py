"""The faults, injected into a running cluster. Shared by the tests (which assert on the outcome)
and benchmarks/faults.py (which counts lost and duplicated jobs and times the recovery).

Each scenario starts the workers it needs, submits its jobs, injects the fault mid-training and
returns a Fault: the jobs, when the fault hit, and what the jobs were doing at that moment."""
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .client import FINAL_POLL_SECONDS, enqueue_again
from .specs import long_spec


@dataclass
class Fault:
    jobs: list                # [(job_id, spec)]
    statuses_before: list     # each job's status just before the fault
    steps_before: list = field(default_factory=list)  # and the steps it had reported done
    injected_at: float = field(default_factory=time.monotonic)
    injected_wall: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    workers: dict = field(default_factory=dict)
    sweep_id: str = None      # a sweep's faults: its trials are the jobs, known once it has finished,
    sweep_steps: dict = field(default_factory=dict)  # ... and the steps each had done at the fault

    def finished_after_the_fault(self, job):
        return datetime.fromisoformat(job["timings"]["finished_at"]) > self.injected_wall


def pool_child_killed(cluster, client):
    worker = cluster.start_worker("w1")
    jobs = _submit(client, 1)
    fault = _before(client, jobs, {"w1": worker})
    assert worker.kill_pool_children(), "the worker has no pool process to kill"
    return fault


def pool_child_killed_at(cluster, client, fraction=0.8, length=1.0, delay=0.0):
    """SIGKILL of the pool process `delay` seconds after the job reports `fraction` of its steps done (the
    re-run then resumes from its last checkpoint, or from step 0 without one). `length` scales the job.

    The steps done at the kill: those reported (progress is written every 0.5 s, and had just been when
    the poll, every 0.1 s, first saw the fraction passed), plus `delay` times the job's rate so far."""
    worker = cluster.start_worker("w1")
    spec = long_spec(fraction=length)
    job_id = client.submit(spec)
    job = client.wait_running(job_id, timeout=60, min_step=math.ceil(fraction * spec["steps"]))
    seen = time.monotonic()
    running_for = (datetime.now(timezone.utc) - datetime.fromisoformat(job["timings"]["started_at"])).total_seconds()
    time.sleep(delay)
    assert worker.kill_pool_children(), "the worker has no pool process to kill"
    done = job["progress"]["step"]
    done = min(spec["steps"], done + round(done / running_for * (time.monotonic() - seen))) if delay else done
    return Fault([(job_id, spec)], [job["status"]], [done], workers={"w1": worker})


def whole_worker_killed(cluster, client):
    """SIGKILL of the main process of the worker running the job, while another worker is alive."""
    workers = cluster.start_workers("w1", "w2")
    jobs = _submit(client, 1)
    holder = next(w for w in workers if w.busy())
    survivor = next(w for w in workers if w is not holder)
    fault = _before(client, jobs, {"killed": holder, "survivor": survivor})
    holder.kill()
    return fault


def delivered_twice(cluster, client):
    workers = dict(zip(("w1", "w2"), cluster.start_workers("w1", "w2")))
    spec = long_spec()
    job_id = client.submit(spec)
    fault = Fault([(job_id, spec)], [client.job(job_id)["status"]], [0], workers=workers)
    enqueue_again(cluster.env, job_id)  # both deliveries in flight at once, one per worker
    return fault


def sigterm_mid_job(cluster, client):
    """A rolling restart: SIGTERM the worker running the job, then start its replacement."""
    old = cluster.start_worker("w1")
    jobs = _submit(client, 1)
    fault = _before(client, jobs, {"old": old})
    old.sigterm()
    fault.workers["new"] = cluster.start_worker("w2")
    return fault


def redis_restarted(cluster, client, redis_server):
    """Two jobs running and two waiting in Redis when it dies (the waiting messages die with it)."""
    workers = dict(zip(("w1", "w2"), cluster.start_workers("w1", "w2")))
    jobs = _submit(client, 4)
    fault = _before(client, jobs, workers)
    redis_server.restart(down_seconds=1)
    return fault


def postgres_restarted(cluster, client, postgres_server, down_seconds=2, fraction=1.0):
    """An immediate stop (every connection dies mid-transaction) while workers write. Short jobs
    (`fraction` of the usual length) end their training while it is down, so their final write
    waits for it; down longer than STALE_AFTER_SECONDS, every running job also looks crashed."""
    workers = dict(zip(("w1", "w2"), cluster.start_workers("w1", "w2")))
    jobs = _submit(client, 3, fraction)
    fault = _before(client, jobs, workers)
    postgres_server.restart(down_seconds=down_seconds)
    return fault


SWEEP_TRIALS = 6


def sweep_worker_killed(cluster, client):
    """SIGKILL of the worker running a sweep's trial, another worker alive: the killed trial runs again
    and the sweep ends with exactly its trials (a grid over the seed, so every trial is a different,
    known run). One trial at a time, so the worker running it is the one busy worker."""
    workers = cluster.start_workers("w1", "w2")
    sweep_id = client.create_sweep({"spec": long_spec(fraction=0.5), "space": {"seed": list(range(SWEEP_TRIALS))},
                                    "method": "grid", "parallelism": 1})
    client.wait_sweep(sweep_id, lambda sweep: sweep["counts"]["succeeded"] >= 1, timeout=60,
                      what="past its first trial")
    running = client.wait_sweep(sweep_id, lambda sweep: any(t["status"] == "running" and t["steps_done"] >= 100
                                                            for t in sweep["leaderboard"]),
                                timeout=30, what="running a trial past step 100")
    statuses = [t["status"] for t in sorted(running["leaderboard"], key=lambda t: t["number"])]
    holder = next(w for w in workers if w.busy())
    survivor = next(w for w in workers if w is not holder)
    fault = Fault([], statuses, workers={"killed": holder, "survivor": survivor}, sweep_id=sweep_id,
                  sweep_steps={t["job_id"]: t["steps_done"] for t in running["leaderboard"]})
    holder.kill()
    return fault


def sweep_trials(client, fault, timeout):
    """Waits for the sweep to end and makes its trials the fault's jobs; returns the sweep and how many
    jobs the owner has in all (the sweep is the only thing the test submitted)."""
    try:
        sweep = client.wait_sweep(fault.sweep_id, lambda sweep: sweep["status"] != "running", timeout, "finished",
                                  interval=FINAL_POLL_SECONDS)
    except TimeoutError:
        sweep = client.sweep(fault.sweep_id)
    fault.jobs = [(t["job_id"], client.job(t["job_id"])["spec"]) for t in sweep["leaderboard"] if t["job_id"]]
    fault.steps_before = [fault.sweep_steps.get(job_id, 0) for job_id, _ in fault.jobs]
    return sweep, len(client.all_jobs())


def _submit(client, count, fraction=1.0):
    """`count` jobs of one spec (one reference run to compare with); returns once the first is
    running past step 100, so the fault lands mid-training."""
    spec = long_spec(fraction=fraction)
    jobs = [(client.submit(spec), spec) for _ in range(count)]
    client.wait_running(jobs[0][0], timeout=30, min_step=100)
    return jobs


def _before(client, jobs, workers):
    seen = [client.job(job_id) for job_id, _ in jobs]
    return Fault(jobs, [job["status"] for job in seen], [job["progress"]["step"] for job in seen], workers=workers)
