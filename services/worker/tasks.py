"""The task: claim the job, train it with core, save what it produced, then draw its graph.

Every outcome ends the job row in a final state (succeeded, cancelled, failed with a reason),
except a run that lost its claim: it exits without writing, the run that owns the job decides.
A succeeded job's results are saved first (status, history, parameters, metrics); its graph,
when the spec asks for one, is drawn afterwards by the same run, which keeps its claim and its
heartbeat meanwhile (graph_status 'pending'). A run that dies while drawing is noticed like any
other (stale heartbeat): the sweeper sends the task again, and that run draws the graph from the
saved parameters (claim_graph); it ends 'ready', or 'failed' with the reason."""
import json
import logging
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from core.spec import JobSpec
from core.train import TrainingDiverged, graph_from_params, run_spec
from services import sweeps
from services.config import get_settings
from services.store import checkpoints, jobs
from services.store.db import session_scope
from services.worker import metrics
from services.worker.celery_app import app
from services.worker.checkpointing import Checkpointer
from services.worker.heartbeat import Heartbeat
from services.worker.progress import Cancelled, GraphCheck, Progress, TimeLimitExceeded

log = logging.getLogger(__name__)

DATABASE_PATIENCE_SECONDS = 60  # keep trying through a database restart
MAX_REASON_CHARS = 2000


@app.task(name="train_job", ignore_result=True)
def train_job(job_id: str) -> str:
    return run_job(job_id)


def run_job(job_id: str) -> str:
    """Runs one job to its end; returns its final status, or 'not claimed' / 'superseded'."""
    settings = get_settings()
    started = time.perf_counter()
    # One statement takes the job and reads what the run needs (spec, sweep, attempt).
    claim = _with_retries(lambda session: jobs.claim_and_load(session, job_id, settings.STALE_AFTER_SECONDS,
                                                              settings.MAX_ATTEMPTS))
    if claim is None:
        return _draw_left_graph(job_id, settings)
    token, sweep_id = claim.token, claim.sweep_id
    phases = {"queue_wait": claim.queue_wait, "claim": time.perf_counter() - started}
    try:
        with Heartbeat(job_id, token, settings.HEARTBEAT_SECONDS):
            status, graph = _train_and_save(job_id, token, settings, claim, phases)
    except jobs.Superseded:
        log.warning("job %s was claimed by another run; this run stops without writing", job_id)
        return "superseded"
    if sweep_id is not None:  # a trial ended: its sweep asks for the next (if this fails, the sweeper will)
        sweeps.advance_for_trial(sweep_id, job_id)
    if graph is not None:
        draw, deadline, phases = graph
        with Heartbeat(job_id, token, settings.HEARTBEAT_SECONDS):
            _draw_and_store_graph(job_id, token, draw, deadline, phases)
    return status


def _draw_left_graph(job_id, settings) -> str:
    """A task for a job that cannot be claimed: a succeeded one whose graph's drawer died (the sweeper sent
    it again) has its graph drawn from the saved parameters; anything else is not this run's to do."""
    claim = _with_retries(lambda session: jobs.claim_graph(session, job_id, settings.STALE_AFTER_SECONDS,
                                                           settings.MAX_ATTEMPTS))
    if claim is None:
        log.info("job %s is not claimable (taken, final or cancelled); nothing to do", job_id)
        return "not claimed"
    log.info("job %s: drawing the graph its earlier run left undrawn", job_id)
    spec = JobSpec.model_validate(claim.spec)
    with Heartbeat(job_id, claim.token, settings.HEARTBEAT_SECONDS):
        _draw_and_store_graph(job_id, claim.token, lambda check: graph_from_params(spec, json.loads(claim.params_json),
                                                                                 check),
                              time.monotonic() + _time_limit(spec, settings), claim.phase_seconds)
    return "graph drawn"


