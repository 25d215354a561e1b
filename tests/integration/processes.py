"""Real service processes for integration tests: the commands docker-compose.yml runs, run natively,
on a fresh PostgreSQL database and a Redis server of their own (so that two suites on one machine
never share, or flush, each other's broker)."""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import port_for
import pytest
from compose_spec import PyCompose
from pytest_postgresql.janitor import DatabaseJanitor
from pytest_redis.executor import RedisExecutor

REPO = Path(__file__).resolve().parents[2]
POSTGRES = {"user": "postgres", "host": "127.0.0.1", "port": 5432, "maintenance_dbname": "test"}
FINAL = ("succeeded", "failed", "cancelled")
NO_REDIS_SERVER = "needs redis-server (Debian: apt-get install redis-server) to start a Redis of its own"


def compose_text() -> str:
    """docker-compose.yml with compose's `${VAR:-default}` interpolation done as with no variable set
    (the parser does not interpolate, and a port must parse as a number); `${VAR:?message}` stays."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", (REPO / "docker-compose.yml").read_text())


def compose_file() -> dict:
    """docker-compose.yml, read by a real compose parser."""
    return PyCompose.from_yaml(compose_text()).to_dict()


def compose_command(service: str) -> list[str]:
    """A service's command as the container runs it; `python -m` runs the same console script natively."""
    return [sys.executable, "-m", *compose_file()["services"][service]["command"]]


def compose_environment(service: str, **overrides) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update(compose_file()["services"][service]["environment"])
    env.update({name: str(value) for name, value in overrides.items()})
    return env


@contextlib.contextmanager
def fresh_postgres_database():
    """A uniquely named database on the machine's PostgreSQL, dropped after (pytest-postgresql's janitor)."""
    name = f"itest_{uuid.uuid4().hex[:12]}"
    with DatabaseJanitor(**POSTGRES, dbname=name):
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@contextlib.contextmanager
def own_redis_server():
    """A redis-server of our own on a free port, run by pytest-redis's executor; yields its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(NO_REDIS_SERVER)
    port = port_for.get_port(None)
    with tempfile.TemporaryDirectory(prefix="itest-redis-") as directory, \
            RedisExecutor(executable, databases=1, redis_timeout=0, loglevel="warning", host="127.0.0.1",
                          port=port, datadir=Path(directory)):
        yield f"redis://127.0.0.1:{port}/0"


def redis_server_fixture():
    """The body of a fixture that yields the URL of a Redis of its own (own_redis_server), or skips where there
    is no redis-server. One definition for each scope that wants one: tests/integration's session-wide
    `broker_url` and test_rate_limit's module-wide `redis_url` are both made from it with pytest.fixture."""
    if shutil.which("redis-server") is None:
        pytest.skip(NO_REDIS_SERVER)
    with own_redis_server() as url:
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process in its own session with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name, self.log_path = name, Path(log_dir) / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL of the whole process group if it does not go in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # leftovers, e.g. pool children
        return self.popen.returncode


def run_to_completion(argv: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


def wait_until_ready(base_url: str, processes: list[Process], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            assert process.popen.poll() is None, f"{process.name} exited:\n{process.log()}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{base_url} not ready after {timeout} s:\n" + "\n".join(p.log() for p in processes))


def graph_when_drawn(client: httpx.Client, job_id: str, timeout: float = 60) -> httpx.Response:
    """GET /jobs/{id}/graph.svg once the graph is drawn: a succeeded job's graph is drawn after its results are
    saved, and meanwhile the answer is 202 with Retry-After. Any other answer is returned as it is."""
    deadline = time.monotonic() + timeout
    while (response := client.get(f"/jobs/{job_id}/graph.svg")).status_code == 202:
        assert "the graph is being drawn" in response.json()["detail"], response.text
        assert time.monotonic() < deadline, f"the graph of job {job_id} is still being drawn after {timeout} s"
        time.sleep(0.05)  # (Retry-After says 1 s; a test asks sooner)
    return response


def wait_for_final(client: httpx.Client, job_ids: list[str], timeout: float) -> dict:
    """Polls until every job is succeeded, failed or cancelled; returns id -> job. One request a round (the
    owner's job list) however many jobs it waits for, then one per job: asking after each of 20 jobs every
    0.25 s cost the API more CPU than the jobs' own requests."""
    wanted, deadline = set(job_ids), time.monotonic() + timeout
    while True:
        statuses = job_statuses(client)
        pending = {job_id: statuses.get(job_id) for job_id in wanted if statuses.get(job_id) not in FINAL}
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    assert not pending, f"not final after {timeout} s: {pending}"
    return {job_id: client.get(f"/jobs/{job_id}").raise_for_status().json() for job_id in job_ids}


def job_statuses(client: httpx.Client) -> dict:
    """id -> status of every job the client's owner has (GET /jobs, page by page)."""
    found, cursor = {}, None
    while True:
        page = client.get("/jobs", params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        page = page.raise_for_status().json()
        found.update({item["id"]: item["status"] for item in page["items"]})
        if (cursor := page["next_cursor"]) is None:
            return found
