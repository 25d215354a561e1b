"""Fixtures for the API tests: a real database (SQLite and PostgreSQL), the app on it, and
a recorder in place of the broker so no worker is needed."""
import json
import socket
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest
import uvicorn
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import delete

from core.nn import MLP
from services import queue
from services.config import get_settings
from services.store import db, jobs as job_store, keys
from services.store.models import Base

REPO = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def create_schema(url):
    """The schema as the service gets it: through the Alembic migrations."""
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    with empty_database(request.param, tmp_path_factory.mktemp("db")) as url:
        create_schema(url)
        yield url


@contextmanager
def empty_database(kind, directory):
    """A new, empty database ("sqlite" in `directory`, or "postgresql" uniquely named); dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'service.db'}"
        yield url
        db.get_engine(url).dispose()
        return
    name = f"api_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        db.get_engine(url).dispose()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def service_env(database_url, monkeypatch):
    """Settings from the environment, as in production, pointing at an emptied test database.
    Returns a function that sets more variables (call it before make_client)."""
    with db.get_engine(database_url).begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))

    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()

    set_env(DATABASE_URL=database_url, AUTH_REQUIRED="false", RATE_LIMIT_PER_MINUTE=100_000,
            AUTH_FAILURES_PER_MINUTE=100_000,  # the fuzzer and the auth tests send many refused keys
            API_KEY_SECRET="secret-of-the-service-tests")
    yield set_env
    get_settings.cache_clear()


@pytest.fixture
def enqueued(monkeypatch):
    """The job ids the API sent to the broker, in order."""
    sent = []
    monkeypatch.setattr(queue, "enqueue", lambda job_id: sent.append(str(job_id)))
    return sent


# The in-process client as our own clients talk to an open server: to a loopback Host (not Starlette's
# "testserver", which an open server refuses), with the header that lets a bodiless POST through.
LOOPBACK_URL = "http://127.0.0.1"
CLIENT_HEADERS = {"X-Requested-With": "mgs-tests"}


@pytest.fixture
def open_client():
    """open_client(app, **options) -> a TestClient that keeps one event loop (in its own thread) until the
    test ends, as a server does. Used without `with`, Starlette's TestClient starts a thread and an event
    loop for every request (~2.5 ms of CPU each, more than many requests cost the app). The app has no
    lifespan handlers, so entering the client only starts that loop."""
    with ExitStack() as clients:
        yield lambda app, **options: clients.enter_context(TestClient(app, **options))


@pytest.fixture
def make_client(service_env, enqueued, open_client):
    from services.api.app import create_app

    def make(**env):
        service_env(**env)
        return open_client(create_app(), base_url=LOOPBACK_URL, headers=CLIENT_HEADERS)
    return make


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def two_owners(service_env):
    """(alice's key, bob's key): API keys of two owners in the emptied test database, for the tests that one
    owner's jobs, sweeps and workers' jobs stay hidden from another."""
    with db.session_scope() as session:
        return keys.create_api_key(session, "alice"), keys.create_api_key(session, "bob")


@pytest.fixture
def serve():
    """serve(app) -> base URL: the app behind a real uvicorn on a free port, stopped after the test."""
    servers = []

    def start(app):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"
    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def submit(client, spec=None, key=None):
    response = client.post("/jobs", json=spec or {}, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def auth(key):
    return {"Authorization": f"Bearer {key}"} if key else {}


def finish_job(job_id, losses=(0.5, 0.25), svg="<svg xmlns='http://www.w3.org/2000/svg'/>", params=None,
               graph_error=None):
    """Play the worker: claim the job, write its history and results, mark it succeeded, then, as the worker
    draws the graph after the results, store `svg` (or why there is none, `graph_error`); neither: no graph
    was asked for. Returns the parameters it stored (by default an MLP(3, [4, 4, 1]) as the seed spec trains)."""
    params = params or MLP(3, [4, 4, 1], seed=1).to_json()
    drawn = svg is not None or graph_error is not None
    with db.session_scope() as session:
        token = run_job(session, job_id, losses)
        phases = job_store.finish_job(session, job_id, token, "succeeded", [], steps_done=len(losses),
                                      metrics={"final_loss": losses[-1], "accuracy": None, "val_loss": None,
                                               "val_accuracy": None, "steps_done": len(losses)},
                                      params_json=json.dumps(params), graph_pending=drawn,
                                      phase_seconds={"queue_wait": 0.002, "steps": 0.25})
        if drawn:
            assert job_store.store_graph(session, job_id, token, svg, graph_error, {**phases, "graph": 0.125})
    return params


def start_job(job_id, losses=(0.5,)):
    """Play a worker that is still running: claimed, with part of its history written."""
    with db.session_scope() as session:
        run_job(session, job_id, losses)


def run_job(session, job_id, losses):
    token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
    assert token, f"job {job_id} could not be claimed"
    points = [job_store.Point(step=i, loss=loss, lr=0.1) for i, loss in enumerate(losses)]
    job_store.record_progress(session, job_id, token, points, steps_done=len(losses), latest_loss=losses[-1])
    return token
