"""Re-run (bit-for-bit with a real training run), delete (final, history and artifacts gone, a running job's
worker stopped) and export (loss.csv, params download)."""
import csv
import io
import json
import threading
import time

import pytest

from core.spec import JobSpec
from services.store import db, jobs as job_store
from tests.services.conftest import auth, finish_job, start_job, submit
from tests.services.test_auth import locked, new_key  # noqa: F401 (fixture)
from tests.services.test_worker import worker  # noqa: F401 (fixture)

MOONS = {"data": {"kind": "moons", "n_samples": 40, "noise": 0.2, "validation_fraction": 0.25},
         "model": {"layers": [6, 1]}, "loss": "hinge", "steps": 25, "seed": 3,
         "optimizer": {"name": "adam", "lr": 0.05}, "record": {"graph_svg": False}}


def history(client, job_id):
    return client.get(f"/jobs/{job_id}/loss.csv").text


def test_a_rerun_reproduces_the_history_bit_for_bit(client, worker):  # noqa: F811
    first = client.post("/jobs", json={"spec": MOONS, "experiment": "repro", "tags": {"k": "v"}}).json()["id"]
    assert worker.run_job(first) == "succeeded"
    response = client.post(f"/jobs/{first}/rerun")
    assert response.status_code == 201 and response.headers["Location"] == f"/jobs/{response.json()['id']}"
    again = response.json()["id"]
    assert worker.run_job(again) == "succeeded"
    original, rerun = client.get(f"/jobs/{first}").json(), client.get(f"/jobs/{again}").json()
    assert rerun["spec"] == original["spec"] and (rerun["experiment"], rerun["tags"]) == ("repro", {"k": "v"})
    assert rerun["notes"] == f"re-run of {original['name']} ({first})" and rerun["name"] != original["name"]
    # repr() of every float in the CSV: equal text is equal bits.
    assert history(client, again) == history(client, first) and len(history(client, first).splitlines()) == 26
    assert client.get(f"/jobs/{again}/params").content == client.get(f"/jobs/{first}/params").content
    assert rerun["metrics"] == original["metrics"]

    seeded = client.post(f"/jobs/{first}/rerun", json={"seed": 4, "spec_patch": {"optimizer": {"lr": 0.01}},
                                                       "tags": {}, "name": "lower lr"}).json()["id"]
    assert worker.run_job(seeded) == "succeeded"
    changed = client.get(f"/jobs/{seeded}").json()
    assert (changed["spec"]["seed"], changed["spec"]["optimizer"]["lr"], changed["spec"]["optimizer"]["name"]) == (
        4, 0.01, "adam")
    assert (changed["name"], changed["tags"]) == ("lower lr", {})
    assert history(client, seeded) != history(client, first)


@pytest.mark.parametrize("body, loc", [
    ({"spec_patch": {"steps": 0}}, ["body", "spec_patch", "steps"]),
    ({"spec_patch": {"optimizer": {"lr": "fast"}}}, ["body", "spec_patch", "optimizer", "lr"]),
    ({"spec_patch": {"label": "x"}}, ["body", "spec_patch", "label"]),
    ({"spec_patch": {"steps": 10**9}}, ["body", "spec_patch", "steps"]),
    ({"seed": -1}, ["body", "seed"]),
    ({"colour": "red"}, ["body", "colour"]),
])
def test_a_bad_rerun_is_422_naming_the_field(client, body, loc):
    job_id = submit(client)
    response = client.post(f"/jobs/{job_id}/rerun", json=body)
    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]
    assert len(client.get("/jobs").json()["items"]) == 1


def test_delete_removes_the_job_its_history_and_artifacts(client):
    done, kept = submit(client), submit(client)
    finish_job(done)
    finish_job(kept)
    assert client.delete(f"/jobs/{done}").status_code == 204
    for suffix in ("", "/loss", "/loss.csv", "/params", "/graph.svg"):
        assert client.get(f"/jobs/{done}{suffix}").status_code == 404, suffix
    with db.session_scope() as session:
        assert job_store.get_loss_points(session, done) == []
        assert job_store.get_artifact(session, done, "params") is None
    assert client.delete(f"/jobs/{done}").status_code == 404
    assert [j["id"] for j in client.get("/jobs").json()["items"]] == [kept]
    assert client.get(f"/jobs/{kept}/loss.csv").text.count("\n") == 3


def test_deleting_a_running_job_stops_its_worker(client):
    job_id = submit(client)
    with db.session_scope() as session:
        token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
        job_store.record_progress(session, job_id, token, [job_store.Point(0, 1.0)], 1, 1.0)
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    with db.session_scope() as session:
        with pytest.raises(job_store.Superseded):  # the worker's next write: it stops, writing nothing
            job_store.record_progress(session, job_id, token, [job_store.Point(1, 0.5)], 2, 0.5)
        assert not job_store.heartbeat(session, job_id, token)
        assert job_store.get_loss_points(session, job_id) == []


def test_deleting_a_job_a_real_worker_is_training_stops_it(client, worker):  # noqa: F811
    with db.session_scope() as session:  # (past the API's MAX_STEPS: it must run until stopped)
        job_id = str(job_store.create_job(session, "local", JobSpec(steps=1_000_000, record={"graph_svg": False})).id)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(worker.run_job(job_id)))
    thread.start()
    while not client.get(f"/jobs/{job_id}").json()["progress"]["step"]:
        time.sleep(0.05)
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    thread.join(timeout=60)
    assert outcome == ["superseded"]
    assert client.get(f"/jobs/{job_id}").status_code == 404
    with db.session_scope() as session:
        assert job_store.get_loss_points(session, job_id) == []


def test_loss_csv_has_every_point_and_params_download(client):
    job_id = submit(client)
    params = finish_job(job_id, losses=[0.5 + i / 3 for i in range(1500)])
    response = client.get(f"/jobs/{job_id}/loss.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="{job_id}-loss.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1500 and rows[7] == {"step": "7", "loss": repr(0.5 + 7 / 3), "accuracy": "", "lr": "0.1"}
    download = client.get(f"/jobs/{job_id}/params")
    assert download.headers["content-disposition"] == f'attachment; filename="{job_id}-params.json"'
    assert json.loads(download.content) == params
    running = submit(client)
    start_job(running, losses=(0.9,))
    assert client.get(f"/jobs/{running}/loss.csv").text == "step,loss,accuracy,lr\n0,0.9,,0.1\n"


def test_rerun_delete_and_export_are_owner_scoped(locked):  # noqa: F811
    alice, bob = new_key("alice"), new_key("bob")
    job_id = submit(locked, key=alice)
    finish_job(job_id)
    for method, suffix in [("POST", "/rerun"), ("DELETE", ""), ("GET", "/loss.csv")]:
        assert locked.request(method, f"/jobs/{job_id}{suffix}", headers=auth(bob)).status_code == 404, suffix
    assert locked.post(f"/jobs/{job_id}/rerun", headers=auth(alice)).status_code == 201
    assert locked.get(f"/jobs/{job_id}/loss.csv", headers=auth(alice)).status_code == 200
    assert locked.delete(f"/jobs/{job_id}", headers=auth(alice)).status_code == 204
