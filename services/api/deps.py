"""What a route needs besides its parameters: settings, a session, the caller's identity.

The dependencies are `async def`: FastAPI runs a sync dependency on a thread of the shared pool (a sync
generator twice: to enter and to leave), so a route with these five paid six thread hand-offs per request,
each a wake-up of a pool thread and of the event loop (py-spy: a tenth of the API's CPU under a burst of
POST /jobs). Most of what they do is quick in-memory work, and what may wait on the network runs on a thread
still: the per-owner rate limit where its window is in Redis, a session still holding a connection when the
request ends (a session is opened lazily: no connection until its first query, on the route's thread)."""
from collections import Counter
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from services.config import Settings
from services.api.authentication import Refused, authenticate
from services.store import db

bearer = HTTPBearer(auto_error=False, description="an API key made with `python -m services.cli keys create`")


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db():
    """The request's session. Routes close it as they return (routing.ReleaseSessionRoute); closing it here
    again costs nothing then, and one that still holds a connection (a route that raised mid-transaction) is
    rolled back and closed on a thread, not on the event loop."""
    session = db.get_session()
    try:
        yield session
    finally:
        await close(session)


async def get_read_db():
    """A session for a route that only reads: every statement is its own transaction (db.get_session's
    autocommit), so a lone SELECT is one round trip to PostgreSQL, not three (the driver's BEGIN, the SELECT,
    and the ROLLBACK when the session closes); SQLite's is the usual one. Statements do not share a snapshot."""
    session = db.get_session(autocommit=True)
    try:
        yield session
    finally:
        await close(session)


async def close(session: Session) -> None:
    if session.in_transaction():
        await run_in_threadpool(session.close)
    else:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
ReadSessionDep = Annotated[Session, Depends(get_read_db)]


async def current_owner(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The key's owner; without a key, "local" when the server runs open, else 401.

    The key was checked before the body was read, by authentication.AuthenticateFirst, which hands the owner
    on in the request's state (a route that depends on this is how it knows to check). `credentials` puts
    the bearer scheme in the OpenAPI schema. Without the middleware (an app built otherwise) the key is
    checked here, the same way."""
    owner = request.scope.get("state", {}).get("owner")
    if owner is not None:
        return owner
    try:
        return await run_in_threadpool(authenticate, request.headers.get("authorization"),
                                       request.app.state.settings.AUTH_REQUIRED)
    except Refused as refused:
        raise HTTPException(401, refused.detail, headers={"WWW-Authenticate": refused.challenge})


async def rate_limited_owner(request: Request, owner: Annotated[str, Depends(current_owner)]) -> str:
    limiter = request.app.state.rate_limiter
    wait = await run_in_threadpool(limiter.hit, owner) if limiter.uses_the_network else limiter.hit(owner)
    if wait:
        raise HTTPException(429, f"rate limit of {request.app.state.settings.RATE_LIMIT_PER_MINUTE} "
                                 f"requests per minute exceeded", headers={"Retry-After": str(wait)})
    return owner


OwnerDep = Annotated[str, Depends(rate_limited_owner)]


async def each_query_value_once(request: Request) -> None:
    """A query parameter that takes one value, given more than once (`?experiment=a&experiment=b`),
    is a 422 naming it; without this the framework would silently keep the last. Parameters that
    take a list (`tag`, `ids`) may repeat. What takes a list is read from the OpenAPI schema."""
    repeated = [name for name, count in Counter(k for k, _ in request.query_params.multi_items()).items()
                if count > 1]
    route = request.scope.get("route")
    if not repeated or route is None:
        return
    operation = request.app.openapi()["paths"].get(route.path_format, {}).get(request.method.lower(), {})
    single = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and not takes_a_list(p)}
    errors = [{"loc": ("query", name), "msg": "given more than once; this parameter takes one value",
               "type": "repeated_value"} for name in repeated if name in single]
    if errors:
        raise RequestValidationError(errors)


# Every router's own dependencies (services/api/app.py adds the routers' routes to each app as they are).
API_DEPENDENCIES = [Depends(each_query_value_once)]


def takes_a_list(parameter) -> bool:
    schema = parameter.get("schema", {})
    return any(s.get("type") == "array" for s in [schema, *schema.get("anyOf", [])])
