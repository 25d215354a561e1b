"""The embedded default (`make run`): the whole service on one machine, no servers to install.

SQLite holds the jobs, a second SQLite file is the broker (kombu's SQLAlchemy transport),
and two processes do the work: uvicorn serving the API, and a real Celery worker that
trains (training is CPU-bound Python; it must never slow the API down). Jobs queued before
a restart run after it: the worker's sweeper sends again what the broker will not."""
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.graph import auto_renderer
from services.api.safe_defaults import is_loopback
from services.config import get_settings
from services.redact import mask_passwords

REPO = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 30
GRAPH_RENDERERS = {"dot": "drawn by the system's Graphviz `dot`",
                   "wasm": "drawn by Graphviz compiled to WebAssembly (no system Graphviz found; pip installed it)"}
WORKER_COMMAND = ["celery", "-A", "services.worker.celery_app", "worker", "--concurrency=1",
                  "--loglevel=INFO", "--without-gossip", "--without-mingle", "--hostname=embedded@%h"]


def main() -> int:
    settings = get_settings()
    refuse_open_access_beyond_loopback(settings)
    # imported only now: a refusal (above) needs none of them (~1 CPU s)
    from alembic import command
    from alembic.config import Config

    from services import queue
    command.upgrade(Config(str(REPO / "alembic.ini")), "head")
    queue.recover_broker()  # an unreadable broker file: moved aside, started afresh, queued jobs sent again
    queue.check_broker()  # creates the broker's tables once, before two processes race to do it
    processes = [start(WORKER_COMMAND),
                 start(["uvicorn", "services.api.app:app", "--host", settings.HOST,
                               "--port", str(settings.PORT)])]
    announce(settings)
    stop_requested = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.append(True))
    try:
        while not stop_requested and all(p.poll() is None for p in processes):
            time.sleep(0.2)
    finally:
        stop(processes)
    crashed = [p for p in processes if p.returncode not in (0, -signal.SIGTERM)]
    return 1 if crashed and not stop_requested else 0


def refuse_open_access_beyond_loopback(settings) -> None:
    if not settings.AUTH_REQUIRED and not is_loopback(settings.HOST):
        sys.exit(f"refusing to serve on {settings.HOST} without API keys: the embedded default runs open "
                 f"on 127.0.0.1 only (set AUTH_REQUIRED=true and create keys with `python -m services.cli "
                 f"keys create --owner NAME` to serve beyond this machine)")


def announce(settings) -> None:
    url = f"http://{settings.HOST}:{settings.PORT}"
    access = ("API keys required" if settings.AUTH_REQUIRED
              else f"running OPEN, without API keys, on {settings.HOST} only")
    print(f"micrograd service on {url} ({access}); docs at {url}/docs; Ctrl-C stops it\n"
          f"  database {mask_passwords(settings.DATABASE_URL)}\n  broker   {mask_passwords(settings.BROKER_URL)}\n"
          f"  graphs   {GRAPH_RENDERERS[auto_renderer()]}", flush=True)


def start(argv: list[str]) -> subprocess.Popen:
    """A child in our process group: a terminal's Ctrl-C, or a kill of the group, reaches it too."""
    return subprocess.Popen([sys.executable, "-m", *argv], cwd=REPO)


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM: uvicorn drains its requests; the worker finishes its running job (warm shutdown) or,
    past the timeout, is killed and the job is run again by the sweeper on the next start."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
