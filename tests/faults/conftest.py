"""Fixtures for the fault-injection tests: throwaway PostgreSQL and Redis servers
(one of each per session, restartable), a fresh migrated database per test, and the
test's service processes, always reaped at teardown."""
import itertools

import pytest

from .harness import Cluster, migrate
from .servers import MISSING, ThrowawayPostgres, ThrowawayRedis

TEMPLATE_DB = "faults_template"
_database_numbers = itertools.count()


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
def template_database(postgres_server):
    """Migrated once per session; every test gets a copy (CREATE DATABASE ... TEMPLATE is fast)."""
    postgres_server.sql(f"CREATE DATABASE {TEMPLATE_DB}")
    migrate(postgres_server.url(TEMPLATE_DB))
    return TEMPLATE_DB


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
def database_url(postgres_server, template_database):
    """A fresh copy of the migrated template, so no test sees another test's jobs."""
    if not postgres_server.is_up():
        postgres_server.start()
    name = f"faults_{next(_database_numbers)}"
    postgres_server.sql(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    return postgres_server.url(name)


@pytest.fixture
def broker_url(redis_server):
    """The session's Redis, running and empty (an earlier test may have killed it)."""
    if not redis_server.is_up():
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def cluster(database_url, broker_url, tmp_path):
    """The API plus whatever workers the test starts. The tail of each log is printed (pytest shows
    it when the test fails); whole logs stay in the test's tmp_path (pytest keeps the last runs)."""
    processes = Cluster(database_url, broker_url, log_dir=tmp_path)
    try:
        yield processes
    finally:
        processes.cleanup()
        print(processes.logs())
