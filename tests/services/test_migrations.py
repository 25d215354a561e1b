"""The Alembic migrations and the SQLAlchemy models describe the same schema, on both databases."""
import struct
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from services.store import history
from services.store.db import get_engine
from services.store.models import Base
from tests.services.conftest import empty_database

REPO = Path(__file__).resolve().parents[2]


def alembic_config(url):
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    return config


def test_migrations_match_the_models(database_url):
    """`database_url` was migrated to head by the conftest, the way the service is."""
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrations_go_down_and_up_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert set(inspect(get_engine(url)).get_table_names()) == {"alembic_version"}
    command.upgrade(config, "head")
    assert {"jobs", "loss_chunks", "artifacts", "api_keys"} <= set(inspect(get_engine(url)).get_table_names())
    get_engine(url).dispose()


def test_the_broker_tables_stay_out_of_our_schema():
    assert not any(name.startswith("kombu") for name in Base.metadata.tables)


def test_loss_chunks_are_unique_per_job_and_block_of_steps(database_url):
    key = inspect(get_engine(database_url)).get_pk_constraint("loss_chunks")["constrained_columns"]
    assert key == ["job_id", "chunk"]


# Values whose every bit must survive: a third, the smallest subnormal, huge and tiny. (Not -0.0: the old
# layout itself could not keep it on SQLite, which stores a REAL -0.0 as 0.)
HISTORY = [(0, 1 / 3, None, 0.1), (5, 5e-324, 0.5, None), (999, -2.2e-308, 1.0, 1e-300), (1000, 1.7976931348623157e308,
           None, 0.1), (1001, 2.5, 0.25, 0.1), (2500, 1e-320, 0.75, 3.0)]
OTHER = [(step, float(step) / 7, None, 0.01) for step in range(0, 3000, 3)]


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request, tmp_path):
    with empty_database(request.param, tmp_path) as url:
        yield url


def test_loss_histories_move_to_chunks_and_back_bit_for_bit(new_database):
    config = alembic_config(new_database)
    before = ScriptDirectory.from_config(config).get_revision("loss_chunks").down_revision
    command.upgrade(config, "0001")  # rows as the first schema held them (later revisions add job columns)
    jobs_table = sa.table("jobs", *(sa.column(name, kind) for name, kind in (
        ("id", sa.Uuid()), ("owner", sa.String()), ("status", sa.String()), ("spec", sa.JSON()),
        ("created_at", sa.DateTime()), ("attempts", sa.Integer()), ("cancel_requested", sa.Boolean()),
        ("total_steps", sa.Integer()))))
    points = sa.table("loss_points", *(sa.column(name, kind) for name, kind in (
        ("job_id", sa.Uuid()), ("step", sa.Integer()), ("loss", sa.Double()), ("accuracy", sa.Double()),
        ("lr", sa.Double()))))
    job, other = uuid.uuid4(), uuid.uuid4()
    with get_engine(new_database).begin() as connection:
        connection.execute(jobs_table.insert(), [
            {"id": i, "owner": "alice", "status": "succeeded", "spec": {}, "created_at": datetime(2026, 1, 1),
             "attempts": 1, "cancel_requested": False, "total_steps": 3000} for i in (job, other)])
        connection.execute(points.insert(), [{"job_id": i, "step": s, "loss": loss, "accuracy": a, "lr": lr}
                                             for i, rows in ((job, HISTORY), (other, OTHER))
                                             for s, loss, a, lr in rows])
    command.upgrade(config, before)
    command.upgrade(config, "head")
    with Session(get_engine(new_database)) as session:
        for job_id, rows in ((job, HISTORY), (other, OTHER)):
            assert bits(history.read(session, job_id)) == bits(rows)
        assert bits(history.read(session, job, start=999, end=1001)) == bits(HISTORY[2:5])
    command.downgrade(config, before)
    with get_engine(new_database).connect() as connection:
        for job_id, rows in ((job, HISTORY), (other, OTHER)):
            stored = connection.execute(sa.select(points.c.step, points.c.loss, points.c.accuracy, points.c.lr)
                                        .where(points.c.job_id == job_id).order_by(points.c.step)).all()
            assert bits(stored) == bits(rows)


def bits(points):
    """Each value as its exact bit pattern (so -0.0 differs from 0.0), None kept."""
    return [tuple(v if v is None or isinstance(v, int) else struct.pack("<d", v) for v in point)
            for point in points]
