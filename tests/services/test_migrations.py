"""The Alembic migrations and the SQLAlchemy models describe the same schema, on both databases."""
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from services.store.db import get_engine
from services.store.models import Base

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
    assert {"jobs", "loss_points", "artifacts", "api_keys"} <= set(inspect(get_engine(url)).get_table_names())
    get_engine(url).dispose()


def test_the_broker_tables_stay_out_of_our_schema():
    assert not any(name.startswith("kombu") for name in Base.metadata.tables)


def test_loss_points_are_unique_per_job_and_step(database_url):
    key = inspect(get_engine(database_url)).get_pk_constraint("loss_points")["constrained_columns"]
    assert key == ["job_id", "step"]
