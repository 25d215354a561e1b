"""The database unreachable: every database-backed endpoint answers 503 JSON with Retry-After, and the
kept-alive connection stays usable (it was a plain-text 500, then a reset connection)."""
import socket

import httpx
import pytest

from services.api.app import create_app

DATABASE_PATHS = [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/00000000-0000-0000-0000-000000000000"),
                  ("GET", "/jobs/00000000-0000-0000-0000-000000000000/loss"),
                  ("POST", "/jobs/00000000-0000-0000-0000-000000000000/cancel"),
                  ("POST", "/jobs/00000000-0000-0000-0000-000000000000/predict"),
                  ("GET", "/experiments"), ("GET", "/sweeps")]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def down(service_env, serve):
    """A server whose PostgreSQL refuses connections (nothing listens on its port)."""
    service_env(DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")
    return serve(create_app())


@pytest.mark.parametrize("method, path", DATABASE_PATHS)
def test_database_down_is_503_json_with_retry_after_and_the_connection_lives_on(down, method, path):
    body = {"xs": [[1.0]]} if path.endswith("/predict") else {}
    with httpx.Client(base_url=down, timeout=30) as http:
        response = http.request(method, path, json=body if method == "POST" else None)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"] and int(response.headers["Retry-After"]) >= 1
        assert "127.0.0.1" not in response.text and "gone" not in response.text
        assert http.get("/healthz").status_code == 200  # on the same kept-alive connection
        assert http.get("/readyz").status_code == 503
