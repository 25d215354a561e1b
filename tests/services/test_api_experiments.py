"""Experiments and run metadata: names, tags, notes and experiments beside the spec, edited with PATCH."""
import re

import pytest

from services.store import db, jobs as job_store
from tests.services.conftest import auth, finish_job, start_job, submit
from tests.services.test_auth import locked, new_key  # noqa: F401 (fixture)


def submit_wrapped(client, key=None, **body):
    response = client.post("/jobs", json={"spec": {}, **body}, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def test_metadata_rides_beside_the_spec(client):
    created = submit_wrapped(client, spec={"steps": 7}, name="first try", experiment="moons-lr",
                             tags={"team": "vision", "stage": "baseline"}, notes="lr from the paper")
    assert created["name"] == "first try" and created["status"] == "queued"
    job = client.get(f"/jobs/{created['id']}").json()
    assert (job["name"], job["experiment"], job["tags"], job["notes"]) == (
        "first try", "moons-lr", {"team": "vision", "stage": "baseline"}, "lr from the paper")
    assert job["spec"]["steps"] == 7 and "name" not in job["spec"]
    [experiment] = client.get("/experiments").json()["items"]
    assert (experiment["name"], experiment["jobs"], experiment["id"]) == ("moons-lr", 1, job["experiment_id"])
    # The experiment is found by name, not made twice.
    submit_wrapped(client, experiment="moons-lr")
    assert [e["jobs"] for e in client.get("/experiments").json()["items"]] == [2]


def test_a_bare_spec_still_works_and_gets_a_readable_name(client):
    job_id = submit(client, {"data": {"kind": "moons"}, "model": {"layers": [4, 1]}, "loss": "hinge"})
    job = client.get(f"/jobs/{job_id}").json()
    assert re.fullmatch(r"moons-[0-9a-f]{4}", job["name"]) and job["name"][6:] == job_id.replace("-", "")[:4]
    assert (job["experiment"], job["experiment_id"], job["tags"], job["notes"]) == (None, None, {}, "")


@pytest.mark.parametrize("body, loc", [
    ({"spec": {"steps": 0}}, ["body", "spec", "steps"]),
    ({"spec": {"steps": "5"}}, ["body", "spec", "steps"]),  # strict inside the envelope too
    ({"spec": {"label": "x"}}, ["body", "spec", "label"]),  # the spec stays closed
    ({"spec": {}, "color": "red"}, ["body", "color"]),
    ({"spec": {}, "tags": {"bad key": "v"}}, ["body", "tags", "bad key", "[key]"]),
    ({"spec": {}, "tags": {"k": "x" * 201}}, ["body", "tags", "k"]),
    ({"spec": {}, "tags": {f"k{i}": "v" for i in range(21)}}, ["body", "tags"]),
    ({"spec": {}, "name": ""}, ["body", "name"]),
    ({"spec": {}, "name": "a\x00b"}, ["body", "name"]),
    ({"spec": {}, "notes": "a\x00b"}, ["body", "notes"]),
    ({"spec": {"steps": 10**9}}, ["body", "spec", "steps"]),  # the submit-time limits, at the spec's place
    ({"name": "no spec here"}, ["body", "name"]),  # without "spec" it is a bare spec, which has no name
])
def test_bad_metadata_is_422_naming_the_field(client, body, loc):
    response = client.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]


def test_patch_changes_name_tags_and_notes_only(client):
    job_id = submit_wrapped(client, name="a", tags={"k": "v"})["id"]
    finish_job(job_id)
    patched = client.patch(f"/jobs/{job_id}", json={"notes": "converged"})
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["tags"], patched.json()["notes"]) == ("a", {"k": "v"}, "converged")
    patched = client.patch(f"/jobs/{job_id}", json={"name": "b", "tags": {"new": "1"}}).json()
    assert (patched["name"], patched["tags"], patched["notes"], patched["status"]) == (
        "b", {"new": "1"}, "converged", "succeeded")
    for body, field in [({"spec": {"steps": 3}}, "spec"), ({"status": "failed"}, "status"),
                        ({"name": None}, "name"), ({"tags": {"a b": "c"}}, "tags")]:
        response = client.patch(f"/jobs/{job_id}", json=body)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", field], body
    assert client.get(f"/jobs/{job_id}").json()["name"] == "b"


