"""The integration suite's own Redis server, one per test session (see processes.own_redis_server)."""
import shutil

import pytest

from tests.integration.processes import NO_REDIS_SERVER, own_redis_server


@pytest.fixture(scope="session")
def broker_url():
    if shutil.which("redis-server") is None:
        pytest.skip(NO_REDIS_SERVER)
    with own_redis_server() as url:
        yield url