def _train_and_save(job_id, token: str, settings, claim, phases: dict):
    """(final status, None or (draw(check), deadline, phases) when the graph is this run's to draw next)."""
    progress = None
    sweep_id = claim.sweep_id
    pruned = None if sweep_id is None else (lambda: sweeps.advance_for_trial(sweep_id, job_id))
    try:
        spec = JobSpec.model_validate(claim.spec)
        progress = Progress(job_id, token, _time_limit(spec, settings), after_flush=pruned)
        # Only an earlier attempt can have left a checkpoint: a first attempt saves the round trip.
        resume = None if claim.attempt == 1 else _with_retries(
            lambda session: checkpoints.load_checkpoint(session, job_id))
        if resume is not None:
            log.info("job %s: resuming from its checkpoint at step %d of %d", job_id, resume.step, spec.steps)
            progress.steps_done = resume.step
        checkpoint = Checkpointer(job_id, token, progress, settings.CHECKPOINT_STEPS, settings.CHECKPOINT_SECONDS,
                                  start_step=progress.steps_done)
        result = run_spec(spec, callback=progress, resume=resume, checkpoint=checkpoint, check=progress.check,
                          draw_graph=False)
        progress.check()  # saving starts within the time limit, and not after a cancel
    except Cancelled:
        return _cancel(job_id, token, progress), None
    except (TrainingDiverged, TimeLimitExceeded) as e:  # the reason as it is, without the exception's name
        return _fail(job_id, token, str(e), progress), None
    except jobs.Superseded:
        raise
    except Exception as e:  # a job must never hang in 'running': whatever went wrong becomes its reason
        log.exception("job %s failed", job_id)
        return _fail(job_id, token, f"{type(e).__name__}: {e}", progress), None
    started = time.perf_counter()
    status = "cancelled" if result.stopped_early and progress.cancel_requested else "succeeded"
    points = progress.take_pending()  # once: every retry of the final write must carry them
    # Parameters and graph are a succeeded job's results; a cancelled one keeps only its history.
    params = json.dumps(result.params) if status == "succeeded" else None
    graph_pending = status == "succeeded" and result.draw_graph is not None
    phases = {**phases, **result.timings, "save": time.perf_counter() - started}
    phases = _with_retries(lambda session: jobs.finish_job(
        session, job_id, token, status, points, progress.steps_done, result.metrics, params,
        phase_seconds=phases, graph_pending=graph_pending))
    # The statement that stores the phases cannot count its own round trip and commit in `save`: what of the
    # final write is in no phase (from save's stamp to the durable commit) goes to the workers' metrics.
    metrics.FINAL_WRITE_SECONDS.observe(max(0.0, time.perf_counter() - started - phases["save"]))
    metrics.observe(status, progress.steps_done, phases)
    return status, (result.draw_graph, progress.deadline, phases) if graph_pending else None


def _draw_and_store_graph(job_id, token: str, draw, deadline: float, phases) -> None:
    """Draws the graph of a job whose results are saved, and stores it (or why there is none), with its
    `graph` phase. Drawing stops at the job's time limit, on a cancel, or when the job is deleted."""
    started = time.perf_counter()
    try:
        svg, error = draw(GraphCheck(job_id, token, deadline).check)
    except jobs.Superseded:
        log.info("job %s: its graph is no longer this run's to draw (deleted, or taken over)", job_id)
        return
    except (TimeLimitExceeded, Cancelled) as e:
        svg, error = None, str(e)
    except Exception as e:  # whatever it was, the job keeps its results and its graph says why it has none
        log.exception("job %s: drawing its graph failed", job_id)
        svg, error = None, f"{type(e).__name__}: {e}"[:MAX_REASON_CHARS]
    seconds = time.perf_counter() - started
    phases = None if phases is None else {**phases, "graph": seconds}
    if not _with_retries(lambda session: jobs.store_graph(session, job_id, token, svg, error, phases)):
        log.info("job %s: its graph was not stored (deleted, or taken over)", job_id)
        return
    metrics.PHASE_SECONDS.labels("graph").observe(seconds)


def _cancel(job_id, token: str, progress) -> str:
    """A cancel seen between steps or outside them: the history so far, no results."""
    points = progress.take_pending()
    metrics = {"final_loss": progress.latest_loss, "accuracy": None, "val_loss": None, "val_accuracy": None,
               "steps_done": progress.steps_done}
    _with_retries(lambda session: jobs.finish_job(session, job_id, token, "cancelled", points, progress.steps_done,
                                                  metrics, None))
    return "cancelled"


def _fail(job_id, token: str, reason: str, progress) -> str:
    points = progress.take_pending() if progress else []
    steps_done = progress.steps_done if progress else None
    _with_retries(lambda session: jobs.fail_job(session, job_id, token, reason[:MAX_REASON_CHARS], points, steps_done))
    metrics.observe("failed")
    return "failed"


def _time_limit(spec, settings) -> float:
    return min(spec.time_limit_seconds or settings.DEFAULT_TIME_LIMIT_SECONDS, settings.MAX_TIME_LIMIT_SECONDS)


def _with_retries(work):
    """`work(session)`, retried while the database is unreachable. If it never comes back, the job stays
    queued, or 'running' without a heartbeat, and the sweeper gives it to another run."""
    deadline = time.monotonic() + DATABASE_PATIENCE_SECONDS
    while True:
        try:
            with session_scope() as session:
                return work(session)
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            log.warning("database unreachable; retrying", exc_info=True)
            time.sleep(1)
