"""Routes whose database session gives its connection back as the route function returns.

FastAPI runs a sync route function on a thread of the shared pool (anyio's, 40 threads), then validates what it
returned on *another* thread of that pool, and only then closes the request's session (deps.get_db, on a
thread outside the pool). A session that has read anything holds a pooled connection until it is closed, so
between the route and the close a request waited for a thread while holding a connection. With more requests
in flight than the database pool has connections (SQLAlchemy's 5 + 10 overflow), every thread could be waiting
for a connection that only a request waiting for a thread would give back: nothing ran until the pool's 30 s
timeout failed them with 500s (benchmarks/load.py, 150 users: p50 31 s, the API at 6 % CPU). Closing the
session on the route's own thread as it returns means no request waits for a thread while holding a connection.

What a route returns is already built (response models, plain values; no ORM object is loaded from later), so
closing early changes nothing else: loaded objects keep their state (detached, not expired), uncommitted
changes are discarded as the close after the response discarded them, and the session can be used again (it
begins anew). Async routes manage their own sessions and are left as they are."""
import functools
import inspect

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session


class ReleaseSessionRoute(APIRoute):
    """An APIRoute whose sync endpoint closes the sessions it was given before it returns (see above)."""

    def __init__(self, path, endpoint, **kwargs):
        super().__init__(path, release_sessions(endpoint), **kwargs)


def release_sessions(endpoint):
    if inspect.iscoroutinefunction(endpoint) or inspect.isgeneratorfunction(endpoint) \
            or inspect.isasyncgenfunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)  # FastAPI reads the signature, name and docstring through __wrapped__
    def route(*args, **kwargs):
        try:
            return endpoint(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    value.close()
    return route
