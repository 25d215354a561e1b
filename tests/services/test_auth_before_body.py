"""The key is checked before the body is read: a request without a valid key gets its 401 without
one byte of its body taken from the server (it was read, and parsed, first: 1.9 MB per 401)."""
import asyncio
import socket
from urllib.parse import urlsplit

import pytest

from services.api.authentication import is_public
from services.store import db, keys
from tests.services.conftest import auth, submit

BIG_BODY = b'{"xs": [' + b"[0.5]," * 316_000 + b"[0.5]]}"  # 1.9 MB of JSON
JOB = "00000000-0000-0000-0000-000000000000"
WRITES = [("POST", "/jobs"), ("POST", "/sweeps"), ("POST", "/experiments"), ("PATCH", f"/jobs/{JOB}"),
          ("POST", f"/jobs/{JOB}/predict"), ("POST", f"/jobs/{JOB}/rerun")]
REFUSED = {"no key": [], "a wrong key": [(b"authorization", b"Bearer mgs_not-a-key")],
           "a malformed header": [(b"authorization", b"Basic YWxpY2U6c2VjcmV0")]}


def new_key(owner):
    with db.session_scope() as session:
        return keys.create_api_key(session, owner)


def call(app, method, path, headers, body=BIG_BODY):
    """Runs one request through the ASGI app; returns (status, response headers, whether the app
    asked for the body)."""
    asked = []
    sent = []

    async def receive():
        asked.append(True)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()), *headers],
             "client": ("198.51.100.20", 40000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], dict(start["headers"]), bool(asked)


@pytest.mark.parametrize("method, path", WRITES)
@pytest.mark.parametrize("refused", REFUSED)
def test_a_locked_server_refuses_a_bad_key_without_reading_the_body(make_client, method, path, refused):
    app = make_client(AUTH_REQUIRED="true").app
    status, headers, read = call(app, method, path, REFUSED[refused])
    assert status == 401
    assert headers[b"www-authenticate"].startswith(b"Bearer")
    assert not read, "the body was read before the key was checked"
    assert headers[b"connection"] == b"close"  # the client need not send the rest of it


def test_an_open_server_refuses_a_wrong_key_without_reading_the_body(make_client):
    app = make_client().app
    status, _, read = call(app, "POST", "/jobs", REFUSED["a wrong key"])
    assert status == 401 and not read


def test_a_good_key_still_reaches_the_route_with_its_body(make_client, enqueued):
    app = make_client(AUTH_REQUIRED="true").app
    key = new_key("alice")
    status, _, read = call(app, "POST", "/jobs", [(b"authorization", f"Bearer {key}".encode())], body=b"{}")
    assert status == 201 and read and len(enqueued) == 1


def test_the_401_comes_before_a_body_that_never_arrives(make_client, serve):
    """Over a real socket: headers announcing 1.9 MB, then silence. The 401 must not wait for it
    (the body-size limit used to read it all first)."""
    url = urlsplit(serve(make_client(AUTH_REQUIRED="true").app))
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Authorization: Bearer mgs_wrong\r\nContent-Length: 1900000\r\n\r\n" + b"[" * 1000)
        try:
            answer = connection.recv(4096)
        except socket.timeout:
            pytest.fail("no answer in 10 s: the server waited for the body before checking the key")
    assert answer.startswith(b"HTTP/1.1 401 "), answer


PUBLIC = ["/healthz", "/readyz", "/metrics", "/", "/web/app.js", "/docs", "/redoc", "/openapi.json",
          "/docs/oauth2-redirect", "/docs-redoc/redoc.standalone.js"]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_paths_stay_public_on_a_locked_server(make_client, monkeypatch, path):
    from services.api.routes import health
    monkeypatch.setattr(health.queue, "check_broker", lambda: None)
    client = make_client(AUTH_REQUIRED="true")
    assert client.get(path).status_code == 200


def test_only_the_public_paths_are_public(make_client):
    """The middleware's list of public paths and the routes agree: an operation without security in the
    schema is public, every other one needs a key; paths and methods that do not exist need one too."""
    client = make_client(AUTH_REQUIRED="true")
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            assert is_public(path) == ("security" not in operation), (method, path)
    assert client.get("/no-such-thing").status_code == 401
    assert client.put("/jobs", json={}).status_code == 401
    assert make_client(AUTH_REQUIRED="false").get("/no-such-thing").status_code == 404  # open: nothing to check


def test_the_owner_is_the_keys_everywhere(make_client, enqueued):
    """The middleware hands the checked owner on: the routes act for the key's owner."""
    client = make_client(AUTH_REQUIRED="true")
    alice = new_key("alice")
    job_id = submit(client, key=alice)
    assert client.get(f"/jobs/{job_id}", headers=auth(alice)).json()["id"] == job_id
    assert client.get(f"/jobs/{job_id}", headers=auth(new_key("bob"))).status_code == 404


def test_a_key_checked_while_the_database_is_down_is_503(service_env):
    """The key lookup now happens in the middleware, outside the app's error handlers: an unreachable
    database is still 503 JSON with Retry-After, not a 500."""
    from fastapi.testclient import TestClient

    from services.api.app import create_app
    service_env(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/gone", AUTH_REQUIRED="true")
    response = TestClient(create_app()).get("/jobs", headers=auth("mgs_some-key"))
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert response.json()["detail"] and "gone" not in response.text
