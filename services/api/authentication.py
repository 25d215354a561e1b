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
lookup, until the window frees. Counting uses the `limits` package's moving window in this process's
memory (see README, "Access control")."""
import ipaddress
import logging
import math
import time
from typing import Optional

from fastapi.security.utils import get_authorization_scheme_param
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse

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
    with db.session_scope() as session:
        owner = keys.owner_for_api_key(session, key)
    if owner is None:
        raise Refused("invalid or revoked API key", error="invalid_token")
    return owner


class FailedAttempts:
    """Refused authentications per client address, in a moving 60-second window (`limits`)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.item = RateLimitItemPerMinute(per_minute) if per_minute else None
        self.window = MovingWindowRateLimiter(MemoryStorage())

    def wait(self, address: str) -> int:
        """0 if this address may try; else the seconds until its oldest failure leaves the window (>= 1)."""
        if self.item is None or self.window.test(self.item, address):
            return 0
        reset_at = self.window.get_window_stats(self.item, address).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def failed(self, address: str) -> None:
        if self.item is not None:
            self.window.hit(self.item, address)


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
    """ASGI middleware: see the module's docstring. `on_database_error` is the app's handler for an
    unreachable database (it answers 503)."""

    def __init__(self, app, settings, on_database_error):
        self.app, self.settings, self.on_database_error = app, settings, on_database_error
        self.failures = FailedAttempts(settings.AUTH_FAILURES_PER_MINUTE)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_public(scope["path"]):
            return await self.app(scope, receive, send)
        authorization = Headers(scope=scope).get("authorization")
        if authorization is None and not self.settings.AUTH_REQUIRED:
            owner = LOCAL_OWNER  # no attempt to authenticate: nothing to check or count
        else:
            address = client_address(scope)
            wait = self.failures.wait(address)
            if wait:
                return await self._answer(scope, receive, send, 429, (
                    f"too many failed authentication attempts from this address (more than "
                    f"{self.settings.AUTH_FAILURES_PER_MINUTE} a minute); retry in {wait} s"),
                    {"Retry-After": str(wait)})
            try:
                owner = await run_in_threadpool(authenticate, authorization, self.settings.AUTH_REQUIRED)
            except Refused as refused:
                self.failures.failed(address)
                return await self._answer(scope, receive, send, 401, refused.detail,
                                          {"WWW-Authenticate": refused.challenge})
            except (OperationalError, InterfaceError) as e:
                response = await self.on_database_error(Request(scope), e)
                return await response(scope, receive, send)
        scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, receive, send)

    @staticmethod
    async def _answer(scope, receive, send, status, detail, headers):
        """The refusal, as JSON like every error. When the request has a body, which is left unread, the
        connection closes after the answer rather than wait for the rest of it."""
        request_headers = Headers(scope=scope)
        if request_headers.get("content-length", "0") != "0" or "transfer-encoding" in request_headers:
            headers = {**headers, "Connection": "close"}
        await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)

