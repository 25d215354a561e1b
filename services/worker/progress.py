"""The training callback: buffers loss points and writes them in batches with the progress
fields, stops training when a cancel is requested, and enforces the time limit."""
import logging
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from services.store import jobs
from services.store.db import session_scope

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_POINTS = 200


class TimeLimitExceeded(Exception):
    pass


class Cancelled(Exception):
    """A cancel was requested while training had no step to stop after (compiling, the final
    metrics, drawing the graph)."""


class Progress:
    def __init__(self, job_id, token: str, time_limit_seconds: float, after_flush=None):
        """`after_flush()`, if given, runs after each write; returning True stops training as a cancel
        does (a sweep's trial asks its pruner there)."""
        self.job_id, self.token = job_id, token
        self.after_flush = after_flush
        self.time_limit_seconds = time_limit_seconds
        self.deadline = time.monotonic() + time_limit_seconds
        self.pending: list[jobs.Point] = []
        self.steps_done = 0
        self.latest_loss = None
        self.cancel_requested = False
        self._last_flush = time.monotonic()
        self._database_down = False  # then retry every FLUSH_SECONDS, not on every step
        self._last_unrecorded = None  # the latest step, when loss_every skipped it

    def __call__(self, record) -> bool:
        """Called after every training step; returning False stops training."""
        self.steps_done = record.step + 1
        self.latest_loss = record.loss
        point = jobs.Point(record.step, record.loss, record.accuracy, record.lr)
        if record.recorded:
            self.pending.append(point)
        self._last_unrecorded = None if record.recorded else point
        now = time.monotonic()
        self._check_deadline(now)
        batch_full = len(self.pending) >= FLUSH_POINTS and not self._database_down
        if batch_full or now - self._last_flush >= FLUSH_SECONDS:
            self.flush()
        return not self.cancel_requested

    def check(self) -> None:
        """core's check(): called between and inside the phases of a job (compiling, every step, every
        chunk of the final metrics, drawing the graph); raises TimeLimitExceeded past the deadline,
        Cancelled once a cancel is seen (looked up every FLUSH_SECONDS, with the pending points)."""
        now = time.monotonic()
        self._check_deadline(now)
        if now - self._last_flush >= FLUSH_SECONDS:
            self.flush()
        if self.cancel_requested:
            raise Cancelled(f"cancelled after {self.steps_done} steps")

    def _check_deadline(self, now: float) -> None:
        if now > self.deadline:
            raise TimeLimitExceeded(f"time limit exceeded ({self.time_limit_seconds:g} s) "
                                    f"after {self.steps_done} steps")

    def flush(self) -> None:
        """Writes the pending points. If the database is unreachable they stay pending for the next flush;
        `jobs.Superseded` propagates: another run owns the job now."""
        self._last_flush = time.monotonic()
        try:
            with session_scope() as session:
                self.cancel_requested = jobs.record_progress(session, self.job_id, self.token, self.pending,
                                                             self.steps_done, self.latest_loss)
        except (OperationalError, InterfaceError):
            self._database_down = True
            log.warning("could not write progress of job %s; keeping %d points for the next try",
                        self.job_id, len(self.pending), exc_info=True)
            return
        self._database_down = False
        self.pending = []
        if self.after_flush is not None and self.after_flush():
            self.cancel_requested = True

    def take_pending(self) -> list[jobs.Point]:
        """The points not yet written, for the final write; a job that stops early (cancelled, time
        limit) keeps its last step even when loss_every would have skipped it."""
        if self._last_unrecorded is not None:
            self.pending.append(self._last_unrecorded)
            self._last_unrecorded = None
        points, self.pending = self.pending, []
        return points
