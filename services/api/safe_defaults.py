"""Safe defaults whatever starts the API (the embedded launcher, uvicorn by hand, a container):
an open server (no API keys) answers only on a loopback address, only to a loopback Host name (a web
page cannot reach it through DNS rebinding), and changes state only on a request that a web page of
another site cannot send without the browser asking first (a CORS preflight, which it never grants);
a server that requires keys does not start on the well-known default API_KEY_SECRET."""
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


def loopback_host(host: str | None) -> bool:
    """Whether a Host header names this machine's loopback: `localhost`, a loopback IP address
    (127.0.0.1, [::1], ...), with any port or none. A DNS-rebinding page's requests carry its own
    name (attacker.example), whatever address that name resolves to."""
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("["):  # [IPv6]:port
        name, _, port = host[1:].partition("]")
        if port and not port.startswith(":"):
            return False
        port = port[1:]
    else:
        name, _, port = host.partition(":")
    return (not port or port.isdigit()) and is_loopback(name)


def is_loopback(name: str) -> bool:
    """`localhost` or a loopback IP address (127.x.y.z, ::1)."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Our clients (the dashboard, `mgs`) send it on every request; any value will do. Like a JSON content
# type, a header that is not CORS-safelisted makes a browser ask the server first (a preflight), and
# this server grants no cross-origin request.
REQUEST_MARKER = "X-Requested-With"


def cross_site_safe(headers: dict) -> bool:
    """Whether a state-changing request is one a cross-site HTML form or a preflight-free fetch
    cannot send: a JSON body (`Content-Type: application/json`), or the REQUEST_MARKER header."""
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or REQUEST_MARKER.lower() in headers


class OpenOnlyOnLoopback:
    """ASGI middleware for a server without API keys, where any process or web page that reaches it
    acts as the owner: a request is refused, with a JSON `detail` saying why,
      - 403 if it arrives on a socket bound beyond loopback (e.g. uvicorn --host 0.0.0.0);
      - 421 (Misdirected Request) if its Host is not a loopback name (DNS rebinding);
      - 403 if it changes state (POST, PUT, PATCH, DELETE) with neither a JSON content type nor
        X-Requested-With (a cross-site form or simple fetch, e.g. POST /jobs/{id}/cancel)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal:
            await JSONResponse({"detail": refusal[1]}, status_code=refusal[0])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def refusal(scope):
        if bound_beyond_loopback(scope.get("server")):
            return 403, ("this server runs without API keys (AUTH_REQUIRED=false) and answers on a loopback "
                         "address only; set AUTH_REQUIRED=true")
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        if not loopback_host(headers.get("host")):
            return 421, ("this server runs without API keys (AUTH_REQUIRED=false) and answers only to a loopback "
                         "Host (localhost, 127.0.0.1, [::1]); use one of those names, or set AUTH_REQUIRED=true")
        if scope["method"] in STATE_CHANGING and not cross_site_safe(headers):
            return 403, (f"this server runs without API keys (AUTH_REQUIRED=false): a {scope['method']} needs "
                         f"Content-Type: application/json or an {REQUEST_MARKER} header (any value), which a "
                         f"web page of another site cannot send")
        return None
