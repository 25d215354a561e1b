"""GET /compare: spec differences, metrics and loss curves aligned on one step grid; owner-scoped."""
import uuid

from services.store import db, jobs as job_store
from tests.services.conftest import auth, finish_job, submit
from tests.services.test_auth import locked, new_key  # noqa: F401 (fixture)


def write_history(job_id, points):
    """Play a worker that recorded `points` ({step: loss}) and finished."""
    with db.session_scope() as session:
        token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
        job_store.finish_job(session, job_id, token, "succeeded",
                             [job_store.Point(step=s, loss=loss) for s, loss in points.items()],
                             steps_done=max(points) + 1, params_json=None,
                             metrics={"final_loss": points[max(points)], "steps_done": max(points) + 1})


def test_differences_metrics_and_aligned_losses(client):
    a = client.post("/jobs", json={"spec": {"seed": 1}, "name": "a", "tags": {"t": "1"}, "experiment": "x"}).json()
    b = submit(client, {"seed": 2, "optimizer": {"lr": 0.05}, "record": {"loss_every": 2}})
    write_history(a["id"], {0: 1.0, 1: 0.5, 2: 0.25, 3: 0.125})
    write_history(b, {0: 2.0, 2: 1.0, 4: 0.5})
    response = client.get(f"/compare?ids={a['id']},{b}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["differences"] == {"seed": [1, 2], "optimizer.lr": [0.1, 0.05], "record.loss_every": [1, 2]}
    assert body["steps"] == [0, 1, 2, 3, 4]
    first, second = body["runs"]
    assert (first["id"], first["name"], first["experiment"], first["tags"]) == (a["id"], "a", "x", {"t": "1"})
    assert first["loss"] == [1.0, 0.5, 0.25, 0.125, None]
    assert second["loss"] == [2.0, None, 1.0, None, 0.5]
    assert (first["metrics"]["final_loss"], second["metrics"]["final_loss"]) == (0.125, 0.5)
    # The same with repeated ids=, in the order given.
    again = client.get("/compare", params={"ids": [b, a["id"]]}).json()
    assert [run["id"] for run in again["runs"]] == [b, a["id"]] and again["differences"]["seed"] == [2, 1]


def test_long_curves_are_downsampled_keeping_spikes(client):
    a, b = submit(client, {"seed": 1}), submit(client, {"seed": 2})
    write_history(a, {s: 1.0 for s in range(5000)} | {1234: 99.0})
    write_history(b, {s: 2.0 for s in range(0, 5000, 5)})
    body = client.get(f"/compare?ids={a},{b}&max_points=100").json()
    assert len(body["steps"]) <= 100 and body["steps"] == sorted(body["steps"])
    spike = body["steps"].index(1234)
    assert body["runs"][0]["loss"][spike] == 99.0
    assert {0, 4999, 4995} <= set(body["steps"])
    assert all(len(run["loss"]) == len(body["steps"]) for run in body["runs"])


def test_unfinished_runs_compare_too(client):
    a, b = submit(client), submit(client)
    finish_job(a)
    body = client.get(f"/compare?ids={a},{b}").json()
    assert body["differences"] == {} and body["steps"] == [0, 1]
    assert body["runs"][1]["loss"] == [None, None] and body["runs"][1]["metrics"] is None


def test_bad_id_lists_are_422(client):
    a, b = submit(client), submit(client)
    for query in [f"ids={a}", "", f"ids={a},{a}", f"ids={a},nope", f"ids={a},{b}" + f",{uuid.uuid4()}" * 19,
                  "ids=,,,"]:
        response = client.get(f"/compare?{query}")
        assert response.status_code == 422, query
        assert response.json()["detail"][0]["loc"][:2] == ["query", "ids"], query


def test_another_owners_job_is_404(locked):  # noqa: F811
    alice, bob = new_key("alice"), new_key("bob")
    mine, also_mine, theirs = submit(locked, key=alice), submit(locked, key=alice), submit(locked, key=bob)
    assert locked.get(f"/compare?ids={mine},{also_mine}", headers=auth(alice)).status_code == 200
    response = locked.get(f"/compare?ids={mine},{theirs}", headers=auth(alice))
    assert response.status_code == 404 and theirs in response.json()["detail"]
    assert locked.get(f"/compare?ids={mine},{uuid.uuid4()}", headers=auth(alice)).status_code == 404
    assert locked.get(f"/compare?ids={mine},{also_mine}").status_code == 401
