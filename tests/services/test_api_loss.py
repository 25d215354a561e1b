"""GET /jobs/{id}/loss: ranges and downsampling of long histories, served from the database."""
import math

import pytest

from services.api.schemas import LossPointOut, finite_or_none
from services.store import db, jobs as job_store
from tests.services.conftest import auth, finish_job, start_job, submit

LONG = 100_000
SPIKE_STEP = 61_234


@pytest.fixture
def long_job(client):
    """A succeeded job with a 100,000-step history: a smooth decay with one spike."""
    job_id = submit(client, {"steps": LONG})
    with db.session_scope() as session:
        token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
        points = [job_store.Point(s, 99.0 if s == SPIKE_STEP else 1.0 / (1 + s), None, 0.1) for s in range(LONG)]
        job_store.finish_job(session, job_id, token, "succeeded", points, steps_done=LONG,
                             metrics={"final_loss": points[-1].loss}, params_json=None)
    return job_id


def test_a_long_history_comes_back_small_with_its_spike_and_in_ranges(client, long_job):
    response = client.get(f"/jobs/{long_job}/loss")
    assert response.status_code == 200
    history = response.json()
    assert history["total_points"] == LONG
    points = history["points"]
    assert len(points) <= 1000
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == LONG - 1
    assert {"step": SPIKE_STEP, "loss": 99.0, "accuracy": None, "lr": 0.1} in points
    assert len(response.content) < 100_000

    # the same job (one 100,000-point setup serves both parts): step ranges and max_points
    history = client.get(f"/jobs/{long_job}/loss", params={"start": 100, "end": 199, "max_points": 1000}).json()
    assert history["total_points"] == 100
    assert [p["step"] for p in history["points"]] == list(range(100, 200))

    few = client.get(f"/jobs/{long_job}/loss", params={"max_points": 10}).json()["points"]
    assert len(few) <= 10 and SPIKE_STEP in [p["step"] for p in few]

    tail = client.get(f"/jobs/{long_job}/loss", params={"start": LONG - 3}).json()["points"]
    assert [p["step"] for p in tail] == [LONG - 3, LONG - 2, LONG - 1]


@pytest.mark.parametrize("query, field", [("max_points=0", "max_points"), ("max_points=10001", "max_points"),
                                          ("start=-1", "start"),
                                          ("end=9223372036854775808", "end"), ("start=10&end=5", "end")])
def test_bad_ranges_are_422(client, query, field):
    job_id = submit(client)
    response = client.get(f"/jobs/{job_id}/loss?{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_a_running_jobs_points_come_back_as_loss_point_out_gave_them(client):
    """Readable while the job runs, every point as the LossPointOut model gave it: absent or non-finite accuracy
    and lr null, tiny and huge floats exact, -0.0 keeping its sign; an empty history is []. (A non-finite loss
    is not stored.)"""
    job_id = submit(client)
    assert client.get(f"/jobs/{job_id}/loss").json()["points"] == []
    points = [job_store.Point(0, -0.0, None, 1e-05), job_store.Point(1, 1e16, 0.5, None),
              job_store.Point(2, 2 / 3, 1.0, 0.1), job_store.Point(3, 5e-324, None, 123456789.0),
              job_store.Point(4, 0.3, math.inf, math.nan), job_store.Point(5, 1e-07, -math.inf, None),
              job_store.Point(6, -1.7976931348623157e308, 2.2250738585072014e-308, 1e22)]
    with db.session_scope() as session:
        token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
        job_store.record_progress(session, job_id, token, points, steps_done=7, latest_loss=math.inf)
    history = client.get(f"/jobs/{job_id}/loss", params={"max_points": 10_000}).json()
    expected = [LossPointOut(step=p.step, loss=finite_or_none(p.loss), accuracy=finite_or_none(p.accuracy),
                             lr=finite_or_none(p.lr)).model_dump() for p in points]
    assert history == {"job_id": job_id, "status": "running", "total_points": 7, "points": expected}
    assert math.copysign(1, history["points"][0]["loss"]) == -1


def test_a_finished_jobs_history_is_revalidated_with_its_etag(client):
    """A running job's answer has no ETag (it grows); a finished job's has one per query, and If-None-Match with
    it is 304 without a body. Another owner, or a deleted job, is still 404, whatever the ETag."""
    running_id = submit(client)
    start_job(running_id, losses=(0.5, 0.4))
    running = client.get(f"/jobs/{running_id}/loss")
    assert "etag" not in running.headers and "cache-control" not in running.headers
    assert client.get(f"/jobs/{running_id}/loss", headers={"If-None-Match": "*"}).status_code == 200

    job_id = submit(client)
    finish_job(job_id, losses=(0.5, 0.4, 0.3))
    whole = client.get(f"/jobs/{job_id}/loss")
    assert whole.status_code == 200 and len(whole.json()["points"]) == 3
    etag = whole.headers["etag"]
    assert whole.headers["cache-control"] == "private, no-cache"
    again = client.get(f"/jobs/{job_id}/loss", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(f"/jobs/{job_id}/loss", headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(f"/jobs/{job_id}/loss", headers={"If-None-Match": '"other"'}).status_code == 200

    part = client.get(f"/jobs/{job_id}/loss", params={"start": 1}, headers={"If-None-Match": etag})
    assert part.status_code == 200 and part.headers["etag"] != etag and len(part.json()["points"]) == 2
    assert client.get(f"/jobs/{job_id}/loss", params={"max_points": 2}).headers["etag"] not in (etag, part.headers["etag"])

    assert client.delete(f"/jobs/{job_id}").status_code in (200, 204)
    assert client.get(f"/jobs/{job_id}/loss", headers={"If-None-Match": etag}).status_code == 404


def test_another_owners_etag_request_is_404(make_client, two_owners):
    client = make_client(AUTH_REQUIRED="true")
    alice, bob = two_owners
    job_id = submit(client, key=alice)
    finish_job(job_id)
    etag = client.get(f"/jobs/{job_id}/loss", headers=auth(alice)).headers["etag"]
    assert client.get(f"/jobs/{job_id}/loss", headers={**auth(bob), "If-None-Match": etag}).status_code == 404
    assert client.get(f"/jobs/{job_id}/loss", headers={**auth(alice), "If-None-Match": etag}).status_code == 304
