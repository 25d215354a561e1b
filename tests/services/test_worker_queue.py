"""Sending work (services.queue) and the worker's delivery settings, against real brokers."""
import socket
import threading
import time
import uuid

import pytest
import redis
from kombu import Connection, Consumer, Queue

from core.spec import JobSpec
from services import queue
from services.store import jobs
from services.store.db import session_scope
from tests.integration.processes import redis_server_fixture

redis_server_url = pytest.fixture(redis_server_fixture, scope="module", name="redis_server_url")


@pytest.fixture
def broker(service_env, tmp_path):
    """A server-less broker of this test's own, as in the embedded default."""
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    service_env(BROKER_URL=url)
    queue.celery_client.cache_clear()
    yield url
    queue.celery_client.cache_clear()


def test_enqueue_sends_the_task_by_name_for_a_job_stored_as_sent(broker):
    """A job is stored as sent (enqueued_at, from which the sweeper counts before sending it again), and
    enqueue sends it: no second write to the row after the send."""
    with session_scope() as session:
        job = jobs.create_job(session, "alice", JobSpec())
        job_id = job.id
        assert job.enqueued_at is not None and abs((job.enqueued_at - job.created_at).total_seconds()) < 1
    queue.enqueue(job_id)
    with Connection(broker) as connection:
        message = connection.SimpleQueue("celery").get(timeout=5)
    assert message.headers["task"] == "train_job"
    assert message.payload[0] == [str(job_id)]  # (args, kwargs, embed): only the id travels
    with session_scope() as session:
        assert jobs.get_job(session, job_id).enqueued_at is not None


