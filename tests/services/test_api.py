"""The HTTP API against a real database (SQLite and PostgreSQL), the broker replaced by a recorder."""
import base64
import json
import uuid

import pytest

from core.nn import MLP
from services import queue
from services.api.routes import health
from services.store import db, jobs as job_store
from tests.services.conftest import finish_job, run_job, start_job, submit

JOB_ENDPOINTS = [("GET", ""), ("GET", "/loss"), ("GET", "/params"), ("GET", "/graph.svg"),
                 ("POST", "/predict"), ("POST", "/cancel")]


def call(client, method, path, **kwargs):
    if method == "POST" and path.endswith("/predict"):
        kwargs.setdefault("json", {"xs": [[1.0, 2.0, 3.0]]})
    return client.request(method, path, **kwargs)


def test_submit_creates_a_queued_job_and_sends_it(client, enqueued):
    response = client.post("/jobs", json={})
    assert response.status_code == 201
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    assert response.headers["Location"] == f"/jobs/{job_id}"
    assert enqueued == [job_id]

    job = client.get(response.headers["Location"]).json()
    assert job["status"] == "queued"
    assert job["spec"]["model"]["layers"] == [4, 4, 1]
    assert job["progress"] == {"step": 0, "total": 100, "latest_loss": None}
    assert job["attempts"] == 0 and job["error"] is None and job["timings"]["started_at"] is None
    assert job["timings"]["phases_ms"] is None


def test_submit_succeeds_when_the_broker_is_down(client, monkeypatch, caplog):
    def broker_down(job_id):
        raise ConnectionError("broker unreachable")
    monkeypatch.setattr(queue, "enqueue", broker_down)
    response = client.post("/jobs", json={})
    assert response.status_code == 201
    job_id = response.json()["id"]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "queued"
    assert f"could not enqueue job {job_id}" in caplog.text


@pytest.mark.parametrize("spec, loc", [
    ({"model": {"layers": [4, 0, 1]}}, ["body", "model", "layers", 1]),
    ({"steps": "many"}, ["body", "steps"]),
    ({"optimizer": {"lr": -1}}, ["body", "optimizer", "lr"]),
    ({"surprise": 1}, ["body", "surprise"]),
    ({"data": {"kind": "inline", "xs": [[1.0]], "ys": [1.0, 2.0]}}, ["body", "data", "inline"]),
])
def test_invalid_specs_are_422_naming_the_field(client, enqueued, spec, loc):
    response = client.post("/jobs", json=spec)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and e["msg"] for e in errors), errors
    assert enqueued == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_422_not_500(client, literal):
    body = f'{{"l2": {literal}}}'
    response = client.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "l2"]


