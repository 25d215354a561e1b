"""More requests at once than the database pool has connections and the thread pool has threads: they queue,
none fails. benchmarks/load.py found the opposite (150 users: 27 answers 500 `QueuePool limit ... reached,
connection timed out`, p50 31 s, the API at 6 % CPU): a sync route ran its query on one thread, then waited
for another thread to validate its response while its session still held the connection; with every thread
waiting for a connection, nothing ran until the pool's timeout failed them. Here the pool is one connection
and the thread pool two threads, so a handful of requests is enough."""
import asyncio

import anyio.to_thread
import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import create_engine

from services.api.deps import get_db, get_read_db
from services.api.routing import ReleaseSessionRoute
from services.store import db, keys
from tests.services.conftest import auth

# How long a request may wait for the one connection: an upper bound only. The stall this tests is a deadlock
# (every request fails after it, however long: checked with 10 s), while a queued request waits for another
# request's queries, ms here, longer on a busy machine; at 3 s a slow one could have failed with a 500.
POOL_TIMEOUT_SECONDS = 10
THREADS = 2
REQUESTS = 8


@pytest.fixture
def one_connection(service_env, database_url, monkeypatch):
    """The API's engine with a pool of one connection (PostgreSQL, the stack's database)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the small pool is built for PostgreSQL's engine (SQLite's has hooks of its own)")
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=POOL_TIMEOUT_SECONDS)
    monkeypatch.setitem(db._engines, database_url, engine)
    db._session_factory.cache_clear()
    yield
    db._session_factory.cache_clear()
    engine.dispose()


def burst(app, requests):
    """All `requests` (method, path, key) at once on a THREADS-thread pool; their responses."""
    async def send():
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS  # this event loop's only
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
            return await asyncio.gather(*(client.request(method, path, headers=auth(key), json=body)
                                          for method, path, key, body in requests))
    return anyio.run(send)


@pytest.mark.parametrize("auth_required", ["true", "false"])
def test_requests_beyond_the_pools_queue_instead_of_failing(service_env, enqueued, one_connection, auth_required):
    service_env(AUTH_REQUIRED=auth_required)
    from services.api.app import create_app
    app = create_app()
    with db.session_scope() as session:
        key = keys.create_api_key(session, "alice")
    job_id = burst(app, [("POST", "/jobs", key, {})])[0].json()["id"]
    requests = [("GET", "/jobs", key, None), ("GET", f"/jobs/{job_id}", key, None),
                ("GET", f"/jobs/{job_id}/loss", key, None), ("POST", "/jobs", key, {})] * (REQUESTS // 4)
    responses = burst(app, requests)
    assert [r.status_code for r in responses] == [200, 200, 200, 201] * (REQUESTS // 4), \
        [r.text[:200] for r in responses if r.status_code >= 300]


def test_every_route_given_the_request_session_closes_it_as_it_returns(service_env):
    """A router added without `route_class=ReleaseSessionRoute` would bring the stall back."""
    from services.api.app import create_app
    routes = [route for route in api_routes(create_app().routes)
              if any(dependency.call in (get_db, get_read_db) for dependency in route.dependant.dependencies)]
    assert len(routes) > 20
    assert [route.path for route in routes if not isinstance(route, ReleaseSessionRoute)] == []


def api_routes(routes):
    """Every APIRoute, also those of included routers (FastAPI keeps an included router whole)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)
