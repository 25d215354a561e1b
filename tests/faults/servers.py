"""Throwaway Redis and PostgreSQL servers on free ports, killable and restartable.

They never touch the shared instances on 5432/6379. PostgreSQL refuses to run as
root, so its cluster lives in a directory owned by the `postgres` OS user and
every PostgreSQL command runs through `runuser -u postgres`."""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

def _newest_postgres_bin():
    """Debian keeps the server binaries out of PATH, one directory per major version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else "/usr/lib/postgresql/15/bin"


PG_BIN = _newest_postgres_bin()


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
    """`redis-server` as a child process: no persistence, so a restart loses every queued message."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.is_up, 10, what=f"redis on port {self.port}")
        return self

    def is_up(self):
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)).ping()
        except redis.RedisError:
            return False

    def kill(self):
        """SIGKILL: the server dies with everything it held in memory."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self, down_seconds=0.0):
        self.kill()
        time.sleep(down_seconds)
        return self.start()

    def flush(self):
        redis.Redis(port=self.port).flushall()

    stop = kill


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
