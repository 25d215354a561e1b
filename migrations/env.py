"""Alembic environment: migrates the database named by DATABASE_URL to our models' schema.

Only our tables are ours: the broker's tables (kombu's SQLAlchemy transport) live in a
separate database and never appear here."""
from alembic import context

from services.config import get_settings
from services.store.db import get_engine
from services.store.models import Base


def database_url() -> str:
    """A URL set on the Alembic config (tests, tools) wins over DATABASE_URL."""
    return context.config.get_main_option("sqlalchemy.url") or get_settings().DATABASE_URL


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=Base.metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with get_engine(database_url()).connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
