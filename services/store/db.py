"""The database engine and sessions, one engine per URL and process.

SQLite is tuned for several processes at once (API, worker, sweeper): WAL so readers
never block the writer, a busy timeout instead of "database is locked", and every
transaction begins IMMEDIATE so a read-then-write transaction waits for the write
lock up front instead of failing when it upgrades."""
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from services.config import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Reads map the database file instead of copying each page through SQLite's page cache: a long history's
# blocks (blobs spanning overflow pages) read ~2x faster (benchmarks/service.py). Address space, not memory.
SQLITE_MMAP_BYTES = 256 * 2**20


_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    return _engine_for(url or get_settings().DATABASE_URL)


def _engine_for(url: str) -> Engine:
    if url not in _engines:
        sqlite = make_url(url).get_backend_name() == "sqlite"
        _engines[url] = _sqlite_engine(url) if sqlite else create_engine(url, pool_pre_ping=True)
    return _engines[url]


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
def _session_factory(url: str) -> sessionmaker:
    return sessionmaker(bind=_engine_for(url), expire_on_commit=False)


def get_session() -> Session:
    return _session_factory(get_settings().DATABASE_URL)()


@contextmanager
def session_scope():
    session = get_session()
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
