"""GET /jobs/{id}/events (Server-Sent Events, resumable) and GET /jobs/{id}/boundary."""
import json
import math
import uuid

from core.nn import MLP
from core.train import predict
from services.api.schemas import LossPointOut, finite_or_none
from services.store import db, jobs as job_store
from tests.services.conftest import finish_job, start_job, submit

MOONS = {"model": {"layers": [4, 1]}, "data": {"kind": "moons", "n_samples": 30}, "loss": "hinge", "steps": 2}


def events(client, job_id, last_event_id=None):
    """The stream's events as dicts (event, id, data, retry), read to its end."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    response = client.get(f"/jobs/{job_id}/events", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    parsed = []
    for block in response.text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        if fields:
            parsed.append(fields)
    return parsed


def test_a_finished_jobs_stream_sends_its_history_then_ends(client):
    job_id = submit(client)
    finish_job(job_id, losses=(0.5, 0.25, 0.125))
    first, end = events(client, job_id)
    assert first == {"retry": "1000"}
    assert end["event"] == "end" and end["id"] == "2" and end["data"]["status"] == "succeeded"
    assert [p["loss"] for p in end["data"]["points"]] == [0.5, 0.25, 0.125]


def test_event_points_carry_the_loss_point_fields_as_before(make_client):
    """The points are serialized from columns now, not one LossPointOut per point: the same JSON values as that
    model gave (absent accuracy null, tiny and huge floats, -0.0 keeping its sign), on one data line."""
    client = make_client(EVENTS_MAX_SECONDS=0.3, EVENTS_POLL_SECONDS=0.05)
    job_id = submit(client)
    points = [job_store.Point(0, -0.0, None, 1e-05), job_store.Point(1, 1e16, 0.5, None),
              job_store.Point(2, 2 / 3, 1.0, 0.1), job_store.Point(3, 5e-324, None, 123456789.0)]
    with db.session_scope() as session:
        token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
        job_store.record_progress(session, job_id, token, points, steps_done=4, latest_loss=float("nan"))
    response = client.get(f"/jobs/{job_id}/events")
    data_lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    data = json.loads(data_lines[0].removeprefix("data: "))
    expected = [LossPointOut(step=p.step, loss=finite_or_none(p.loss), accuracy=finite_or_none(p.accuracy),
                             lr=finite_or_none(p.lr)).model_dump() for p in points]
    assert data["points"] == expected
    assert math.copysign(1, data["points"][0]["loss"]) == -1
    assert data["status"] == "running" and data["progress"] == {"step": 4, "total": 100, "latest_loss": None}


def test_last_event_id_resumes_after_that_step(client):
    job_id = submit(client)
    finish_job(job_id, losses=(0.5, 0.25, 0.125))
    *_, end = events(client, job_id, last_event_id=0)
    assert [p["step"] for p in end["data"]["points"]] == [1, 2]
    *_, end = events(client, job_id, last_event_id=2)
    assert end["data"]["points"] == [] and end["id"] == "2"


def test_a_running_jobs_stream_sends_progress_and_closes_after_its_lifetime(make_client):
    client = make_client(EVENTS_MAX_SECONDS=0.3, EVENTS_POLL_SECONDS=0.05)
    job_id = submit(client)
    start_job(job_id, losses=(0.5, 0.4))
    sent = [e for e in events(client, job_id) if "event" in e]
    assert [e["event"] for e in sent] == ["progress"]  # no end: the job still runs; nothing is sent twice
    assert sent[0]["id"] == "1" and sent[0]["data"]["progress"]["step"] == 2
    assert sent[0]["data"]["status"] == "running"


def test_events_of_an_unknown_job_are_404_and_a_bad_last_event_id_is_422(client):
    assert client.get(f"/jobs/{uuid.uuid4()}/events").status_code == 404
    job_id = submit(client)
    response = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "not-a-step"})
    assert response.status_code == 422 and "last-event-id" in response.text


def test_boundary_is_the_models_class_over_a_grid_with_the_datasets_points(client):
    job_id = submit(client, MOONS)
    params = MLP(2, [4, 1], seed=3).to_json()
    finish_job(job_id, params=params)
    response = client.get(f"/jobs/{job_id}/boundary", params={"size": 12})
    assert response.status_code == 200, response.text
    b = response.json()
    assert b["size"] == 12 and len(b["x"]) == len(b["y"]) == 12 and len(b["classes"]) == 12
    assert len(b["points"]) == len(b["labels"]) == 30 and set(b["labels"]) == {0, 1}
    for row in (0, 5, 11):
        for col in (0, 7, 11):
            [out] = predict(params, [[b["x"][col], b["y"][row]]])
            assert b["classes"][row][col] == int(out > 0)
    xs = [p[0] for p in b["points"]]
    assert b["x"][0] < min(xs) and b["x"][-1] > max(xs)


def test_boundary_grid_is_capped_by_the_servers_budget(make_client):
    client = make_client(MAX_NODES_PER_STEP=3 * 17 * 100)  # MLP(2, [4, 1]) has 17 parameters: 10x10 cells
    job_id = submit(client, MOONS)
    finish_job(job_id, params=MLP(2, [4, 1], seed=3).to_json())
    assert client.get(f"/jobs/{job_id}/boundary", params={"size": 50}).json()["size"] == 10


def test_boundary_needs_a_succeeded_job_on_a_2d_dataset(client):
    running = submit(client, MOONS)
    start_job(running)
    response = client.get(f"/jobs/{running}/boundary")
    assert response.status_code == 409 and "running" in response.json()["detail"]
    seed_job = submit(client)
    finish_job(seed_job)
    response = client.get(f"/jobs/{seed_job}/boundary")
    assert response.status_code == 404 and "not a 2-D dataset" in response.json()["detail"]
