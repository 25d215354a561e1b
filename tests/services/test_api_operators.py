"""What operators see: GET /workers (owner-scoped) and GET /metrics (Prometheus text)."""
import uuid
from datetime import timedelta

from sqlalchemy import update

from services.store import db, workers
from services.store.models import Worker, utcnow
from tests.services.conftest import auth, start_job, submit


def beat(name, job_id=None):
    with db.session_scope() as session:
        workers.beat(session, name, None if job_id is None else uuid.UUID(job_id))


def test_workers_lists_the_live_ones_and_names_a_job_only_to_its_owner(make_client, two_owners):
    client = make_client(AUTH_REQUIRED="true")
    alice, bob = two_owners
    job_id = submit(client, key=alice)
    start_job(job_id)
    beat("host-a:10", job_id)
    beat("host-b:20")
    beat("host-c:30")
    with db.session_scope() as session:  # host-c stopped beating a minute ago
        session.execute(update(Worker).where(Worker.name == "host-c:30")
                        .values(heartbeat_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    seen_by_alice = client.get("/workers", headers=auth(alice)).json()
    assert [(w["name"], w["busy"], w["current_job"]) for w in seen_by_alice] == [
        ("host-a:10", True, job_id), ("host-b:20", False, None)]
    seen_by_bob = client.get("/workers", headers=auth(bob)).json()
    assert [(w["name"], w["busy"], w["current_job"]) for w in seen_by_bob] == [
        ("host-a:10", True, None), ("host-b:20", False, None)]
    assert client.get("/workers").status_code == 401


def test_a_busy_worker_stays_listed_with_its_job_when_its_id_comes_as_text(client):
    """The heartbeat thread passes the running job's id as the Celery task got it, a str: the workers row's
    update failed on it ('str' object has no attribute 'hex'), so a worker vanished from GET /workers (and
    the dashboard's queue) for as long as it ran a job."""
    job_id = submit(client)
    start_job(job_id)
    with db.session_scope() as session:
        workers.beat(session, "host-a:10", None)
        workers.beat(session, "host-a:10", job_id)
    assert [(w["name"], w["busy"], w["current_job"]) for w in client.get("/workers").json()] == [
        ("host-a:10", True, job_id)]


def test_metrics_has_request_latency_by_route_jobs_by_status_queue_depth_and_heartbeats(client):
    job_id = submit(client)
    submit(client)
    start_job(job_id)
    client.get(f"/jobs/{job_id}")
    beat("host-a:10", job_id)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_request_duration_seconds_bucket{handler="/jobs/{job_id}"' in text
    assert 'mgs_jobs{status="running"} 1.0' in text and 'mgs_jobs{status="queued"} 1.0' in text
    assert "mgs_queue_depth 1.0" in text and "mgs_workers_live 1.0" in text
    assert 'mgs_worker_last_heartbeat_timestamp_seconds{worker="host-a:10"}' in text


def test_json_logs_are_one_object_per_line_when_asked(service_env):
    import io
    import json
    import logging

    from services.logs import use_json_logs_if_asked
    stream = io.StringIO()
    logger = logging.getLogger("test.json.logs")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        use_json_logs_if_asked(logger)
        logger.warning("plain")
        service_env(JSON_LOGS="true")
        use_json_logs_if_asked(logger)
        logger.warning("job %s failed", "abc")
    finally:
        logger.removeHandler(handler)
    plain, structured = stream.getvalue().splitlines()
    assert plain == "plain"
    record = json.loads(structured)
    assert (record["level"], record["logger"], record["message"]) == ("WARNING", "test.json.logs", "job abc failed")
