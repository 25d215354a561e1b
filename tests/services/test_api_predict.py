"""POST /jobs/{id}/predict under load: limits before loading, a bounded number in flight, a model cache."""
import threading
import time

from core.predict import Forward
from services.api.inference import ModelCache
from services.store import jobs as job_store
from tests.services.conftest import auth, finish_job, submit
from tests.services.test_auth import new_key

XS = [[1.0, 2.0, 3.0]]


def count_loads(monkeypatch):
    loads = []
    real = job_store.get_artifact

    def get_artifact(session, job_id, kind):
        loads.append(kind)
        return real(session, job_id, kind)
    monkeypatch.setattr(job_store, "get_artifact", get_artifact)
    return loads


def test_a_request_over_the_limits_is_refused_before_the_parameters_are_loaded(make_client, monkeypatch):
    client = make_client(MAX_NODES_PER_STEP=1000)  # the seed's MLP(3, [4, 4, 1]): 41 parameters, 123 nodes a sample
    job_id = submit(client)
    finish_job(job_id)
    loads = count_loads(monkeypatch)
    assert client.post(f"/jobs/{job_id}/predict", json={"xs": XS * 9}).status_code == 422
    assert client.post(f"/jobs/{job_id}/predict", json={"xs": [[1.0, 2.0]]}).status_code == 422
    assert loads == []


def test_a_loaded_model_is_reused(client, monkeypatch):
    job_id = submit(client)
    finish_job(job_id)
    loads = count_loads(monkeypatch)
    first = client.post(f"/jobs/{job_id}/predict", json={"xs": XS}).json()
    assert client.post(f"/jobs/{job_id}/predict", json={"xs": XS}).json() == first
    assert loads == ["params"]


def test_the_model_cache_holds_at_most_its_bytes():
    class Model:
        def __init__(self, nbytes):
            self.nbytes = nbytes
    cache = ModelCache(max_bytes=100)
    a, b, c = Model(40), Model(40), Model(40)
    assert cache.get("a", lambda: a) is a and cache.get("b", lambda: b) is b
    assert cache.get("a", lambda: Model(1)) is a  # a is now the most recently used
    assert cache.get("c", lambda: c) is c  # evicts b
    assert cache.get("b", lambda: Model(40)) is not b and len(cache) == 2
    huge = Model(1000)
    assert cache.get("h", lambda: huge) is huge and cache.get("h", lambda: Model(1)) is not huge


def test_one_owner_saturating_predict_leaves_another_owners_reads_alone(make_client, monkeypatch):
    """Every predict of alice is held inside its forward pass: her third is refused (429), bob's
    predict finds the server full (503), and bob's reads answer while hers are still in flight."""
    client = make_client(AUTH_REQUIRED="true", PREDICT_CONCURRENCY=2, PREDICT_PER_OWNER=2)
    alice, bob = new_key("alice"), new_key("bob")
    job_id = submit(client, key=alice)
    finish_job(job_id)
    bobs_job = submit(client, key=bob)
    finish_job(bobs_job)
    release, inside = threading.Event(), []
    real_forward = Forward.__call__

    def held_forward(self, xs):
        inside.append(1)
        release.wait(60)
        return real_forward(self, xs)
    monkeypatch.setattr(Forward, "__call__", held_forward)
    statuses = []

    def alices_predict():
        statuses.append(client.post(f"/jobs/{job_id}/predict", json={"xs": XS}, headers=auth(alice)).status_code)
    in_flight = [threading.Thread(target=alices_predict) for _ in range(2)]
    try:
        for thread in in_flight:
            thread.start()
        waited = time.monotonic() + 60
        while len(inside) < 2 and time.monotonic() < waited:
            time.sleep(0.01)
        assert len(inside) == 2, "alice's predicts never reached the forward pass"
        refused = client.post(f"/jobs/{job_id}/predict", json={"xs": XS}, headers=auth(alice))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        busy = client.post(f"/jobs/{bobs_job}/predict", json={"xs": XS}, headers=auth(bob))
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1
        assert busy.json()["detail"]
        listed = client.get("/jobs", headers=auth(bob))
        assert listed.status_code == 200 and [j["id"] for j in listed.json()["items"]] == [bobs_job]
        assert client.get(f"/jobs/{bobs_job}", headers=auth(bob)).status_code == 200
        assert statuses == [] and all(t.is_alive() for t in in_flight)  # alice's still running
    finally:
        release.set()
        for thread in in_flight:
            thread.join(timeout=30)
    assert statuses == [200, 200]
    assert client.post(f"/jobs/{bobs_job}/predict", json={"xs": XS}, headers=auth(bob)).status_code == 200
