"""Talks to the real API the way a user does, plus the checks every fault test ends with."""
import subprocess
import sys
import time

import httpx

from .harness import REPO

FINAL = ("succeeded", "failed", "cancelled")


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

    def wait_for(self, job_id, condition, timeout, what):
        """Poll the job until `condition(job)` holds; transient API/database errors are retried
        (a test may be restarting PostgreSQL underneath the API)."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            try:
                job = self.job(job_id)
                if condition(job):
                    return job
            except (httpx.HTTPError, AssertionError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} not {what} after {timeout}s; last seen: {job}")

    def wait_final(self, job_id, timeout):
        return self.wait_for(job_id, lambda job: job["status"] in FINAL, timeout, "final")

    def wait_running(self, job_id, timeout, min_step=1):
        """Running and past `min_step` steps, so a kill lands mid-training."""
        return self.wait_for(job_id, lambda job: job["status"] == "running"
                             and job["progress"]["step"] >= min_step, timeout, f"running past step {min_step}")


def enqueue_again(env, job_id):
    """Send the job's task once more through the service's own `enqueue`, as a duplicate delivery."""
    code = f"from services.queue import enqueue; enqueue({str(job_id)!r})"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=60)
