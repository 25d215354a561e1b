"""Driving the compose stack from a test: the README's compose commands, the containers, the published API."""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
PROJECT = "mgs-compose-test"  # every container, network and volume of the test carries this project name
WORKERS = 3
FINAL = {"succeeded", "failed", "cancelled"}
TIMINGS: list[tuple[str, float]] = []  # (step, seconds), listed at the end of the run


class step:
    """Times one step of the run."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        TIMINGS.append((self.name, time.monotonic() - self.start))


def compose_cli() -> list[str]:
    """`docker compose` (v2) where it exists, else Debian's docker-compose (1.29)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.port = free_port()
        self.cli = compose_cli()
        # every value the compose file requires (`${NAME:?...}`: API_KEY_SECRET, passwords) gets a random one
        required = re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yml").read_text())
        self.env = dict({name: secrets.token_hex(32) for name in required}, **os.environ)
        self.env.update(COMPOSE_PROJECT_NAME=PROJECT,
                        API_PORT=str(self.port),
                        # the classic builder: docker-compose 1.29 may hand builds to a CLI without buildx
                        DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0")
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.key = None
        self.jobs = {}  # job id -> spec of every job run so far, for the "nothing lost" checks

    # ---- the compose CLI --------------------------------------------------------------------------------
    def compose(self, *args, timeout=600, check=True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.cli, *args], cwd=REPO, env=self.env, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(self.cli)} {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return result

    def create_key(self, owner: str) -> str:
        """The README's command (-T: the test has no terminal; the key is the command's only stdout)."""
        result = self.compose("run", "--rm", "-T", "api", "python", "-m", "services.cli", "keys", "create",
                              "--owner", owner, timeout=180)
        key = result.stdout.strip()
        assert key and "\n" not in key, result.stdout
        return key

    def down(self):
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False, timeout=300)

    # ---- containers -------------------------------------------------------------------------------------
    def docker(self, *args, check=True) -> str:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout

    def containers(self, service=None, all=False) -> list[str]:
        filters = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        return self.docker("ps", "-q", "--no-trunc", *(["-a"] if all else []), *filters).split()

    def inspect(self, container: str) -> dict:
        return json.loads(self.docker("inspect", container))[0]

    def logs(self, container: str, since: str = None) -> str:
        result = subprocess.run(["docker", "logs", *(["--since", since] if since else []), container],
                                capture_output=True, text=True)
        return result.stdout + result.stderr

    def save_logs(self):
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True)
        for container in self.containers(all=True):
            name = self.inspect(container)["Name"].strip("/")
            (self.log_dir / f"{name}.log").write_text(self.logs(container))

    def leftovers(self) -> dict:
        label = f"label=com.docker.compose.project={PROJECT}"
        return {"containers": self.containers(all=True),
                "networks": self.docker("network", "ls", "-q", "--filter", label).split(),
                "volumes": self.docker("volume", "ls", "-q", "--filter", label).split()}

    def wait_healthy(self, timeout: float):
        """Every service container running and, where it has a health check, healthy; migrate exited 0."""
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for container in self.containers(all=True):
                info = self.inspect(container)
                service = info["Config"]["Labels"]["com.docker.compose.service"]
                state = info["State"]
                if service == "migrate" or state["Status"] == "exited" and not state.get("Health"):
                    status = "done" if state["Status"] == "exited" and state["ExitCode"] == 0 else state["Status"]
                else:
                    status = state["Health"]["Status"] if state.get("Health") else state["Status"]
                states[info["Name"].strip("/")] = status
            ready = set(states.values()) <= {"healthy", "done"} and len(states) == 4 + WORKERS
            if ready:
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {timeout} s: {states} logs in {self.log_dir}")
            time.sleep(1)

    # ---- the published API ------------------------------------------------------------------------------
    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=30)

    def wait_ready(self, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.base_url}/readyz not 200 within {timeout} s")
            time.sleep(0.5)


def wait_final(client: httpx.Client, job_ids, timeout: float) -> dict:
    """{job_id: job} once every job is final; fails naming the stragglers after `timeout`."""
    deadline = time.monotonic() + timeout
    final = {}
    while True:
        for job_id in job_ids:
            if job_id not in final:
                job = client.get(f"/jobs/{job_id}").raise_for_status().json()
                if job["status"] in FINAL:
                    final[job_id] = job
        if len(final) == len(job_ids):
            return final
        if time.monotonic() > deadline:
            pending = {job_id: client.get(f"/jobs/{job_id}").json() for job_id in job_ids if job_id not in final}
            raise AssertionError(f"not final after {timeout} s: {pending}")
        time.sleep(0.5)


HISTORY_PAGE = 10_000  # the API's max_points: a range of this many steps comes whole, not downsampled


def history(client: httpx.Client, job_id) -> list[tuple]:
    """The whole history, read a range of HISTORY_PAGE steps at a time until one comes back short."""
    points = []
    while True:
        start = len(points) and points[-1]["step"] + 1
        body = client.get(f"/jobs/{job_id}/loss", params={"start": start, "end": start + HISTORY_PAGE - 1,
                                                           "max_points": HISTORY_PAGE}).raise_for_status().json()
        points += body["points"]
        if len(body["points"]) < HISTORY_PAGE:
            return [(p["step"], p["loss"], p.get("accuracy"), p.get("lr")) for p in points]
