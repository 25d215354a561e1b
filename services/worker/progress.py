"""The training callback: buffers loss points and writes them in batches with the progress
fields, stops training when a cancel is requested, and enforces the time limit; and the same
checks (time limit, cancel) while a succeeded job's graph is drawn."""
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


class JobCheck:
    """core's check() (`check`) for a phase of a job: raises TimeLimitExceeded past the deadline, and Cancelled
    once a cancel is seen. A subclass's `look()` reads the job's row every FLUSH_SECONDS (it sets
    cancel_requested, or raises jobs.Superseded when this run no longer owns the job), and it words the
    reasons (`time_limit_reason()`, `cancelled_reason()`)."""

    def __init__(self, job_id, token: str, deadline: float):
        self.job_id, self.token, self.deadline = job_id, token, deadline
        self.cancel_requested = False
        self._last_look = time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        self._check_deadline(now)
        if now - self._last_look >= FLUSH_SECONDS:
            self._last_look = now
            self.look()
        if self.cancel_requested:
            raise Cancelled(self.cancelled_reason())

    def _check_deadline(self, now: float) -> None:
        if now > self.deadline:
            raise TimeLimitExceeded(self.time_limit_reason())


class Progress(JobCheck):
    """Training's callback (after every step) and check() (compiling, every step, every chunk of the final
    metrics): its look writes the pending points with the progress fields and reads whether to cancel."""

    def __init__(self, job_id, token: str, time_limit_seconds: float, after_flush=None):
        """`after_flush()`, if given, runs after each write; returning True stops training as a cancel
        does (a sweep's trial asks its pruner there)."""
        super().__init__(job_id, token, time.monotonic() + time_limit_seconds)
        self.after_flush = after_flush
        self.time_limit_seconds = time_limit_seconds
        self.pending: list[jobs.Point] = []
        self.steps_done = 0
        self.latest_loss = None
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
        if batch_full or now - self._last_look >= FLUSH_SECONDS:
            self.flush()
        return not self.cancel_requested

    def time_limit_reason(self) -> str:
        return f"time limit exceeded ({self.time_limit_seconds:g} s) after {self.steps_done} steps"

    def cancelled_reason(self) -> str:
        return f"cancelled after {self.steps_done} steps"

    def look(self) -> None:
        self.flush()

    def flush(self) -> None:
        """Writes the pending points. If the database is unreachable they stay pending for the next flush;
        `jobs.Superseded` propagates: another run owns the job now."""
        self._last_look = time.monotonic()
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


class GraphCheck(JobCheck):
    """check() while a succeeded job's graph is drawn: the job's time limit, and a look at the row (a cancel
    asked, the job deleted, or its graph taken by another run all stop the drawing)."""

    def time_limit_reason(self) -> str:
        return "time limit exceeded while drawing the graph"

    def cancelled_reason(self) -> str:
        return jobs.CANCELLED_WHILE_DRAWING

    def look(self) -> None:
        try:
            with session_scope() as session:
                wanted = jobs.graph_wanted(session, self.job_id, self.token)
        except (OperationalError, InterfaceError):
            return  # the database is down: drawing goes on, storing the graph retries
        if wanted is None:
            raise jobs.Superseded(f"job {self.job_id}'s graph is no longer this run's to draw")
        self.cancel_requested = not wanted
