"""Throwaway Redis and PostgreSQL servers on free ports, killable and restartable.

They never touch the shared instances on 5432/6379. Redis runs under pytest-redis's
executor (mirakuru). PostgreSQL does not fit pytest-postgresql's executor here: the
suite runs as root, which PostgreSQL refuses, while pytest-postgresql runs initdb and
pg_ctl as the current user in pytest's root-only temp directory; so the cluster lives in
a directory owned by the `postgres` OS user and every command runs through
`runuser -u postgres`, with `pg_ctl -m immediate` for the crashes the tests inject."""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from pytest_redis.executor import RedisExecutor
from redis.backoff import NoBackoff
from redis.retry import Retry

def _newest_postgres_bin():
    """Debian keeps the server binaries out of PATH, one directory per major version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else "/usr/lib/postgresql/15/bin"


PG_BIN = _newest_postgres_bin()
MISSING = {"redis": None if shutil.which("redis-server") else "needs redis-server (apt-get install redis-server)",
           "postgres": "needs PostgreSQL's server binaries (apt-get install postgresql) and runuser"
           if not (os.path.exists(f"{PG_BIN}/initdb") and shutil.which("runuser")) else
           "needs root: the throwaway cluster runs as the `postgres` user (runuser) in a directory given to it (chown)"
           if os.geteuid() != 0 else None}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class ThrowawayRedis:
    """`redis-server` under pytest-redis's executor: no persistence, so a restart loses every queued message."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="faults-redis-")
        self.executor = RedisExecutor(shutil.which("redis-server"), databases=16, redis_timeout=0, loglevel="warning",
                                      host="127.0.0.1", port=self.port, datadir=Path(self.dir))

    def start(self):
        self.executor.start()
        redis.Redis(port=self.port).config_set("save", "")  # no snapshots: what a restart loses, it loses
        return self

    def is_up(self):
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)).ping()
        except redis.RedisError:
            return False

    def kill(self):
        """SIGKILL: the server dies with everything it held in memory."""
        self.executor.kill(sig=signal.SIGKILL)

    def restart(self, down_seconds=0.0):
        self.kill()
        time.sleep(down_seconds)
        return self.start()

    def flush(self):
        redis.Redis(port=self.port).flushall()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class ThrowawayPostgres:
    """A PostgreSQL 15 cluster in a temp dir; `restart()` is a crash (immediate stop) and a start."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="faults-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        user = pwd.getpwnam("postgres")
        os.chown(self.dir, user.pw_uid, user.pw_gid)

    def url(self, database="postgres"):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *args, timeout=60):
        command = ["runuser", "-u", "postgres", "--", *args]
        done = subprocess.run(command, cwd=self.dir, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def init(self):
        self._as_postgres(f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                          "--no-sync", "--no-instructions")
        return self

    def start(self):
        # fsync off only risks data on an OS crash; a server crash (what the tests inject) loses
        # nothing committed, so synchronous_commit must stay on.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")
        return self

    def stop(self, mode="fast"):
        self._as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def restart(self, down_seconds=0.0):
        """Crash-stop (every connection dies mid-transaction) and start again on the same port."""
        self.stop(mode="immediate")
        time.sleep(down_seconds)
        return self.start()

    def is_up(self):
        try:
            self._as_postgres(f"{PG_BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), timeout=5)
            return True
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def sql(self, statement, database="postgres"):
        return self._as_postgres(f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-d", database,
                                 "-v", "ON_ERROR_STOP=1", "-tAc", statement)

    def destroy(self):
        try:
            if self.is_up():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