def test_the_broker_is_checked_for_real(broker, service_env):
    queue.check_broker()
    service_env(BROKER_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    queue.celery_client.cache_clear()
    started = time.monotonic()
    with pytest.raises(Exception):
        queue.check_broker()
    assert time.monotonic() - started < 15


def test_redis_is_reachable_for_the_compose_setup(service_env):
    service_env(BROKER_URL="redis://127.0.0.1:6379/15")
    queue.celery_client.cache_clear()
    try:
        queue.check_broker()
    finally:
        queue.celery_client.cache_clear()


@pytest.fixture
def redis_broker(service_env, redis_server_url):
    """The compose setup's broker: a Redis of this module's own, emptied."""
    redis.Redis.from_url(redis_server_url).flushdb()
    service_env(BROKER_URL=redis_server_url)
    queue.celery_client.cache_clear()
    yield redis_server_url
    queue.celery_client.cache_clear()


def test_sends_from_many_threads_reuse_their_channels_redis_client_and_survive_dropped_connections(
        redis_broker, monkeypatch):
    """The API sends from the threads FastAPI runs sync code on. Each message arrives once; the Redis
    channels keep their client (kombu's built one per message) and build a new one only on a new pool; and
    when Redis drops every connection (as a restart does), the next sends still arrive."""
    built = []  # the clients built for commands (a channel's BRPOP and ping client is another, kept by kombu)
    build = queue.RedisChannel._create_client

    def counting_build(channel, asynchronous=False):
        if not asynchronous:
            built.append(channel)
        return build(channel, asynchronous)

    monkeypatch.setattr(queue.RedisChannel, "_create_client", counting_build)
    before = [uuid.uuid4() for _ in range(200)]
    threads = [threading.Thread(target=lambda ids: [queue.send(job_id) for job_id in ids], args=(before[k::8],))
               for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    # at most one per pooled producer's channel (none when kombu's producer pool, global per broker URL, kept
    # the channels of an earlier test); kombu's own channel built one per message: 200
    assert len(built) <= queue.celery_client().conf.broker_pool_limit

    admin = redis.Redis.from_url(redis_broker)
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    after = [uuid.uuid4() for _ in range(5)]
    for job_id in after:
        queue.send(job_id)
    sent_built = len(built)

    received = []
    with Connection(redis_broker, transport=queue.RedisTransport) as connection:
        inbox = connection.SimpleQueue("celery")
        for _ in before + after:
            message = inbox.get(timeout=10)
            received.append(message.payload[0][0])
            message.ack()
        with pytest.raises(inbox.Empty):
            inbox.get(timeout=0.5)
        inbox.close()
    assert sorted(received) == sorted(str(job_id) for job_id in before + after)
    assert admin.hlen("unacked") == 0  # the acks went through the kept client too
    assert sent_built <= 2 * queue.celery_client().conf.broker_pool_limit


def test_only_plain_redis_urls_get_our_redis_transport():
    assert queue.broker_transport("redis://127.0.0.1:6379/0").endswith(":RedisTransport")
    assert queue.broker_transport("rediss://127.0.0.1:6380/0") is None  # kombu checks its SSL by the scheme
    assert queue.broker_transport("sqla+sqlite:///var/broker.db").endswith(":SQLiteTransport")


def test_the_worker_holds_one_task_at_a_time_and_acknowledges_it_after_running(broker):
    from services.config import get_settings
    from services.worker.celery_app import app
    from services.worker import tasks  # noqa: F401  (registers the task)
    assert "train_job" in app.tasks
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    redis_options = queue.transport_options("redis://127.0.0.1:6379/0")
    assert redis_options["visibility_timeout"] > get_settings().MAX_TIME_LIMIT_SECONDS


def test_the_server_less_broker_is_polled_often_enough_to_deliver_in_tens_of_milliseconds(broker, service_env):
    """kombu polls an empty SQLite queue once a second unless told otherwise; the worker's app must tell it."""
    service_env(BROKER_POLLING_SECONDS="0.02")
    app = queue.make_celery()
    with app.connection_for_write() as connection:
        assert connection.transport.polling_interval == 0.02
    # The worker's case: the `celery` command has copied $BROKER_URL into $CELERY_BROKER_URL.
    service_env(CELERY_BROKER_URL=broker)
    with queue.make_celery().connection_for_read() as connection:
        assert connection.transport.polling_interval == 0.02
    queue.celery_client.cache_clear()
    queue.enqueue(uuid.uuid4())  # and it still speaks kombu's SQLAlchemy protocol
    with Connection(broker) as connection:
        assert connection.SimpleQueue("celery").get(timeout=5).headers["task"] == "train_job"


def test_an_idle_worker_asks_the_server_less_broker_only_when_its_file_changes(broker, monkeypatch):
    """kombu's poll of an empty SQLite queue is a write transaction: every 20 ms it cost ~8 % of a core at
    idle. The worker's transport looks at the broker file instead, and asks when a sender has written to it."""
    from kombu.transport import sqlalchemy as kombu_sqlalchemy
    asked = []
    real_get = kombu_sqlalchemy.Channel._get
    monkeypatch.setattr(kombu_sqlalchemy.Channel, "_get", lambda self, q: (asked.append(q), real_get(self, q))[1])
    monkeypatch.setattr(queue.SQLiteTransport, "IDLE_QUERY_SECONDS", 3600)  # only a change can wake it
    received = []
    with queue.make_celery().connection_for_read() as connection:
        assert isinstance(connection.transport, queue.SQLiteTransport)
        with Consumer(connection, [Queue("celery")], accept=["json"],
                      callbacks=[lambda body, message: (received.append(body), message.ack())]):
            with pytest.raises(socket.timeout):  # the first second after a change it asks on every poll...
                connection.drain_events(timeout=queue.SQLiteTransport.BUSY_SECONDS + 0.2)
            asked.clear()
            with pytest.raises(socket.timeout):  # ...then, with nothing written, not at all
                connection.drain_events(timeout=1)
            assert asked == []
            job_id = uuid.uuid4()
            threading.Timer(0.2, queue.send, args=[job_id]).start()
            connection.drain_events(timeout=30)  # delivered: the send changed the file
    assert received[0][0] == [str(job_id)] and asked


def test_a_worker_asked_to_stop_stops_waiting_on_the_server_less_broker(broker, monkeypatch):
    """Celery's blocking loop (the one this transport runs in) sees a warm shutdown only between calls of
    drain_events, 2 s each, and makes one more call after it: Ctrl-C of `make run` waited ~4 s for nothing.
    Asked to stop (Celery's flag; EX_OK is 0), a call returns at once, whatever its timeout."""
    from celery.worker import state
    monkeypatch.setattr(state, "should_stop", 0)
    raised = []

    def drain(connection):
        try:
            connection.drain_events(timeout=None)  # without a stop request: until a message comes
        except socket.timeout:
            raised.append("timeout")
    with queue.make_celery().connection_for_read() as connection:
        with Consumer(connection, [Queue("celery")], accept=["json"], callbacks=[]):
            thread = threading.Thread(target=drain, args=[connection], daemon=True)
            thread.start()
            thread.join(timeout=60)
    assert raised == ["timeout"]


def test_an_unreadable_broker_file_is_moved_aside_and_queued_jobs_are_sent_again(service_env, tmp_path,
                                                                                   monkeypatch, caplog):
    """`make run` stopped with a raw 'file is not a database' traceback; deleting the file made queued
    jobs wait REDELIVER_QUEUED_AFTER_SECONDS."""
    import logging
    import sqlite3

    from core.spec import JobSpec
    from services import queue
    from services.store import jobs
    from services.store.db import session_scope
    broker = tmp_path / "broker.db"
    broker.write_bytes(b"this is not a database" * 100)
    service_env(BROKER_URL=f"sqla+sqlite:///{broker}")
    with session_scope() as session:
        queued = jobs.create_job(session, "alice", JobSpec()).id
    sent = []
    monkeypatch.setattr(queue, "send", sent.append)
    with caplog.at_level(logging.ERROR, logger="services.queue"):
        assert queue.recover_broker() == 1
    assert sent == [queued]
    [aside] = tmp_path.glob("broker.db.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    assert "unreadable" in caplog.text and str(aside) in caplog.text
    with sqlite3.connect(broker) as connection:  # a fresh, readable file
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert queue.recover_broker() == 0  # a readable file is left alone
