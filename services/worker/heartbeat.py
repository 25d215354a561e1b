"""Telling the job table that a run is alive, however long a step takes, and the workers table that this
worker process is (GET /workers, /metrics).

One background thread per worker process beats for every job running in it, and for the process. Starting and joining a
thread per job cost ~10 ms of a small job's time (the new thread waits for the GIL to start and to stop),
so a job only registers with the thread on entry and leaves on exit."""
import logging
import os
import socket
import threading
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from services.config import get_settings
from services.store import jobs, workers
from services.store.db import session_scope

log = logging.getLogger(__name__)


class Heartbeat:
    """`with Heartbeat(job_id, token, every_seconds):` beats for the job while inside."""

    def __init__(self, job_id, token: str, every_seconds: float):
        self.job_id, self.token, self.every_seconds = job_id, token, every_seconds

    def __enter__(self):
        _beater().add(self)
        return self

    def __exit__(self, *exc):
        _beater().remove(self)


class _Beater:
    def __init__(self):
        self._due: dict[Heartbeat, float] = {}  # the next beat of each registered job (monotonic)
        self._changed = threading.Condition()
        self.pid = os.getpid()
        self.name = f"{socket.gethostname()}:{self.pid}"
        self.every_seconds = get_settings().HEARTBEAT_SECONDS
        self._next_worker_beat = time.monotonic()
        self.listed = False  # beats the workers table too: set by start(), in a worker process
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()

    def add(self, beat: Heartbeat) -> None:
        with self._changed:
            self._due[beat] = time.monotonic() + beat.every_seconds
            self._changed.notify()

    def remove(self, beat: Heartbeat) -> None:
        with self._changed:
            self._due.pop(beat, None)

    def _run(self):
        while True:
            with self._changed:
                now = time.monotonic()
                due = [beat for beat, at in self._due.items() if at <= now]
                for beat in due:
                    self._due[beat] = now + beat.every_seconds
                worker_due = self._next_worker_beat <= now
                if worker_due:
                    self._next_worker_beat = now + self.every_seconds
                    worker_due = self.listed
                if not due and not worker_due:
                    self._changed.wait(min([*self._due.values(), self._next_worker_beat]) - now)
                    continue
                current = next(iter(self._due), None)
            for beat in due:
                if not _beat(beat):
                    self.remove(beat)  # superseded or finished: the run's next write finds out and stops
            if worker_due:
                _guarded(workers.beat, self.name, current and current.job_id)


def _beat(beat: Heartbeat) -> bool:
    return _guarded(jobs.heartbeat, beat.job_id, beat.token) is not False


def _guarded(write, *args):
    """write(session, *args); a failure is logged and retried at the next beat, never ends the thread."""
    try:
        with session_scope() as session:
            return write(session, *args)
    except (OperationalError, InterfaceError):
        log.warning("heartbeat (%s) failed; retrying", write.__name__, exc_info=True)
    except Exception:
        log.exception("heartbeat (%s) failed; retrying", write.__name__)


def start() -> None:
    """Starts this process's beater now, so an idle worker is listed too; drops long-silent workers' rows."""
    _guarded(workers.forget, None, FORGET_SILENT_WORKERS_AFTER_SECONDS)
    beater = _beater()
    with beater._changed:
        beater.listed = True
        beater._next_worker_beat = time.monotonic()
        beater._changed.notify()


def stop() -> None:
    """This process stops: its row goes (a killed worker's row just stops beating)."""
    if _current is not None and _current.pid == os.getpid():
        _guarded(workers.forget, _current.name)


FORGET_SILENT_WORKERS_AFTER_SECONDS = 3600
_lock = threading.Lock()
_current: _Beater | None = None


def _beater() -> _Beater:
    """This process's beater (a forked child starts its own: threads do not survive a fork)."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = _Beater()
        return _current
