"""Authentication before anything else is read, and a limit on failed attempts per client address.

FastAPI resolves a route's dependencies, the key check among them, only after it has read and parsed the
request body, so a request without a valid key cost a whole body (1.9 MB read and parsed per 401), and a
client could send refused keys as fast as the API answered. `AuthenticateFirst` is an ASGI middleware in
front of the app (and of the body-size limit, which reads bodies): for every request but those to the
public paths below it checks the Authorization header against the key store and answers 401 from the
headers alone, without taking one byte of the body; an accepted request goes on with the owner in
`scope["state"]["owner"]`, where `deps.current_owner` finds it (a key is looked up once). Public are the
paths that never needed a key: health, metrics, the API docs and the dashboard's files. Anything else needs
a key, including paths that do not exist (401 before 404) and methods a path does not take (401 before
405), as most servers authenticate before routing: a route added without a place in this list is
protected, never open by mistake.

Every refused attempt counts against the client's address: past AUTH_FAILURES_PER_MINUTE in a moving
60-second window, the address gets 429 with Retry-After on every attempt to authenticate, before any key
lookup, until the window frees. The window is services/api/rate_limit.py's (the `limits` package's moving
window, shared by the API processes when the service runs with Redis; see README, "Access control")."""
import ipaddress
import logging
from typing import Optional

from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.api.rate_limit import MovingWindow
from services.store import db, keys

log = logging.getLogger(__name__)
LOCAL_OWNER = "local"  # the owner of keyless requests on an open server
IPV6_PREFIX = 64  # one host (or one customer) commonly holds a whole /64
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                          "/redoc"})
# the dashboard's files; Swagger UI's and ReDoc's; our copy of ReDoc's script (services/api/docs.py)
PUBLIC_PREFIXES = ("/web", "/docs-assets", "/docs-redoc")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or any(path == p or path.startswith(p + "/") for p in PUBLIC_PREFIXES)


class Refused(Exception):
    """No valid key: 401 with this detail, and `error` in the WWW-Authenticate challenge when a key was sent."""

    def __init__(self, detail: str, error: Optional[str] = None):
        super().__init__(detail)
        self.detail, self.error = detail, error

    @property
    def challenge(self) -> str:
        return f'Bearer error="{self.error}"' if self.error else "Bearer"


class Throttled(Exception):
    """Too many refused attempts from this address: 429, retry after `wait` seconds."""

    def __init__(self, wait: int):
        super().__init__(f"retry in {wait} s")
        self.wait = wait


def authenticate(authorization: Optional[str], auth_required: bool) -> str:
    """The owner for this Authorization header value (None: no header). A key that is sent is always
    checked, even on an open server; without one the owner is "local" on an open server. Raises Refused."""
    if authorization is None:
        if auth_required:
            raise Refused("missing API key: send 'Authorization: Bearer <key>'")
        return LOCAL_OWNER
    scheme, key = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not key:
        raise Refused("malformed Authorization header: expected 'Bearer <key>'", error="invalid_request")
    with db.session_scope(autocommit=True) as session:  # one SELECT: one round trip
        owner = keys.owner_for_api_key(session, key)
    if owner is None:
        raise Refused("invalid or revoked API key", error="invalid_token")
    return owner


def client_address(scope) -> str:
    """Who is counted: the client's IP address, an IPv6 one by its /64 (the host may own all of it)."""
    host = (scope.get("client") or ("unknown", 0))[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d, an IPv4 client on a dual-stack socket
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))


class AuthenticateFirst:
    """ASGI middleware: see the module's docstring. `failures` counts refused attempts per client address;
    `on_database_error` is the app's handler for an unreachable database (it answers 503)."""

    def __init__(self, app, settings, failures: MovingWindow, on_database_error):
        self.app, self.settings, self.on_database_error = app, settings, on_database_error
        self.failures = failures

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_public(scope["path"]):
            return await self.app(scope, receive, send)
        authorization = Headers(scope=scope).get("authorization")
        if authorization is None and not self.settings.AUTH_REQUIRED:
            owner = LOCAL_OWNER  # no attempt to authenticate: nothing to check or count
        else:
            try:
                # in a thread: the key lookup asks the database, and the count may ask Redis
                owner = await run_in_threadpool(self._attempt, authorization, client_address(scope))
            except Throttled as throttled:
                return await self._answer(scope, receive, send, 429, (
                    f"too many failed authentication attempts from this address (more than "
                    f"{self.settings.AUTH_FAILURES_PER_MINUTE} a minute); retry in {throttled.wait} s"),
                    {"Retry-After": str(throttled.wait)})
            except Refused as refused:
                return await self._answer(scope, receive, send, 401, refused.detail,
                                          {"WWW-Authenticate": refused.challenge})
            except (OperationalError, InterfaceError) as e:
                response = await self.on_database_error(Request(scope), e)
                return await response(scope, receive, send)
        scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, receive, send)

    def _attempt(self, authorization: Optional[str], address: str) -> str:
        """The owner; raises Throttled before any lookup while the address is over its failures, Refused
        (counting a failure) when the key is not good."""
        wait = self.failures.wait(address)
        if wait:
            raise Throttled(wait)
        try:
            return authenticate(authorization, self.settings.AUTH_REQUIRED)
        except Refused:
            self.failures.hit(address)
            raise

    @staticmethod
    async def _answer(scope, receive, send, status, detail, headers):
        """The refusal, as JSON like every error. When the request has a body, which is left unread, the
        connection closes after the answer rather than wait for the rest of it."""
        request_headers = Headers(scope=scope)
        if request_headers.get("content-length", "0") != "0" or "transfer-encoding" in request_headers:
            headers = {**headers, "Connection": "close"}
        await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)