def test_experiments_are_unique_per_owner_and_scoped(locked):  # noqa: F811
    alice, bob = new_key("alice"), new_key("bob")
    made = locked.post("/experiments", json={"name": "moons", "description": "lr sweep"}, headers=auth(alice))
    assert made.status_code == 201 and made.headers["Location"] == f"/experiments/{made.json()['id']}"
    assert made.json()["description"] == "lr sweep" and made.json()["jobs"] == 0
    assert locked.post("/experiments", json={"name": "moons"}, headers=auth(alice)).status_code == 409
    assert locked.post("/experiments", json={"name": "moons"}, headers=auth(bob)).status_code == 201
    experiment_id = made.json()["id"]
    assert locked.get(f"/experiments/{experiment_id}", headers=auth(alice)).status_code == 200
    assert locked.get(f"/experiments/{experiment_id}", headers=auth(bob)).status_code == 404
    assert locked.delete(f"/experiments/{experiment_id}", headers=auth(bob)).status_code == 404
    # Bob's submission into "moons" lands in bob's experiment, never in alice's.
    submit_wrapped(locked, key=bob, experiment="moons")
    assert locked.get(f"/experiments/{experiment_id}", headers=auth(alice)).json()["jobs"] == 0
    assert [e["jobs"] for e in locked.get("/experiments", headers=auth(bob)).json()["items"]] == [1]
    alices = submit_wrapped(locked, key=alice, experiment="moons")["id"]
    assert [j["id"] for j in locked.get("/jobs?experiment=moons", headers=auth(alice)).json()["items"]] == [alices]
    bobs_job = locked.get("/jobs", headers=auth(bob)).json()["items"][0]["id"]
    assert locked.patch(f"/jobs/{bobs_job}", json={"name": "mine"}, headers=auth(alice)).status_code == 404


def test_list_filters_by_experiment_and_tags(client):
    a = submit_wrapped(client, experiment="e1", tags={"opt": "adam", "wd": "yes"})["id"]
    b = submit_wrapped(client, experiment="e1", tags={"opt": "sgd"})["id"]
    c = submit_wrapped(client, experiment="e2", tags={"opt": "adam"})["id"]

    def ids(query):
        response = client.get(f"/jobs?{query}")
        assert response.status_code == 200, response.text
        return {j["id"] for j in response.json()["items"]}
    assert ids("experiment=e1") == {a, b} and ids("experiment=nope") == set()
    assert ids("tag=opt:adam") == {a, c} and ids("tag=wd") == {a} and ids("tag=opt:adam&tag=wd:yes") == {a}
    assert ids("experiment=e2&tag=opt:sgd") == set()
    listed = client.get("/jobs?experiment=e1").json()["items"][0]
    assert (listed["experiment"], listed["name"], listed["tags"]) == ("e1", listed["name"], {"opt": "sgd"})
    for bad in ["tag=a%20b", "tag=", "tag=x:" + "v" * 201, "tag=%27)%20OR%201=1--"]:
        response = client.get(f"/jobs?{bad}")
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "tag"], bad


def test_deleting_an_experiment_deletes_its_jobs_history_and_artifacts(client):
    done = submit_wrapped(client, experiment="old")["id"]
    running = submit_wrapped(client, experiment="old")["id"]
    kept = submit_wrapped(client, experiment="other")["id"]
    finish_job(done)
    start_job(running)
    finish_job(kept)
    experiment_id = client.get(f"/jobs/{done}").json()["experiment_id"]
    assert client.delete(f"/experiments/{experiment_id}").status_code == 204
    assert client.get(f"/experiments/{experiment_id}").status_code == 404
    for job_id in (done, running):
        assert client.get(f"/jobs/{job_id}").status_code == 404
        with db.session_scope() as session:
            assert job_store.get_loss_points(session, job_id) == []
            assert job_store.get_artifact(session, job_id, "params") is None
    assert client.get(f"/jobs/{kept}/params").status_code == 200
    assert [e["name"] for e in client.get("/experiments").json()["items"]] == ["other"]
    assert client.delete(f"/experiments/{experiment_id}").status_code == 404


def test_list_filters_by_sweep(client):
    alone = submit(client)
    sweep = client.post("/sweeps", json={"space": {"seed": [1, 2, 3]}, "trials": 3})
    assert sweep.status_code == 201, sweep.text
    trials = [j["id"] for j in client.get("/jobs", params={"sweep": sweep.json()["id"]}).json()["items"]]
    assert trials and alone not in trials
    assert {client.get(f"/jobs/{t}").json()["sweep_id"] for t in trials} == {sweep.json()["id"]}
    assert client.get("/jobs", params={"sweep": "00000000-0000-0000-0000-000000000000"}).json()["items"] == []
    assert client.get("/jobs", params={"sweep": "nope"}).status_code == 422
