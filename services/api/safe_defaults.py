"""Safe defaults whatever starts the API (the embedded launcher, uvicorn by hand, a container):
an open server (no API keys) answers only on a loopback address, and a server that requires keys
does not start on the well-known default API_KEY_SECRET."""
import ipaddress

from starlette.responses import JSONResponse

DEFAULT_API_KEY_SECRET = "insecure-dev-secret"


class DefaultSecret(RuntimeError):
    pass


def refuse_default_secret(settings) -> None:
    if settings.AUTH_REQUIRED and settings.API_KEY_SECRET == DEFAULT_API_KEY_SECRET:
        raise DefaultSecret("AUTH_REQUIRED=true with the default API_KEY_SECRET: anyone who reads the source "
                            "could forge the key hashes; set API_KEY_SECRET to a long random value")


def bound_beyond_loopback(server) -> bool:
    """Whether the socket this request came in on is bound to a non-loopback IP address. (A scope
    without one, or with a name instead of an address, as in-process test clients have, is not a socket.)"""
    if not server:
        return False
    try:
        return not ipaddress.ip_address(server[0]).is_loopback
    except ValueError:
        return False


class OpenOnlyOnLoopback:
    """ASGI middleware for a server without API keys: every request that arrives on a socket bound
    beyond loopback (e.g. uvicorn --host 0.0.0.0) gets 403 saying why."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and bound_beyond_loopback(scope.get("server")):
            response = JSONResponse({"detail": "this server runs without API keys (AUTH_REQUIRED=false) and "
                                               "answers on a loopback address only; set AUTH_REQUIRED=true"},
                                    status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
