"""The FastAPI application: routes, authentication before the body is read, the body-size limit, error
format and the dashboard."""
import logging

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from services.api.authentication import AuthenticateFirst
from services.api.body_limit import BodySizeLimit
from services.api.deps import each_query_value_once
from services.api.docs import add_redoc
from services.api.inference import InferenceSlots, ModelCache
from services.api.rate_limit import MovingWindow, window_storage
from services.api.metrics import instrument
from services.api.safe_defaults import OpenOnlyOnLoopback, refuse_default_secret
from services.api.routes import boundary, compare, events, experiments, health, jobs, sweeps, workers
from services.api.web import add_dashboard
from services.config import get_settings
from services.logs import use_json_logs_if_asked

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_SECONDS = 5
DOCS_ASSETS_URL = "/docs-assets"
HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def create_app() -> FastAPI:
    settings = get_settings()  # the same object the store reads (database, key secret)
    refuse_default_secret(settings)
    # /docs and /redoc with Swagger UI's and ReDoc's files served from the fastapi-offline package, not a
    # CDN; no online validator badge either (Swagger UI would fetch it from validator.swagger.io), and
    # our own /redoc, whose script asks no CDN for its footer logo (services/api/docs.py).
    app = FastAPIOffline(title="micrograd service", version="1.0",
                         description="Train small neural nets on a scalar autograd engine. "
                                     "Authenticate with `Authorization: Bearer <key>`.",
                         static_url=DOCS_ASSETS_URL, swagger_ui_parameters={"validatorUrl": None},
                         dependencies=[Depends(each_query_value_once)], redoc_url=None)
    add_redoc(app, DOCS_ASSETS_URL)
    app.state.settings = settings
    use_json_logs_if_asked()
    windows = window_storage(settings.BROKER_URL)  # the rate limits' counts: Redis with a Redis broker, else memory
    app.state.rate_limiter = MovingWindow(settings.RATE_LIMIT_PER_MINUTE, windows, "requests")
    app.state.inference_slots = InferenceSlots(settings.PREDICT_CONCURRENCY, settings.PREDICT_PER_OWNER)
    app.state.models = ModelCache(settings.PREDICT_CACHE_BYTES)
    for router in ROUTERS:
        add_routes(app, router)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, allow_every_method_of_the_path)
    for unreachable in (OperationalError, InterfaceError):
        app.add_exception_handler(unreachable, database_unavailable)
    app.add_middleware(BodySizeLimit, max_bytes=settings.MAX_BODY_BYTES)
    # Outside the body-size limit (which reads the body): the key is checked before any of it is read.
    app.add_middleware(AuthenticateFirst, settings=settings, on_database_error=database_unavailable,
                       failures=MovingWindow(settings.AUTH_FAILURES_PER_MINUTE, windows, "auth-failures"))
    if not settings.AUTH_REQUIRED:  # outside authentication: an open server's refusals come first
        app.add_middleware(OpenOnlyOnLoopback)
        log.warning("API keys are not required: requests without a key act as owner 'local'")
        document_auth_as_optional(app)
    # outside all of them, so that their 401, 403, 413, 421 and 429 answers are counted too
    instrument(app, settings)

    add_dashboard(app)
    return app


ROUTERS = (jobs.router, experiments.router, sweeps.router, compare.router, events.router, boundary.router,
           workers.router, health.router)


def add_routes(app: FastAPI, router) -> None:
    """The router's routes, the same objects in every app of the process. `app.include_router` makes an
    included router's routes anew for each app, on its first request (FastAPI 0.16x: every parameter's
    validator, 50-110 ms of CPU for ours); a server makes one app, but the tests make ~570. The routers carry
    what an include would add (their prefixes, and each_query_value_once: deps.API_DEPENDENCIES), so the
    app, its schema and its answers are those of an include."""
    app.router.routes.extend(router.routes)


def document_auth_as_optional(app):
    """On an open server the key is optional; say so in the schema (`{}` = no security needed)."""
    build_schema = app.openapi

    def openapi():
        if app.openapi_schema is None:
            for operations in build_schema()["paths"].values():
                for operation in operations.values():
                    if "security" in operation:
                        operation["security"].append({})
        return app.openapi_schema
    app.openapi = openapi


async def validation_error(request: Request, exc: RequestValidationError):
    """FastAPI's 422 format (loc, msg, type) without echoing the input back: the input may be
    large, and may hold NaN/infinity, which JSON cannot carry."""
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse(jsonable_encoder({"detail": detail}), status_code=422)


async def database_unavailable(request: Request, exc: Exception):
    """The database is down (or, on SQLite, locked past the busy timeout): 503 with Retry-After, as
    JSON like every other error, and the connection stays open (an unhandled error would be a 500 in
    plain text, then a reset connection). The log names the error class, not the driver's message,
    which may carry the database's address."""
    log.warning("database unreachable during %s %s (%s)", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"detail": "the database is unreachable; retry shortly"}, status_code=503,
                        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


async def allow_every_method_of_the_path(request: Request, exc: HTTPException):
    """Starlette's 405 lists only the methods of the first route on a path (GET /jobs hides
    POST /jobs); list those of every route on it."""
    if exc.status_code == 405:
        allowed = [method for method in HTTP_METHODS
                   if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                          for route in request.app.routes)]
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    return await http_exception_handler(request, exc)


app = create_app()
