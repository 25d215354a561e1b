"""The rate limits' moving window (services/api/rate_limit.py, on the `limits` package): what it counts and
for how long, and where: in the process's memory, or, with a Redis broker, in Redis, shared by every API
process (two apps on one Redis stand for two API processes)."""
import asyncio
import types

import limits.storage.memory
import pytest
import redis
from fastapi.testclient import TestClient
from limits.storage import MemoryStorage

from services.api import rate_limit
from services.api.app import create_app
from services.api.rate_limit import MovingWindow
from services.store import db, keys
from tests.integration.processes import redis_server_fixture
from tests.services.conftest import CLIENT_HEADERS, LOOPBACK_URL, auth


@pytest.fixture
def clock(monkeypatch):
    """The windows' wall clock, frozen: now[0] is the time; move it by hand."""
    now = [1000.0]
    frozen = types.SimpleNamespace(time=lambda: now[0], monotonic=lambda: now[0])
    monkeypatch.setattr(limits.storage.memory, "time", frozen)
    monkeypatch.setattr(rate_limit, "time", frozen)
    return now


# A Redis of the module's own: the broker of the apps that stand for API processes.
redis_url = pytest.fixture(redis_server_fixture, scope="module", name="redis_url")


def new_key(owner):
    with db.session_scope() as session:
        return keys.create_api_key(session, owner)


@pytest.mark.parametrize("storage", [MemoryStorage, rate_limit.WindowsInMemory])
def test_the_moving_window_forgets_hits_older_than_a_minute(clock, storage):
    limiter = MovingWindow(2, storage(), "requests")
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    clock[0] += 30
    assert limiter.wait("a") == 30 and limiter.hit("a") == 30  # refused: counted nothing
    assert limiter.hit("b") == 0  # per key
    clock[0] += 30.5
    assert limiter.wait("a") == 0  # the first two hits left the window
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0 and limiter.hit("a") == 60
    assert MovingWindow(0, MemoryStorage(), "requests").hit("a") == 0  # 0 turns the limit off


def test_the_memory_windows_start_no_thread_per_hit_and_still_drop_expired_entries(clock, monkeypatch):
    """limits' MemoryStorage started a Timer thread on nearly every hit (services/api/rate_limit.py)."""
    storage = rate_limit.WindowsInMemory()
    storage.timer.join()  # the one that MemoryStorage starts as it is made
    timers = []

    class Timer:  # records the timers started, which never run
        def __init__(self, *args, **kwargs):
            timers.append(args)

        start = is_alive = lambda self: False
    monkeypatch.setattr(limits.storage.memory.threading, "Timer", Timer)
    limiter = MovingWindow(1000, storage, "requests")
    for i in range(50):
        assert limiter.hit(f"owner{i % 5}") == 0
        clock[0] += 0.01  # 0.5 s in all: no sweep due yet
    assert timers == [] and sorted(len(entries) for entries in storage.events.values()) == [10] * 5
    clock[0] += 60  # every hit left the window, and a sweep is due: the next hit runs it
    assert limiter.hit("another") == 0
    assert timers == [] and sorted(len(entries) for entries in storage.events.values()) == [0] * 5 + [1]


def test_limits_sharing_a_storage_count_apart(clock):
    storage = MemoryStorage()
    requests, failures = MovingWindow(1, storage, "requests"), MovingWindow(1, storage, "auth-failures")
    assert requests.hit("alice") == 0
    assert failures.wait("alice") == 0 and failures.hit("alice") == 0
    assert requests.hit("alice") == 60 and failures.wait("alice") == 60


def test_api_processes_on_one_redis_broker_share_each_budget(make_client, redis_url):
    """N API processes used to give an address N times AUTH_FAILURES_PER_MINUTE, an owner N times the rate."""
    redis.Redis.from_url(redis_url).flushall()
    first = make_client(BROKER_URL=redis_url, AUTH_REQUIRED="true", AUTH_FAILURES_PER_MINUTE=4,
                        RATE_LIMIT_PER_MINUTE=3)
    second = TestClient(create_app(), base_url=LOOPBACK_URL, headers=CLIENT_HEADERS)
    statuses = [(first, second)[i % 2].get("/jobs", headers=auth(f"mgs_guess{i}")).status_code for i in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    refused = second.get("/jobs", headers=auth("mgs_one-more"))
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and "authentication" in refused.json()["detail"]

    alice = new_key("alice")
    from_elsewhere = [TestClient(app.app, base_url=LOOPBACK_URL, headers=CLIENT_HEADERS, client=("198.51.100.2", 1))
                      for app in (first, second)]
    statuses = [from_elsewhere[i % 2].get("/jobs", headers=auth(alice)).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]  # the owner's rate, counted once for both processes
    assert 1 <= int(from_elsewhere[1].get("/jobs", headers=auth(alice)).headers["Retry-After"]) <= 60
    assert redis.Redis.from_url(redis_url).keys("mgs-limits:*")  # counted there, not in either process


def test_while_redis_is_unreachable_each_process_counts_on_its_own(make_client, caplog):
    client = make_client(BROKER_URL="redis://127.0.0.1:1/0", AUTH_REQUIRED="true",  # nothing listens on port 1
                         AUTH_FAILURES_PER_MINUTE=2)
    assert [client.get("/jobs").status_code for _ in range(3)] == [401, 401, 429]
    assert "Redis unreachable" in caplog.text


def on_the_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


@pytest.mark.parametrize("in_redis", [True, False])
def test_the_owner_limit_asks_redis_off_the_event_loop(make_client, redis_url, in_redis):
    """The per-owner limit is an async dependency (no thread hop for a count in memory); a window in Redis
    may wait for Redis (up to its timeout when it is unreachable), which must not stall every request."""
    client = make_client(**({"BROKER_URL": redis_url} if in_redis else {}))
    limiter, seen = client.app.state.rate_limiter, []
    real_hit = limiter.hit

    def hit(key):
        seen.append(on_the_event_loop())
        return real_hit(key)
    limiter.hit = hit
    assert client.get("/jobs").status_code == 200
    assert seen == [not in_redis]
