"""The PostgreSQL engine's pool: a connection idle for a while is pinged before use (and replaced when the server
closed it meanwhile), one just used is not."""
import psycopg
import pytest
from sqlalchemy import text

from services.store import db
from tests.services.conftest import POSTGRES_ADMIN


@pytest.fixture
def postgres_url(database_url, service_env):
    if not database_url.startswith("postgresql"):
        pytest.skip("the ping is for server databases")
    return database_url


def test_only_connections_idle_for_a_while_are_pinged_and_dead_ones_replaced(postgres_url, monkeypatch):
    engine = db.get_engine(postgres_url)
    engine.dispose()
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # "just used", however slow this machine is
    for _ in range(3):  # the first connection is fresh, then it is reused
        with db.session_scope() as session:
            backend = session.scalar(text("SELECT pg_backend_pid()"))
    assert pings == []

    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # from now on every pooled connection has idled
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))  # as a server restart or idle timeout would
    with db.session_scope() as session:
        assert session.scalar(text("SELECT pg_backend_pid()")) != backend  # replaced, not an error
    assert len(pings) == 1
