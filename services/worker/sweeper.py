"""The sweeper: the job table, not the broker, guarantees every job reaches a final state.

It sends again the jobs that are queued but were not delivered (the message was lost, or never
sent), and the running jobs whose heartbeat went stale (their worker died); of these, one asked
to cancel is cancelled instead, and one that used up its attempts is failed, so crash loops end.
Likewise a succeeded job whose graph's drawer died: sent again (the run draws the graph), or its
graph failed when it was asked to cancel or used up its attempts.
It also advances every running sweep, so a sweep goes on when the worker that ran a trial died.
Every worker runs one; several at once are harmless, since each redelivery is taken atomically
and a duplicate delivery is refused by the claim."""
import logging
import threading
import time

from services import queue, sweeps
from services.config import get_settings
from services.store import jobs
from services.store import sweeps as sweep_store
from services.store.db import session_scope

log = logging.getLogger(__name__)


def sweep() -> list:
    """One pass; returns the ids it sent again."""
    settings = get_settings()
    with session_scope() as session:
        for job_id in jobs.cancel_abandoned_jobs(session, settings.STALE_AFTER_SECONDS):
            log.info("job %s cancelled: its worker died after the cancel was asked", job_id)
        for job_id in jobs.fail_exhausted_jobs(session, settings.STALE_AFTER_SECONDS, settings.MAX_ATTEMPTS):
            log.warning("job %s failed: its worker crashed on every attempt", job_id)
        for job_id in jobs.end_abandoned_graphs(session, settings.STALE_AFTER_SECONDS, settings.MAX_ATTEMPTS):
            log.warning("job %s: its graph will not be drawn (cancelled, or its drawer died every time)", job_id)
        resend = jobs.take_jobs_to_redeliver(session, settings.STALE_AFTER_SECONDS,
                                             settings.REDELIVER_QUEUED_AFTER_SECONDS, settings.MAX_ATTEMPTS)
    for i, job_id in enumerate(resend):
        log.info("sending job %s again", job_id)
        try:
            queue.send(job_id)
        except Exception:  # the broker is down: these were not sent, the next sweep tries them again
            with session_scope() as session:
                jobs.forget_sends(session, resend[i:])
            raise
    _advance_sweeps()
    return resend


def _advance_sweeps() -> None:
    """Every running sweep takes a step, so that trials a dead worker left are pruned and counted and
    the next ones asked for (the worker that ends a trial normally does this at once)."""
    with session_scope() as session:
        running = sweep_store.running_sweep_ids(session)
    for sweep_id in running:
        try:
            sweeps.advance(sweep_id)
        except Exception:
            log.warning("could not advance sweep %s; next round", sweep_id, exc_info=True)


def start_sweeper_thread() -> threading.Thread:
    thread = threading.Thread(target=_sweep_forever, name="sweeper", daemon=True)
    thread.start()
    return thread


def _sweep_forever() -> None:
    while True:
        try:
            sweep()
        except Exception:  # the database or broker is down: try again next round
            log.warning("sweep failed; retrying in %s s", get_settings().SWEEP_SECONDS, exc_info=True)
        time.sleep(get_settings().SWEEP_SECONDS)
