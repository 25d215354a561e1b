"""Alembic environment: migrates the database named by DATABASE_URL to our models' schema.

Only our tables are ours: the broker's tables (kombu's SQLAlchemy transport) live in a
separate database and never appear here."""
from alembic import context

from services.store.db import get_engine
from services.store.models import Base


def run_migrations_offline() -> None:
    context.configure(url=str(get_engine().url), target_metadata=Base.metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
