"""Upgrading keeps the data: a database made at the first revision, with jobs, loss points and artifacts
in it, is upgraded to head and every row is still there, read back through the store, and still there after
a downgrade (PostgreSQL and SQLite)."""
import json
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command

from services.store import db, jobs as job_store
from services.store.models import Job
from tests.services.conftest import empty_database
from tests.services.test_migrations import alembic_config

FIRST_REVISION = "0001"
# The tables as the first revision made them (not the models, which describe head).
jobs_v1 = sa.table("jobs", *(sa.column(name, type_) for name, type_ in [
    ("id", sa.Uuid()), ("owner", sa.String()), ("status", sa.String()), ("spec", sa.JSON()),
    ("created_at", sa.DateTime()), ("started_at", sa.DateTime()), ("finished_at", sa.DateTime()),
    ("attempts", sa.Integer()), ("cancel_requested", sa.Boolean()), ("total_steps", sa.Integer()),
    ("progress_step", sa.Integer()), ("latest_loss", sa.Double()), ("final_loss", sa.Double()),
    ("metrics", sa.JSON()), ("error", sa.Text())]))
points_v1 = sa.table("loss_points", sa.column("job_id", sa.Uuid()), sa.column("step", sa.Integer()),
                     sa.column("loss", sa.Double()), sa.column("accuracy", sa.Double()), sa.column("lr", sa.Double()))
artifacts_v1 = sa.table("artifacts", sa.column("job_id", sa.Uuid()), sa.column("kind", sa.String()),
                        sa.column("content", sa.Text()))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    with empty_database(request.param, tmp_path) as url:
        yield url


def old_jobs():
    """Three jobs as the first revision stored them: succeeded (history, params, graph), failed, queued."""
    spec = {"data": {"kind": "moons", "n_samples": 50}, "optimizer": {"lr": 0.05}, "steps": 3}
    rows = []
    for i, status in enumerate(["succeeded", "failed", "queued"]):
        rows.append({"id": uuid.uuid4(), "owner": ["alice", "bob", "alice"][i], "status": status,
                     "spec": {**spec, "seed": i}, "created_at": datetime(2026, 11, 1, 12, i),
                     "started_at": None if status == "queued" else datetime(2026, 11, 1, 12, i, 5),
                     "finished_at": None if status == "queued" else datetime(2026, 11, 1, 12, i, 9),
                     "attempts": 0 if status == "queued" else 1, "cancel_requested": False, "total_steps": 3,
                     "progress_step": {"succeeded": 3, "failed": 2, "queued": None}[status],
                     "latest_loss": None, "final_loss": 0.125 if status == "succeeded" else None,
                     "metrics": {"final_loss": 0.125, "accuracy": 0.9} if status == "succeeded" else None,
                     "error": "diverged at step 2" if status == "failed" else None})
    return rows


def test_an_upgrade_keeps_every_job_point_and_artifact(empty_database_url):
    config = alembic_config(empty_database_url)
    command.upgrade(config, FIRST_REVISION)
    jobs = old_jobs()
    done, failed, _ = (job["id"] for job in jobs)
    points = [{"job_id": done, "step": s, "loss": 1.0 / (s + 1), "accuracy": 0.5 + s / 10, "lr": 0.05}
              for s in range(3)] + [{"job_id": failed, "step": s, "loss": 2.0 - s, "accuracy": None, "lr": None}
                                    for s in range(2)]
    params = json.dumps({"layers": [[[[0.1, 0.2], 0.3]]]})
    artifacts = [{"job_id": done, "kind": "params", "content": params},
                 {"job_id": done, "kind": "graph_svg", "content": "<svg/>"}]
    with db.get_engine(empty_database_url).begin() as connection:
        connection.execute(jobs_v1.insert(), jobs)
        connection.execute(points_v1.insert(), points)
        connection.execute(artifacts_v1.insert(), artifacts)

    command.upgrade(config, "head")

    session = db._session_factory(empty_database_url)()
    try:
        for old in jobs:
            job = job_store.get_job(session, old["id"])
            assert job is not None, f"job {old['id']} was lost"
            for column in ("owner", "status", "spec", "attempts", "total_steps", "progress_step", "final_loss",
                           "metrics", "error"):
                assert getattr(job, column) == old[column], column
            assert job.created_at.replace(tzinfo=None) == old["created_at"]
            assert job.name == f"moons-{old['id'].hex[:4]}" and job.tags == {} and job.notes == ""
            assert job.experiment_id is None
            history = [(p.step, p.loss, p.accuracy, p.lr) for p in job_store.get_loss_points(session, old["id"])]
            assert history == [(p["step"], p["loss"], p["accuracy"], p["lr"])
                               for p in points if p["job_id"] == old["id"]]
        assert job_store.get_artifact(session, done, "params") == params
        assert job_store.get_artifact(session, done, "graph_svg") == "<svg/>"
        # graphs are drawn after the results now: an old succeeded job's graph is ready, the others have none
        assert [job_store.get_job(session, job["id"]).graph_status for job in jobs] == ["ready", None, None]
        assert session.scalar(sa.select(sa.func.count()).select_from(Job)) == len(jobs)
        if session.get_bind().dialect.name == "sqlite":  # (the migration turned them off for its table copies)
            assert session.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        session.close()

    # And back down: the first revision's tables still hold every row.
    command.downgrade(config, FIRST_REVISION)
    with db.get_engine(empty_database_url).connect() as connection:
        assert sorted(connection.execute(sa.select(jobs_v1.c.id, jobs_v1.c.status)).all()) == sorted(
            (job["id"], job["status"]) for job in jobs)
        assert len(connection.execute(sa.select(points_v1.c.step)).all()) == len(points)
        assert len(connection.execute(sa.select(artifacts_v1.c.kind)).all()) == len(artifacts)


def test_an_old_graph_that_failed_is_failed_and_a_pending_one_says_why_it_is_missing_after_a_downgrade(
        empty_database_url):
    config = alembic_config(empty_database_url)
    command.upgrade(config, "workers")  # the revision before graph_status
    failed = uuid.uuid4()
    jobs = sa.table("jobs", sa.column("id", sa.Uuid()), sa.column("spec", sa.JSON()), sa.column("tags", sa.JSON()),
                    sa.column("created_at", sa.DateTime()), sa.column("cancel_requested", sa.Boolean()),
                    *(sa.column(name) for name in ("owner", "name", "status", "attempts", "total_steps",
                                                   "graph_error", "notes")))
    with db.get_engine(empty_database_url).begin() as connection:
        connection.execute(jobs.insert(), [
            {"id": failed, "owner": "alice", "name": "a", "status": "succeeded", "spec": {}, "tags": {},
             "notes": "", "created_at": datetime(2026, 11, 1), "attempts": 1, "cancel_requested": False,
             "total_steps": 3, "graph_error": "Graphviz stopped"}])
    command.upgrade(config, "head")
    with db.get_engine(empty_database_url).begin() as connection:
        assert connection.execute(sa.text("SELECT graph_status FROM jobs")).scalar() == "failed"
        connection.execute(sa.text("UPDATE jobs SET graph_status = 'pending', graph_error = NULL"))
    command.downgrade(config, "workers")  # before graph_status a graph was drawn before success: none is coming
    with db.get_engine(empty_database_url).connect() as connection:
        assert connection.execute(sa.text("SELECT graph_error FROM jobs")).scalar() == (
            "the graph was still to be drawn when the database was downgraded")
