"""Real service processes for fault injection: the API (uvicorn) and Celery workers.

Each process runs in its own session (process group) with its output in a log
file, so a test can SIGKILL exactly the process it means to and the teardown can
always reap the whole group, whatever happened in between."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .servers import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]

RELIABILITY_ENV = {
    "HEARTBEAT_SECONDS": "1",
    "STALE_AFTER_SECONDS": "5",
    "SWEEP_SECONDS": "1",
    "REDELIVER_QUEUED_AFTER_SECONDS": "3",
    "MAX_ATTEMPTS": "3",
    "CHECKPOINT_SECONDS": "0.5",  # a re-run resumes; the exact comparisons cover resumed runs too
    "AUTH_REQUIRED": "false",
    "RATE_LIMIT_PER_MINUTE": "100000",
}


def service_env(database_url, broker_url, **overrides):
    env = dict(os.environ, DATABASE_URL=database_url, BROKER_URL=broker_url, PYTHONUNBUFFERED="1",
               **RELIABILITY_ENV)
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def migrate(database_url):
    """The schema, the way the compose stack's migration service makes it."""
    env = service_env(database_url, "memory://")
    done = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"alembic upgrade head failed:\n{done.stdout}\n{done.stderr}")


def children_of(pid):
    """Direct children of a process, from /proc (psutil is not installed)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


class ServiceProcess:
    """One subprocess, in a session of its own, with a log file; `kill` and `sigterm` signal the main
    process only, `cleanup` kills the whole process group."""

    def __init__(self, name, command, env, log_dir):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = Path(log_dir) / f"{name}.log"
        self.process = None

    def start(self):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_size(self):
        return len(self.log()) if self.log_path.exists() else 0

    def running(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL the main process (its pool children die with it: Celery sets PDEATHSIG)."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(10)

    def sigterm(self):
        """Ask for a graceful stop; `wait_exit` tells how it went."""
        os.kill(self.pid, signal.SIGTERM)

    def wait_exit(self, timeout):
        return self.process.wait(timeout)

    def wait_healthy(self, url, timeout=60):
        """Until `url`/healthz answers 200; fails at once with the log if the process exits."""
        def healthy():
            if not self.running():
                return True
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(healthy, timeout, interval=0.1, what=f"{self.name} /healthz")
        if not self.running():
            raise RuntimeError(f"{self.name} exited at start-up:\n{self.log()[-3000:]}")
        return self

    def cleanup(self):
        """Kill whatever is left of the process group, whatever state it is in."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


class Worker(ServiceProcess):
    RECEIVED = re.compile(r"Task train_job\[[0-9a-f-]+\] received")
    FINISHED = re.compile(r"Task train_job\[[0-9a-f-]+\] (succeeded|raised|failed)")

    def tasks_received(self):
        return len(self.RECEIVED.findall(self.log()))

    def tasks_finished(self):
        """Task runs that ended, whatever their outcome (Celery logs one line per run)."""
        return len(self.FINISHED.findall(self.log()))

    def busy(self):
        return self.tasks_received() > self.tasks_finished()

    def wait_ready(self, timeout=60):
        wait_until(lambda: not self.running() or " ready." in self.log(), timeout, interval=0.1,
                   what=f"worker {self.name} ready")
        if not self.running():
            raise RuntimeError(f"worker {self.name} exited at start-up:\n{self.log()[-3000:]}")
        return self

    def pool_children(self):
        return children_of(self.pid)

    def kill_pool_children(self):
        """SIGKILL every pool process: with concurrency 1, the one running the job."""
        killed = self.pool_children()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        return killed


class Api(ServiceProcess):
    def __init__(self, name, env, log_dir, port):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "uvicorn", "services.api.app:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning"]
        super().__init__(name, command, env, log_dir)

    def wait_ready(self, timeout=60):
        return self.wait_healthy(self.url, timeout)


class Cluster:
    """The processes of one test: an API, any number of workers, and their cleanup.

    `api`: an API already running on the same database and broker (the tests' session API, see
    conftest.py), which `start_api` then hands out instead of starting one; it is not the cluster's to
    kill, and `logs` shows what it wrote since the cluster was made."""

    def __init__(self, database_url, broker_url, log_dir, api=None, **env_overrides):
        self.env = service_env(database_url, broker_url, **env_overrides)
        self.log_dir = log_dir
        self.processes = []
        self.workers = []
        self.api = None
        self._shared_api = api
        self._shared_api_log_start = api.log_size() if api else 0

    def start_api(self):
        if self._shared_api is not None:
            self.api = self._shared_api
            return self.api.wait_ready()
        self.api = Api("api", self.env, self.log_dir, free_port())
        self.processes.append(self.api.start())
        return self.api.wait_ready()

    def start_worker(self, name, concurrency=1, wait=True, **env_overrides):
        command = [sys.executable, "-m", "celery", "-A", "services.worker.celery_app", "worker",
                   "--hostname", f"{name}@%h", "--concurrency", str(concurrency), "--pool", "prefork",
                   "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        env = dict(self.env, **{key: str(value) for key, value in env_overrides.items()})
        worker = Worker(name, command, env, self.log_dir).start()
        self.processes.append(worker)
        self.workers.append(worker)
        return worker.wait_ready() if wait else worker

    def start_workers(self, *names):
        """Several workers started at once (their start-ups overlap), returned once all are ready."""
        return [worker.wait_ready() for worker in [self.start_worker(name, wait=False) for name in names]]

    def logs(self):
        shown = [f"===== {p.name} =====\n{p.log()[-4000:]}" for p in self.processes]
        if self._shared_api is not None:
            since = self._shared_api.log()[self._shared_api_log_start:]
            shown.insert(0, f"===== {self._shared_api.name} (the session's; this test's part) =====\n{since[-4000:]}")
        return "\n".join(shown)

    def cleanup(self):
        for process in self.processes:
            process.cleanup()
