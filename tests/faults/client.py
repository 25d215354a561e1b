"""Talks to the real API the way a user does, plus the checks every fault test ends with."""
import subprocess
import sys
import time

import httpx

from .harness import REPO

FINAL = ("succeeded", "failed", "cancelled")
FINAL_POLL_SECONDS = 0.25


class JobClient:
    def __init__(self, api_url):
        self.http = httpx.Client(base_url=api_url, timeout=10)

    def submit(self, spec):
        response = self.http.post("/jobs", json=spec)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def job(self, job_id):
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def loss_points(self, job_id):
        response = self.http.get(f"/jobs/{job_id}/loss", params={"max_points": 10_000})
        assert response.status_code == 200, response.text
        return response.json()["points"]

    def params(self, job_id):
        response = self.http.get(f"/jobs/{job_id}/params")
        assert response.status_code == 200, response.text
        return response.json()

    def create_sweep(self, body):
        response = self.http.post("/sweeps", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def sweep(self, sweep_id):
        response = self.http.get(f"/sweeps/{sweep_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def all_jobs(self):
        """Every job of the owner, following the pages."""
        found, cursor = [], None
        while True:
            page = self.http.get("/jobs", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
            found += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def wait_sweep(self, sweep_id, condition, timeout, what, interval=0.1):
        """Poll the sweep until `condition(sweep)` holds, as `wait_for` does a job."""
        return _poll(lambda: self.sweep(sweep_id), condition, timeout, f"sweep {sweep_id} not {what}", interval)

    def wait_for(self, job_id, condition, timeout, what, interval=0.1):
        """Poll the job until `condition(job)` holds; transient API/database errors are retried
        (a test may be restarting PostgreSQL underneath the API). Every 0.1 s by default, so that a
        fault timed on what the poll sees lands while the job is still at it."""
        return _poll(lambda: self.job(job_id), condition, timeout, f"job {job_id} not {what}", interval)

    def wait_final(self, job_id, timeout):
        """Nothing is timed on a job's end: polled every 0.25 s (each poll costs the API and the test
        ~5 ms of CPU, and a test waits for its jobs' ends for tens of seconds)."""
        return self.wait_for(job_id, lambda job: job["status"] in FINAL, timeout, "final", interval=FINAL_POLL_SECONDS)

    def wait_running(self, job_id, timeout, min_step=1):
        """Running and past `min_step` steps, so a kill lands mid-training."""
        return self.wait_for(job_id, lambda job: job["status"] == "running"
                             and job["progress"]["step"] >= min_step, timeout, f"running past step {min_step}")


def _poll(read, condition, timeout, failure, interval):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = read()
            if condition(seen):
                return seen
        except (httpx.HTTPError, AssertionError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{failure} after {timeout}s; last seen: {seen}")


def enqueue_again(env, job_id):
    """Send the job's task once more through the service's own `enqueue`, as a duplicate delivery."""
    code = f"from services.queue import enqueue; enqueue({str(job_id)!r})"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=60)
