"""Fixtures for the fault-injection tests: throwaway PostgreSQL and Redis servers
(one of each per session, restartable), one migrated database and one API per session,
the database emptied before each test, and the test's workers, always reaped at teardown.

The API is shared because no test kills it and it keeps nothing of a test that outlives the
test's rows (the jobs, their histories, the workers table): starting one per test cost ~2 CPU
seconds each. The workers are the test's own: most tests kill one."""
import pytest

from .harness import Api, Cluster, migrate, service_env
from .servers import MISSING, ThrowawayPostgres, ThrowawayRedis, free_port

SERVICE_DB = "faults"


@pytest.fixture(scope="session")
def postgres_server():
    if MISSING["postgres"]:
        pytest.skip(MISSING["postgres"])
    server = ThrowawayPostgres().init().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def service_database(postgres_server):
    """Migrated once per session: (its name, its tables but Alembic's, to empty them)."""
    postgres_server.sql(f"CREATE DATABASE {SERVICE_DB}")
    migrate(postgres_server.url(SERVICE_DB))
    tables = postgres_server.sql("SELECT string_agg(quote_ident(tablename), ', ' ORDER BY tablename) FROM pg_tables "
                                 "WHERE schemaname = 'public' AND tablename <> 'alembic_version'",
                                 database=SERVICE_DB).strip()
    assert "jobs" in tables.split(", "), tables
    return SERVICE_DB, tables


@pytest.fixture(scope="session")
def redis_server():
    if MISSING["redis"]:
        pytest.skip(MISSING["redis"])
    server = ThrowawayRedis().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database_url(postgres_server, service_database):
    """The session's database (running: an earlier test may have stopped it), emptied, so no test
    sees another test's jobs. The processes that wrote them were killed at that test's teardown."""
    if not postgres_server.is_up():
        postgres_server.start()
    name, tables = service_database
    postgres_server.sql(f"SET lock_timeout = '30s'; TRUNCATE {tables} RESTART IDENTITY CASCADE", database=name)
    return postgres_server.url(name)


@pytest.fixture
def broker_url(redis_server):
    """The session's Redis, running and empty (an earlier test may have killed it)."""
    if not redis_server.is_up():
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def session_api(postgres_server, service_database, redis_server, tmp_path_factory):
    """The API (uvicorn) of every test's cluster, started on first use; `Cluster.start_api` waits for it."""
    env = service_env(postgres_server.url(service_database[0]), redis_server.url)
    api = Api("api", env, tmp_path_factory.mktemp("faults-api"), free_port())
    try:
        yield api
    finally:
        api.cleanup()


@pytest.fixture
def cluster(database_url, broker_url, session_api, tmp_path):
    """The session's API plus whatever workers the test starts. The tail of each log is printed (pytest
    shows it when the test fails); whole logs stay in the test's tmp_path (pytest keeps the last runs)."""
    if not session_api.running():  # not started yet, or (a bug the test that saw it reported) died
        session_api.start()
    processes = Cluster(database_url, broker_url, log_dir=tmp_path, api=session_api)
    try:
        yield processes
    finally:
        processes.cleanup()
        print(processes.logs())
