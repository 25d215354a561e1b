"""The database engine and sessions, one engine per URL and process.

SQLite is tuned for several processes at once (API, worker, sweeper): WAL so readers
never block the writer, a busy timeout instead of "database is locked", and every
transaction begins IMMEDIATE so a read-then-write transaction waits for the write
lock up front instead of failing when it upgrades."""
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from services.config import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Reads map the database file instead of copying each page through SQLite's page cache: a long history's
# blocks (blobs spanning overflow pages) read ~2x faster (benchmarks/service.py). Address space, not memory.
SQLITE_MMAP_BYTES = 256 * 2**20
# A pooled PostgreSQL connection is pinged before use only when it sat idle this long: a worker or an API busy
# with back-to-back transactions would otherwise pay a round trip ("SELECT 1") on every one of them.
PING_AFTER_IDLE_SECONDS = 1.0
# At most this many PostgreSQL connections per engine (process), all of them kept once opened: SQLAlchemy's default
# (5 kept, up to 10 more opened for a moment and closed as they came back) had the API open and close connections
# all through a burst of requests (16 at once: ~50 new PostgreSQL sessions per 300 POST /jobs), each a server
# process forked and its catalog caches warmed again. The same 15 at most as before; only idle ones stay open.
POOL_CONNECTIONS = 15


_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    return _engine_for(url or get_settings().DATABASE_URL)


def _engine_for(url: str) -> Engine:
    if url not in _engines:
        sqlite = make_url(url).get_backend_name() == "sqlite"
        _engines[url] = _sqlite_engine(url) if sqlite else _server_engine(url)
    return _engines[url]


def _server_engine(url: str) -> Engine:
    """SQLAlchemy's pool_pre_ping, but only for connections idle over PING_AFTER_IDLE_SECONDS: those are the
    ones a server restart or an idle timeout may have closed; one just used is not pinged again. A dead one is
    replaced, with every connection pooled before it, as pre-ping does. (One that died within the last second
    fails its first statement instead: callers retry on OperationalError or answer 503.)"""
    engine = create_engine(url, pool_size=POOL_CONNECTIONS, max_overflow=0)

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # fresh, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as e:
            if engine.dialect.is_disconnect(e, dbapi_connection, None):
                raise exc.InvalidatePoolError(f"connection lost while idle: {e}") from e
            raise

    return engine


def forget_connections_after_fork() -> None:
    """A forked child must not use its parent's pooled connections (they share one socket)."""
    for engine in _engines.values():
        engine.dispose(close=False)


def _sqlite_engine(url: str) -> Engine:
    ensure_sqlite_dir(url)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


@lru_cache
def _session_factory(url: str, autocommit: bool = False) -> sessionmaker:
    engine = _engine_for(url)
    if autocommit and engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")  # the same pool
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_session(autocommit: bool = False) -> Session:
    return _session_factory(get_settings().DATABASE_URL, autocommit)()


@contextmanager
def session_scope(autocommit: bool = False):
    """A session, rolled back on an error and closed after. autocommit: every statement is its own
    transaction, for a lone statement, which then costs one round trip to PostgreSQL instead of three (the
    driver's BEGIN, the statement, COMMIT); SQLite's sessions are the usual ones (its transactions cost no
    round trip)."""
    session = get_session(autocommit)
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def check_database() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
