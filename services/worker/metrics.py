"""The worker's own Prometheus metrics, served on WORKER_METRICS_PORT by the process that runs the jobs
(0, the default, serves none). The API's /metrics has the rest: requests, jobs by status, queue depth,
worker heartbeats (from the database, so they cover every worker wherever it runs)."""
import logging

from prometheus_client import Counter, Histogram, start_http_server

from services.config import get_settings

log = logging.getLogger(__name__)

JOB_SECONDS = Histogram("mgs_job_duration_seconds", "wall time of a job's run, claim to final write",
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 3600))
STEPS_PER_SECOND = Histogram("mgs_job_steps_per_second", "training steps per second of a finished job",
                             buckets=(10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000))
PHASE_SECONDS = Histogram("mgs_job_phase_seconds", "seconds per phase of a job's run", ["phase"],
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 10, 60))
FINAL_WRITE_SECONDS = Histogram(
    "mgs_job_final_write_seconds",
    "the part of a trained job's final write that is in no phase: finish_job stores the phases, so its `save` "
    "stops before the statement's round trip and durable commit (PostgreSQL), or before the commit (SQLite)",
    buckets=(0.00025, 0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175, 0.002, 0.0025, 0.003, 0.004, 0.005,
             0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 5, 60))
JOBS_FINISHED = Counter("mgs_jobs_finished", "jobs this worker ended, by final status", ["status"])


def serve() -> None:
    port = get_settings().WORKER_METRICS_PORT
    if port:
        try:
            start_http_server(port)
        except OSError as e:  # e.g. a second worker on the same host and port: it runs on without
            log.warning("worker metrics not served on port %d: %s", port, e)


def observe(status: str, steps: int = 0, phases: dict | None = None) -> None:
    """A job this process ended; `phases` as recorded on the job (seconds)."""
    JOBS_FINISHED.labels(status).inc()
    if not phases:
        return
    JOB_SECONDS.observe(sum(seconds for phase, seconds in phases.items() if phase != "queue_wait"))
    if steps and phases.get("steps"):
        STEPS_PER_SECOND.observe(steps / phases["steps"])
    for phase, seconds in phases.items():
        PHASE_SECONDS.labels(phase).observe(seconds)
