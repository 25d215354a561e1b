"""Alembic environment: migrates the database named by DATABASE_URL to our models' schema.

Only our tables are ours: the broker's tables (kombu's SQLAlchemy transport) live in a
separate database and never appear here."""
from contextlib import contextmanager

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
        with sqlite_foreign_keys_off(connection):
            with context.begin_transaction():
                context.run_migrations()
                if connection.dialect.name == "sqlite":
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration left rows without their parent: {broken[:5]}")


@contextmanager
def sqlite_foreign_keys_off(connection):
    """SQLite's batch mode changes a table by copying it and dropping the old one; with foreign keys on,
    dropping `jobs` would cascade to every loss point and artifact. So they are off while migrating
    (the pragma only works outside a transaction, hence the driver connection) and checked afterwards."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if connection.in_transaction():  # alembic has committed; what is left is its own reads (or a failure)
            connection.rollback()
        driver.execute("PRAGMA foreign_keys=ON")
        if driver.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            raise RuntimeError("could not turn SQLite's foreign keys back on after migrating")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
