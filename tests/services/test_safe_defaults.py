"""Safe defaults whoever starts the API: open only on loopback, no default key secret with keys required."""
import asyncio

import pytest

from services.api.safe_defaults import DefaultSecret, DEFAULT_API_KEY_SECRET


def call(app, server, path="/jobs"):
    """One GET through the ASGI app as uvicorn would pass it, from a socket bound to `server`."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", f"{server[0]}:{server[1]}".encode())], "server": server,
             "client": ("127.0.0.1", 50000)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_an_open_server_refuses_requests_on_a_non_loopback_address(make_client):
    app = make_client().app  # AUTH_REQUIRED=false
    status, body = call(app, ("192.0.2.7", 8000))
    assert status == 403 and b"AUTH_REQUIRED" in body
    assert call(app, ("127.0.0.1", 8000))[0] == 200
    assert call(app, ("::1", 8000), path="/healthz")[0] == 200


def test_a_locked_server_answers_on_any_address(make_client):
    app = make_client(AUTH_REQUIRED="true").app
    assert call(app, ("192.0.2.7", 8000))[0] == 401  # asks for a key, as on loopback


def test_keys_required_with_the_default_secret_does_not_start(make_client):
    with pytest.raises(DefaultSecret, match="API_KEY_SECRET"):
        make_client(AUTH_REQUIRED="true", API_KEY_SECRET=DEFAULT_API_KEY_SECRET)


def test_the_refused_secret_is_the_settings_default():
    from services.config import Settings
    assert Settings.model_fields["API_KEY_SECRET"].default == DEFAULT_API_KEY_SECRET
