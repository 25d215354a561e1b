"""The integration suite's own Redis server, one per test session (see processes.own_redis_server)."""
import pytest

from tests.integration.processes import redis_server_fixture

broker_url = pytest.fixture(redis_server_fixture, scope="session", name="broker_url")
