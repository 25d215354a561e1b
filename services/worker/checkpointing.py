"""train()'s checkpoint hook: every CHECKPOINT_STEPS steps or CHECKPOINT_SECONDS seconds, whichever comes
first, the history so far is written and then the training state saved. A re-run after a crash goes on
from the last one (tasks.py), so it recomputes at most one interval of steps, bit-identically."""
import logging
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from services.store.checkpoints import save_checkpoint
from services.store.db import session_scope

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, job_id, token: str, progress, every_steps: int, every_seconds: float, start_step=0):
        self.job_id, self.token, self.progress = job_id, token, progress
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.last_step, self.last_time = start_step, time.monotonic()
        self.saved = 0

    def __call__(self, snapshot) -> None:
        steps, now = self.progress.steps_done, time.monotonic()
        due = ((self.every_steps > 0 and steps - self.last_step >= self.every_steps)
               or (self.every_seconds > 0 and now - self.last_time >= self.every_seconds))
        if not due:
            return
        self.last_step, self.last_time = steps, now  # after a failure too: try again an interval later
        self.progress.flush()  # the history up to this step first: a checkpoint never runs ahead of it
        if self.progress.pending:  # the database is down; training goes on
            return
        state = snapshot()
        try:
            with session_scope() as session:
                size = save_checkpoint(session, self.job_id, self.token, state)
        except (OperationalError, InterfaceError):
            log.warning("could not save a checkpoint of job %s; trying again later", self.job_id, exc_info=True)
            return
        self.saved += 1
        log.debug("job %s: checkpoint at step %d (%d bytes)", self.job_id, state.step, size)