@pytest.mark.parametrize("env, spec, loc", [
    ({"MAX_STEPS": 50}, {"steps": 51}, ["body", "steps"]),
    ({"MAX_SAMPLES": 20}, {"data": {"kind": "moons", "n_samples": 21}}, ["body", "data", "n_samples"]),
    ({"MAX_SAMPLES": 2}, {"data": {"kind": "inline", "xs": [[1.0]] * 3, "ys": [1.0] * 3}}, ["body", "data", "xs"]),
    ({"MAX_LAYER_WIDTH": 8}, {"model": {"layers": [4, 9, 1]}}, ["body", "model", "layers", 1]),
    ({"MAX_LAYER_WIDTH": 2}, {"data": {"kind": "inline", "xs": [[1.0, 2.0, 3.0]], "ys": [1.0]},
                              "model": {"layers": [1]}}, ["body", "data"]),
    ({"MAX_LAYERS": 3}, {"model": {"layers": [2, 2, 2, 1]}}, ["body", "model", "layers"]),
    ({"MAX_NODES_PER_STEP": 1000}, {"model": {"layers": [16, 16, 1]}}, ["body"]),
    ({"MAX_TIME_LIMIT_SECONDS": 10}, {"time_limit_seconds": 11}, ["body", "time_limit_seconds"]),
])
def test_specs_over_the_limits_are_422_before_anything_is_queued(make_client, enqueued, env, spec, loc):
    client = make_client(**env)
    response = client.post("/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [loc]
    assert "limit" in response.json()["detail"][0]["msg"]
    assert enqueued == [] and client.get("/jobs").json()["items"] == []


def test_a_spec_at_the_limits_is_accepted(make_client):
    client = make_client(MAX_STEPS=50, MAX_LAYERS=3, MAX_LAYER_WIDTH=4)
    assert client.post("/jobs", json={"steps": 50, "model": {"layers": [4, 4, 1]}}).status_code == 201


def test_declared_oversized_body_is_413(make_client):
    client = make_client(MAX_BODY_BYTES=1000)
    response = client.post("/jobs", content=b"{" + b" " * 2000 + b"}", headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


def test_unknown_job_is_404_on_every_endpoint(client):
    for method, suffix in JOB_ENDPOINTS:
        response = call(client, method, f"/jobs/{uuid.uuid4()}{suffix}")
        assert response.status_code == 404, (method, suffix)
        assert "no job" in response.json()["detail"]


def test_malformed_job_id_is_422_on_every_endpoint(client):
    for method, suffix in JOB_ENDPOINTS:
        response = call(client, method, f"/jobs/not-a-uuid{suffix}")
        assert response.status_code == 422, (method, suffix)
        assert response.json()["detail"][0]["loc"] == ["path", "job_id"]


def test_list_is_newest_first_filtered_and_paginated(client):
    ids = [submit(client, {"seed": i}) for i in range(5)]
    finish_job(ids[1])
    listed = client.get("/jobs").json()
    assert [job["id"] for job in listed["items"]] == ids[::-1]
    assert listed["next_cursor"] is None
    assert set(listed["items"][0]) == {"id", "name", "experiment", "tags", "status", "pruned", "created_at",
                                       "finished_at", "final_loss", "metrics"}

    assert [job["id"] for job in client.get("/jobs?status=succeeded").json()["items"]] == [ids[1]]
    assert len(client.get("/jobs?status=queued").json()["items"]) == 4

    pages, cursor = [], None
    while True:
        page = client.get("/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([job["id"] for job in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]


@pytest.mark.parametrize("query", ["status=done", "limit=0", "limit=201", "cursor=bogus"])
def test_bad_list_parameters_are_422(client, query):
    response = client.get(f"/jobs?{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


def cursor_of(*fields):
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


@pytest.mark.parametrize("cursor", [cursor_of("2026-01-01T00:00:00+00:00", 2),
                                    cursor_of("9999-12-31T23:59:59-14:00", str(uuid.UUID(int=1))),
                                    cursor_of("0001-01-01T00:00:00+14:00", str(uuid.UUID(int=1)))])
def test_a_well_encoded_cursor_with_bad_fields_is_422(client, cursor):
    response = client.get("/jobs", params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_running_job_shows_progress_and_partial_history(client):
    job_id = submit(client, {"steps": 10})
    start_job(job_id, losses=(0.9, 0.7, 0.6))
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "running" and job["attempts"] == 1
    assert job["progress"] == {"step": 3, "total": 10, "latest_loss": 0.6}
    assert job["timings"]["started_at"] is not None
    history = client.get(f"/jobs/{job_id}/loss").json()
    assert [(p["step"], p["loss"]) for p in history["points"]] == [(0, 0.9), (1, 0.7), (2, 0.6)]
    assert history["status"] == "running"


def test_finished_job_reports_metrics_params_and_graph(client):
    job_id = submit(client)
    params = finish_job(job_id, losses=(0.5, 0.25))
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["metrics"]["final_loss"] == 0.25 and job["metrics"]["steps_done"] == 2
    assert job["timings"]["finished_at"] is not None
    phases = job["timings"]["phases_ms"]
    assert (phases["queue_wait"], phases["steps"]) == (2.0, 250.0) and phases["save"] >= 0

    stored = client.get(f"/jobs/{job_id}/params")
    assert stored.status_code == 200 and stored.json() == params
    assert MLP.from_json(stored.json()).to_json() == params

    graph = client.get(f"/jobs/{job_id}/graph.svg")
    assert graph.status_code == 200
    assert graph.headers["content-type"].startswith("image/svg+xml")
    assert graph.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert graph.headers["x-content-type-options"] == "nosniff"
    assert graph.text.startswith("<svg")


def test_params_and_graph_of_an_unfinished_job_are_404_with_a_reason(client):
    job_id = submit(client)
    assert "no parameters yet" in client.get(f"/jobs/{job_id}/params").json()["detail"]
    assert "not finished" in client.get(f"/jobs/{job_id}/graph.svg").json()["detail"]


def test_a_graph_being_drawn_is_202_saying_so_with_retry_after_then_the_svg(client):
    """A succeeded job's graph is drawn after its results are saved: meanwhile graph.svg says so."""
    job_id = submit(client)
    assert client.get(f"/jobs/{job_id}").json()["graph"] == "pending"  # queued: to be drawn when it succeeds
    with db.session_scope() as session:
        token = run_job(session, job_id, (0.5,))
        job_store.finish_job(session, job_id, token, "succeeded", [], 1, {"final_loss": 0.5}, "{}",
                             graph_pending=True)
    job = client.get(f"/jobs/{job_id}").json()
    assert (job["status"], job["graph"]) == ("succeeded", "pending")
    response = client.get(f"/jobs/{job_id}/graph.svg")
    assert response.status_code == 202 and response.headers["retry-after"] == "1"
    assert response.json()["detail"] == f"job {job_id} has no graph yet: the graph is being drawn"
    with db.session_scope() as session:
        assert job_store.store_graph(session, job_id, token, "<svg/>", None)
    assert client.get(f"/jobs/{job_id}/graph.svg").text == "<svg/>"
    assert client.get(f"/jobs/{job_id}").json()["graph"] == "ready"


def test_the_graph_state_of_jobs_that_will_have_none_is_null(client):
    unasked = submit(client, {"record": {"graph_svg": False}})
    finish_job(unasked, svg=None)
    failed = submit(client)
    with db.session_scope() as session:
        job_store.fail_job(session, failed, run_job(session, failed, (0.5,)), "diverged at step 1")
    broken = submit(client)
    finish_job(broken, svg=None, graph_error="Graphviz stopped")
    assert [client.get(f"/jobs/{j}").json()["graph"] for j in (unasked, failed, broken)] == [None, None, "failed"]


def test_a_graph_cancelled_while_being_drawn_is_404_saying_so(client):
    job_id = submit(client)
    with db.session_scope() as session:
        token = run_job(session, job_id, (0.5,))
        job_store.finish_job(session, job_id, token, "succeeded", [], 1, {"final_loss": 0.5}, "{}",
                             graph_pending=True)
    assert client.post(f"/jobs/{job_id}/cancel").json()["status"] == "succeeded"
    with db.session_scope() as session:
        assert job_store.graph_wanted(session, job_id, token) is False
        job_store.store_graph(session, job_id, token, None, job_store.CANCELLED_WHILE_DRAWING)
    response = client.get(f"/jobs/{job_id}/graph.svg")
    assert response.status_code == 404
    assert response.json()["detail"] == f"job {job_id} has no graph: it was cancelled while the graph was being drawn"


def test_graph_not_recorded_is_404_saying_so(client):
    job_id = submit(client, {"record": {"graph_svg": False}})
    finish_job(job_id, svg=None)
    response = client.get(f"/jobs/{job_id}/graph.svg")
    assert response.status_code == 404 and "record.graph_svg" in response.json()["detail"]


def test_graph_that_could_not_be_drawn_is_404_with_the_renderers_message(client):
    job_id = submit(client)
    finish_job(job_id, svg=None, graph_error="Graphviz (WebAssembly) stopped: out of bounds memory access")
    response = client.get(f"/jobs/{job_id}/graph.svg")
    assert response.status_code == 404
    assert response.json()["detail"] == (f"job {job_id} has no graph: rendering it failed: "
                                         "Graphviz (WebAssembly) stopped: out of bounds memory access")


def test_graph_of_a_failed_job_is_404_saying_it_failed(client):
    job_id = submit(client)
    with db.session_scope() as session:
        job_store.fail_job(session, job_id, run_job(session, job_id, (0.5,)), "TrainingDiverged: loss is nan")
    assert client.get(f"/jobs/{job_id}/graph.svg").json()["detail"] == f"job {job_id} has no graph: it ended failed"


def test_predict_matches_the_stored_model(client):
    job_id = submit(client)
    params = finish_job(job_id)
    xs = [[2.0, 3.0, -1.0], [0.5, 1.0, 1.0]]
    response = client.post(f"/jobs/{job_id}/predict", json={"xs": xs})
    assert response.status_code == 200
    model = MLP.from_json(params)
    assert response.json()["ys"] == pytest.approx([model(x).data for x in xs])


def test_predict_builds_no_bigger_a_graph_than_a_training_step(make_client):
    client = make_client(MAX_NODES_PER_STEP=1000)  # the seed's MLP(3, [4, 4, 1]) is ~123 nodes a sample
    job_id = submit(client)
    finish_job(job_id)
    assert client.post(f"/jobs/{job_id}/predict", json={"xs": [[1.0, 2.0, 3.0]] * 8}).status_code == 200
    response = client.post(f"/jobs/{job_id}/predict", json={"xs": [[1.0, 2.0, 3.0]] * 9})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "xs"]]
    assert "graph nodes" in response.json()["detail"][0]["msg"]


def test_predict_before_success_is_409(client):
    job_id = submit(client)
    response = client.post(f"/jobs/{job_id}/predict", json={"xs": [[1.0, 2.0, 3.0]]})
    assert response.status_code == 409 and "queued" in response.json()["detail"]


@pytest.mark.parametrize("body, loc", [
    ({"xs": [[1.0, 2.0, 3.0], [1.0, 2.0]]}, ["body", "xs", 1]),
    ({"xs": []}, ["body", "xs"]),
    ({"xs": [[1.0, "a", 3.0]]}, ["body", "xs", 0, 1]),
    ({"xs": [[1.0, 2.0, 3.0]], "extra": 1}, ["body", "extra"]),
])
def test_predict_with_bad_inputs_is_422(client, body, loc):
    job_id = submit(client)
    finish_job(job_id)
    response = client.post(f"/jobs/{job_id}/predict", json=body)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [loc]


def test_cancel_a_queued_job_then_a_finished_one(client):
    queued = submit(client)
    response = client.post(f"/jobs/{queued}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"

    done = submit(client)
    finish_job(done)
    assert client.post(f"/jobs/{done}/cancel").json()["status"] == "succeeded"


def test_cancel_a_running_job_asks_the_worker_to_stop(client):
    job_id = submit(client)
    start_job(job_id)
    job = client.post(f"/jobs/{job_id}/cancel").json()
    assert job["status"] == "running" and job["cancel_requested"] is True


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_names_the_part_that_is_down(client, monkeypatch, caplog):
    monkeypatch.setattr(health.queue, "check_broker", lambda: None)
    assert client.get("/readyz").json() == {"status": "ready", "database": "ok", "broker": "ok"}

    def broker_down():
        raise ConnectionError("redis://:s3cret@10.0.0.5:6379 connection refused")
    monkeypatch.setattr(health.queue, "check_broker", broker_down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["broker"] == "down"  # which part, not its address or the driver's error
    assert "ConnectionError" in caplog.text and "s3cret" not in caplog.text


def test_dashboard_page_and_its_files_forbid_inline_script(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/app.js">' in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "connect-src 'self'" in csp
    module = client.get("/web/app.js")
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert module.headers["Content-Security-Policy"] == csp and module.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/web/../services/config.py").status_code == 404


def test_openapi_schema_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/jobs/{job_id}/loss",
                          "/jobs/{job_id}/params", "/jobs/{job_id}/graph.svg", "/jobs/{job_id}/predict",
                          "/jobs/{job_id}/events", "/jobs/{job_id}/boundary", "/healthz", "/readyz",
                          "/experiments", "/experiments/{experiment_id}",
                          "/sweeps", "/sweeps/{sweep_id}", "/sweeps/{sweep_id}/cancel", "/compare",
                          "/jobs/{job_id}/rerun", "/jobs/{job_id}/loss.csv", "/workers"}
    assert "image/svg+xml" in paths["/jobs/{job_id}/graph.svg"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize("spec, loc", [
    ({"optimizer": {"beta1": False}}, ["body", "optimizer", "beta1"]),
    ({"steps": "100"}, ["body", "steps"]),
    ({"steps": 10.0}, ["body", "steps"]),
])
def test_types_are_not_coerced(client, spec, loc):
    response = client.post("/jobs", json=spec)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [loc]


def test_predict_inputs_are_not_coerced(client):
    job_id = submit(client)
    finish_job(job_id)
    response = client.post(f"/jobs/{job_id}/predict", json={"xs": [[1.0, True, "3"]]})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "xs", 0, 1], ["body", "xs", 0, 2]]


def test_predict_with_a_non_finite_output_is_422_not_500(client):
    job_id = submit(client)
    linear = {"nin": 3, "layers": [{"activation": "linear", "neurons": [{"w": [10.0, 10.0, 10.0], "b": 0.0}]}]}
    finish_job(job_id, params=linear)
    assert client.post(f"/jobs/{job_id}/predict", json={"xs": [[1.0, 2.0, 3.0]]}).json() == {"ys": [60.0]}
    response = client.post(f"/jobs/{job_id}/predict", json={"xs": [[1.0, 2.0, 3.0], [1e308, 0.0, 0.0]]})
    assert response.status_code == 422
    assert "not finite" in response.json()["detail"]


def test_method_not_allowed_lists_every_method_of_the_path(client):
    response = client.request("DELETE", "/jobs")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_the_schema_says_a_key_is_optional_only_on_an_open_server(make_client):
    open_schema = make_client().get("/openapi.json").json()
    assert {} in open_schema["paths"]["/jobs"]["post"]["security"]
    locked_schema = make_client(AUTH_REQUIRED="true").get("/openapi.json").json()
    assert locked_schema["paths"]["/jobs"]["post"]["security"] == [{"HTTPBearer": []}]
