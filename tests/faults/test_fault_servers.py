"""The throwaway servers really die and really come back: the fault tests rely on it."""
import pytest
import redis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_redis_restart_loses_everything_and_comes_back(redis_server, broker_url):
    client = redis.Redis(port=redis_server.port)
    client.rpush("queue", "message")
    redis_server.kill()
    assert not redis_server.is_up()
    redis_server.start()
    assert redis_server.is_up()
    assert client.llen("queue") == 0


def test_postgres_crash_restart_keeps_committed_data(postgres_server):
    postgres_server.sql("CREATE TABLE IF NOT EXISTS survivors (n int)")
    postgres_server.sql("INSERT INTO survivors VALUES (1)")
    postgres_server.restart()
    assert postgres_server.is_up()
    assert postgres_server.sql("SELECT count(*) FROM survivors").strip() == "1"
