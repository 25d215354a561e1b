"""Safe defaults whoever starts the API: open only on loopback, no default key secret with keys required."""
import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api.safe_defaults import DefaultSecret, DEFAULT_API_KEY_SECRET
from services.store import db, keys
from tests.services.conftest import LOOPBACK_URL, REPO, auth, finish_job, submit


def call(app, server, path="/jobs"):
    """One GET through the ASGI app as uvicorn would pass it, from a socket bound to `server`."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", f"{host(server[0])}:{server[1]}".encode())], "server": server,
             "client": ("127.0.0.1", 50000)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def host(address):
    return f"[{address}]" if ":" in address else address  # an IPv6 address in a Host header is bracketed


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


# ---- open mode vs DNS rebinding and cross-site requests (issue 9 item 6) ---------------------------------

def bare_client(app, base_url=LOOPBACK_URL):
    """A client that sends only what a test gives it (no X-Requested-With), as a web page's request would."""
    return TestClient(app, base_url=base_url)


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "192.0.2.7:8000", "10.0.0.1",
                                  "localhost.attacker.example", "127.0.0.1.nip.io:8000", "testserver", "::1",
                                  "localhost:http", "[::1]x", ""])
def test_an_open_server_refuses_a_host_that_is_not_loopback(make_client, host):
    """DNS rebinding: a page of attacker.example whose name now resolves to 127.0.0.1 reads and writes
    through the victim's browser; its requests carry `Host: attacker.example`."""
    client = make_client()
    job_id = submit(client)
    for method, path in (("GET", "/jobs"), ("GET", f"/jobs/{job_id}/params"), ("POST", f"/jobs/{job_id}/cancel")):
        response = client.request(method, path, headers={"Host": host})
        assert response.status_code == 421, (method, path, response.text)
        assert "loopback Host" in response.json()["detail"]
    assert client.get(f"/jobs/{job_id}").json()["cancel_requested"] is False


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LocalHost:1", "127.0.0.1", "127.0.0.1:8000",
                                  "127.1.2.3:9", "[::1]", "[::1]:8000"])
def test_an_open_server_answers_to_a_loopback_host(make_client, host):
    assert make_client().get("/jobs", headers={"Host": host}).status_code == 200


def test_a_rebound_name_is_refused_on_a_real_socket(make_client, serve):
    url = serve(make_client().app)  # uvicorn on 127.0.0.1, as `make run` serves
    assert httpx.get(f"{url}/jobs", headers={"Host": "attacker.example"}).status_code == 421
    assert httpx.get(f"{url}/jobs").status_code == 200  # Host: 127.0.0.1:<port>
    assert httpx.get(f"{url.replace('127.0.0.1', 'localhost')}/jobs").status_code == 200


# What a web page of another site can send without a preflight: an HTML form (urlencoded, multipart,
# text/plain) or a fetch with a safelisted content type or none (a Blob without a type).
CROSS_SITE_BODIES = [{}, {"content": b'{"spec": {}}'},
                     {"content": b'{"spec": {}}', "headers": {"Content-Type": "text/plain"}},
                     {"content": b"a=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                     {"files": {"f": ("f.json", b"{}")}}]


@pytest.mark.parametrize("body", CROSS_SITE_BODIES, ids=["none", "untyped", "text", "form", "multipart"])
def test_an_open_server_refuses_a_cross_site_state_change(make_client, body):
    client = make_client()
    job_id, done = submit(client), submit(client)
    finish_job(done)
    sweep_id = client.post("/sweeps", json={"space": {"seed": [1, 2]}, "trials": 2}).json()["id"]
    experiment_id = client.get(f"/jobs/{done}").json()["experiment_id"]
    page = bare_client(client.app)
    jobs_before = client.get("/jobs").json()["items"]
    for method, path in (("POST", "/jobs"), ("POST", f"/jobs/{job_id}/cancel"), ("POST", f"/jobs/{done}/rerun"),
                         ("PATCH", f"/jobs/{done}"), ("DELETE", f"/jobs/{done}"),
                         ("POST", f"/sweeps/{sweep_id}/cancel"), ("POST", "/experiments"),
                         ("POST", f"/jobs/{done}/predict")):
        response = page.request(method, path, **body)
        assert response.status_code == 403, (method, path, response.text)
        assert "X-Requested-With" in response.json()["detail"]
    if experiment_id:
        assert page.delete(f"/experiments/{experiment_id}").status_code == 403
    assert client.get("/jobs").json()["items"] == jobs_before  # nothing created, cancelled, edited or deleted
    assert client.get(f"/sweeps/{sweep_id}").json()["status"] != "cancelled"


def test_an_open_server_takes_a_state_change_with_json_or_the_header(make_client):
    client = make_client()
    page = bare_client(client.app)
    assert page.get("/jobs").status_code == 200  # reads need neither
    created = page.post("/jobs", content=b"{}", headers={"Content-Type": "application/json; charset=utf-8"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    cancelled = page.post(f"/jobs/{job_id}/cancel", headers={"X-Requested-With": "anything"})  # no body
    assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"] is True
    finish_job(submit(client))
    assert page.post(f"/jobs/{job_id}/rerun", headers={"X-Requested-With": ""}).status_code == 201


def test_a_server_with_keys_does_not_need_the_open_servers_checks(make_client):
    """A bearer key is a header no web page can attach to another site's request (no cookie, nothing
    ambient), and a rebinding page has no key: with keys required, any Host (the stack is reached by
    whatever name it has) and a bodiless POST are fine; without the key, still 401."""
    client = make_client(AUTH_REQUIRED="true")
    with db.session_scope() as session:
        key = keys.create_api_key(session, "alice")
    page = bare_client(client.app, base_url="http://mgs.example.org")
    job_id = submit(page, key=key)
    cancelled = page.post(f"/jobs/{job_id}/cancel", headers=auth(key))
    assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"] is True
    assert page.post(f"/jobs/{job_id}/cancel").status_code == 401
    assert page.get("/jobs", headers={"Host": "attacker.example"}).status_code == 401


def test_the_cli_and_the_dashboard_send_the_header():
    from services.cli.common import Api
    assert "X-Requested-With" in Api("http://127.0.0.1:8000", None).http.headers
    assert "X-Requested-With" in (REPO / "services/web/api.js").read_text()


def test_the_open_servers_refusals_are_counted_in_metrics(make_client):
    """The 421 (a Host that is not loopback) and the 403 (a cross-site write) are answers like any other:
    counted, and timed, in /metrics."""
    client = make_client()
    assert client.get("/jobs", headers={"Host": "attacker.example"}).status_code == 421
    assert bare_client(client.app).post("/jobs", content=b"a=1").status_code == 403
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/jobs",method="GET",status="4xx"} 1.0' in text
    assert 'http_requests_total{handler="/jobs",method="POST",status="4xx"} 1.0' in text
    assert 'http_request_duration_seconds_count{handler="/jobs",method="POST"} 1.0' in text
