"""Access control: API keys, owners, per-owner rate and concurrency limits."""
import pytest

from services.store import db, keys
from tests.services.conftest import auth, finish_job, submit

JOB_ENDPOINTS = [("GET", ""), ("GET", "/loss"), ("GET", "/params"), ("GET", "/graph.svg"),
                 ("POST", "/predict"), ("POST", "/cancel"), ("GET", "/events")]


def new_key(owner):
    with db.session_scope() as session:
        return keys.create_api_key(session, owner)


def revoke(key):
    with db.session_scope() as session:
        key_id = next(k.id for k in keys.list_api_keys(session) if keys.hash_key(key) == k.key_hash)
        assert keys.revoke_api_key(session, key_id)


@pytest.fixture
def locked(make_client):
    return make_client(AUTH_REQUIRED="true")


def test_without_a_key_a_locked_server_is_401_with_a_challenge(locked):
    for path in ("/jobs", "/jobs/00000000-0000-0000-0000-000000000000"):
        response = locked.get(path)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert locked.post("/jobs", json={}).status_code == 401


@pytest.mark.parametrize("header", ["Bearer not-a-key", "Basic YWxpY2U6c2VjcmV0", "Bearer", "mgs_abc"])
def test_invalid_or_malformed_keys_are_401(locked, header):
    response = locked.get("/jobs", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_and_page_need_no_key(locked):
    assert locked.get("/healthz").status_code == 200
    assert locked.get("/").status_code == 200


def test_another_owners_job_is_404_everywhere_and_the_list_is_scoped(locked):
    alice, bob = new_key("alice"), new_key("bob")
    job_id = submit(locked, key=alice)
    finish_job(job_id)
    bobs_job = submit(locked, key=bob)
    for method, suffix in JOB_ENDPOINTS:
        kwargs = {"json": {"xs": [[1.0, 2.0, 3.0]]}} if suffix == "/predict" else {}
        theirs = locked.request(method, f"/jobs/{job_id}{suffix}", headers=auth(bob), **kwargs)
        assert theirs.status_code == 404, (method, suffix)
        mine = locked.request(method, f"/jobs/{job_id}{suffix}", headers=auth(alice), **kwargs)
        assert mine.status_code == 200, (method, suffix)
    assert [j["id"] for j in locked.get("/jobs", headers=auth(alice)).json()["items"]] == [job_id]
    assert [j["id"] for j in locked.get("/jobs", headers=auth(bob)).json()["items"]] == [bobs_job]
    assert locked.get(f"/jobs/{job_id}", headers=auth(alice)).json()["status"] == "succeeded"  # bob's cancel did nothing


def test_a_revoked_key_is_401(locked):
    key = new_key("carol")
    assert locked.get("/jobs", headers=auth(key)).status_code == 200
    revoke(key)
    assert locked.get("/jobs", headers=auth(key)).status_code == 401


def test_an_open_server_treats_keyless_requests_as_local_but_still_checks_keys(client):
    local_job = submit(client)
    dave = new_key("dave")
    daves_job = submit(client, key=dave)
    assert [j["id"] for j in client.get("/jobs").json()["items"]] == [local_job]
    assert [j["id"] for j in client.get("/jobs", headers=auth(dave)).json()["items"]] == [daves_job]
    assert client.get(f"/jobs/{daves_job}").status_code == 404
    assert client.get("/jobs", headers=auth("mgs_forged")).status_code == 401


def test_over_the_request_rate_is_429_with_retry_after(make_client):
    client = make_client(RATE_LIMIT_PER_MINUTE=3)
    erin = new_key("erin")
    assert [client.get("/jobs").status_code for _ in range(3)] == [200] * 3
    refused = client.get("/jobs")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/jobs", headers=auth(erin)).status_code == 200  # limits are per owner


def test_too_many_active_jobs_is_429_with_retry_after(make_client, enqueued):
    client = make_client(MAX_ACTIVE_JOBS_PER_OWNER=2)
    first, _ = submit(client), submit(client)
    refused = client.post("/jobs", json={})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "limit is 2" in refused.json()["detail"]
    assert len(enqueued) == 2
    submit(client, key=new_key("frank"))  # another owner is not affected
    finish_job(first)
    submit(client)  # a finished job frees its slot
