"""Sending work to the workers. The API imports this module, never services.worker.

The task is sent by name, so the sender needs no worker code; the job row stays the
source of truth, the broker only delivers its id."""
import logging
import os
import socket
import sqlite3
import sys
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from queue import Empty

from celery import Celery
from kombu import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from services.config import get_settings
from services.store import jobs
from services.store.db import session_scope

log = logging.getLogger(__name__)

TASK_NAME = "train_job"
BROKER_TIMEOUT_SECONDS = 5


class SQLiteTransport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport, looking for work every BROKER_POLLING_SECONDS instead of every second:
    with the default a job waited ~0.5 s for its worker; this delivers in tens of ms. Celery selects it with
    `broker_transport` for sqla+sqlite URLs.

    Looking is cheap while nothing happens: kombu's poll of an empty queue is a write transaction (BEGIN
    IMMEDIATE, a SELECT, a commit: ~2 ms of CPU), so a worker polling every 20 ms used ~8 % of a core doing
    nothing. A sender's message is a write to the broker file, which changes the file's (or its WAL's) size
    or mtime, so an idle worker looks at those (one stat each) and queries only when they changed — then
    for BUSY_SECONDS after, which also covers a message committed a moment after its bytes were written —
    and every IDLE_QUERY_SECONDS regardless (a change the stat could miss is then found within a second)."""
    can_parse_url = True  # the URL is SQLAlchemy's, handed to create_engine whole
    BUSY_SECONDS = 1.0
    IDLE_QUERY_SECONDS = 1.0

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        self.polling_interval = get_settings().BROKER_POLLING_SECONDS
        path = (client.hostname or "").removeprefix("sqlite:///")
        self._files = [Path(path), Path(f"{path}-wal")] if path and path != ":memory:" else []
        self._seen = None
        self._query_until = 0.0  # busy: query on every poll until then
        self._next_idle_query = 0.0

    def drain_events(self, connection, timeout=None):
        """kombu's loop (deliver one message, or raise socket.timeout after `timeout`), asking the database
        only when it is worth asking (see the class).

        A worker asked to stop (Ctrl-C, SIGTERM) returns at once. Celery's blocking loop, which runs this
        transport, sees the request only between calls of 2 s each, and makes one more call after it: a
        warm shutdown of `make run` waited ~4 s here before it began."""
        started = time.monotonic()
        while True:
            if _worker_stopping():
                raise socket.timeout()
            if self._worth_asking():
                try:
                    self.cycle.get(self._deliver, timeout=timeout)
                except Empty:
                    pass
                else:
                    self._query_until = time.monotonic() + self.BUSY_SECONDS
                    return
            if timeout is not None and time.monotonic() - started >= timeout:
                raise socket.timeout()
            time.sleep(self.polling_interval)

    def _worth_asking(self) -> bool:
        now = time.monotonic()
        signature = self._signature()
        if signature is None or signature != self._seen:
            self._seen = signature
            self._query_until = now + self.BUSY_SECONDS
        if now < self._query_until or now >= self._next_idle_query:
            self._next_idle_query = now + self.IDLE_QUERY_SECONDS
            return True
        return False

    def _signature(self):
        """(size, mtime, inode) of the broker file and its WAL; None when it cannot be read (then: query)."""
        if not self._files:
            return None
        signature = []
        for path in self._files:
            try:
                stat = path.stat()
            except FileNotFoundError:
                signature.append(None)
            except OSError:
                return None
            else:
                signature.append((stat.st_size, stat.st_mtime_ns, stat.st_ino))
        return tuple(signature)


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, keeping one `redis.Redis` client for its commands. kombu's builds a new client,
    on the channel's connection pool, for every command it sends outside the worker's BRPOP: every publish
    (the API's POST, the sweeper), every ack. Building one copies redis-py's ~170 response callbacks into a
    case-insensitive dict, ~30 % of a `send_task`'s CPU here. The connections themselves were pooled
    already and still are: the client is only the object that takes one from the pool for each command, so
    a client shared by threads is as safe as the pool (redis-py's is thread-safe; pipelines are made per
    call). The client follows the channel's pool: when kombu drops the pool (a lost connection, the
    channel closing), the next command builds a client on the new one."""
    _command_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool, kept = self.pool, self._command_client
        if kept is None or kept.connection_pool is not pool:
            kept = self._command_client = self._create_client()
        yield kept


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with RedisChannel; Celery selects it with `broker_transport` for redis:// URLs."""
    Channel = RedisChannel


def _worker_stopping() -> bool:
    """Whether this process is a Celery worker that was asked to shut down (the flags Celery's
    `maybe_shutdown` reads). Not imported here: `celery.worker` costs a sender ~0.1 s to import."""
    state = sys.modules.get("celery.worker.state")
    return state is not None and any(flag is not None and flag is not False
                                     for flag in (state.should_stop, state.should_terminate))


def make_celery() -> Celery:
    settings = get_settings()
    _prepare_sqlite_broker(settings.BROKER_URL)
    sqlite = _is_sqlite_broker(settings.BROKER_URL)
    if sqlite and _is_sqlite_broker(os.environ.get("CELERY_BROKER_URL", "")):
        # The `celery` command copies $BROKER_URL into $CELERY_BROKER_URL, which Celery prefers to the app's
        # broker; its sqla+ prefix would pick kombu's own transport (polling once a second), not ours.
        os.environ["CELERY_BROKER_URL"] = os.environ["CELERY_BROKER_URL"].removeprefix("sqla+")
    app = Celery("micrograd_service",
                 broker=settings.BROKER_URL.removeprefix("sqla+") if sqlite else settings.BROKER_URL)
    app.conf.update(
        broker_transport=broker_transport(settings.BROKER_URL),
        broker_transport_options=transport_options(settings.BROKER_URL),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


@lru_cache
def celery_client() -> Celery:
    return make_celery()


def enqueue(job_id) -> None:
    """Sends the task for a job just stored (its row says it was sent at its creation: models.Job.enqueued_at)."""
    send(job_id)


def send(job_id) -> None:
    celery_client().send_task(TASK_NAME, args=[str(job_id)], retry=True,
                              retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5})


def check_broker() -> None:
    """Raises when the broker cannot be reached."""
    app = celery_client()
    with Connection(app.conf.broker_url, transport=app.conf.broker_transport,
                    transport_options=app.conf.broker_transport_options,
                    connect_timeout=BROKER_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        with connection.channel() as channel:
            channel.queue_declare(queue=app.conf.task_default_queue)  # counts messages: a real round trip


def broker_transport(broker_url: str):
    """Our transport classes where they apply; otherwise None (the URL's scheme picks kombu's). Only plain
    redis:// gets RedisTransport: kombu checks rediss:// for its SSL options by the scheme's name."""
    if _is_sqlite_broker(broker_url):
        return f"{__name__}:SQLiteTransport"
    if broker_url.startswith("redis://"):
        return f"{__name__}:RedisTransport"
    return None


def transport_options(broker_url: str) -> dict:
    if broker_url.startswith("redis"):
        # Redis redelivers an unacked task after this long; the job table's sweeper recovers lost jobs
        # much sooner, so it only has to be longer than any job may run.
        return {"visibility_timeout": get_settings().MAX_TIME_LIMIT_SECONDS + 600}
    if _is_sqlite_broker(broker_url):
        return {"connect_args": {"timeout": 30}}  # handed to create_engine: a busy timeout for SQLite
    return {}


def _is_sqlite_broker(broker_url: str) -> bool:
    return broker_url.startswith("sqla+sqlite")


def _prepare_sqlite_broker(broker_url: str) -> bool:
    """WAL is a property of the database file, so setting it once here covers every process. The file only
    carries job ids (the job table is the truth), so an unreadable one is moved aside and started afresh;
    returns True then: the queued jobs' messages went with it (see recover_broker)."""
    if not _is_sqlite_broker(broker_url):
        return False
    path = Path(broker_url.removeprefix("sqla+sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _use_wal(path)
        return False
    except sqlite3.DatabaseError as e:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        log.error("the broker file %s is unreadable (%s): moved it to %s and started a new one; "
                  "queued jobs are sent again", path, e, aside)
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        _use_wal(path)
        return True


def _use_wal(path: Path) -> None:
    with sqlite3.connect(path, timeout=30) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def recover_broker() -> int:
    """At start: if the broker file was unreadable (and replaced), sends every queued job again now
    instead of after REDELIVER_QUEUED_AFTER_SECONDS; returns how many were sent."""
    settings = get_settings()
    if not _prepare_sqlite_broker(settings.BROKER_URL):
        return 0
    with session_scope() as session:
        job_ids = jobs.take_jobs_to_redeliver(session, settings.STALE_AFTER_SECONDS, 0, settings.MAX_ATTEMPTS)
    for job_id in job_ids:
        send(job_id)
    return len(job_ids)
