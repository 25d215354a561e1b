"""The one module that reads and writes sweeps and their trials.

A sweep advances in one transaction that holds its row lock (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite's transactions already begin IMMEDIATE, one writer at a time): read the
trials, let the caller decide (services/sweeps.py asks Optuna), write the new trial jobs, the
pruned marks and the pruner's per-trial state, commit. A process killed anywhere in between
leaves the sweep as it was before the transaction, so no trial is lost or started twice, and
`trials_created` never passes `trials`."""
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from services.store import jobs as job_store
from services.store.jobs import _as_uuid as as_uuid
from services.store.jobs import _decode_cursor as decode_cursor
from services.store.jobs import _encode_cursor as encode_cursor
from services.store.jobs import _update_jobs as update_jobs
from services.store.models import ACTIVE_STATUSES, Job, Sweep, SweepTrial, utcnow


@dataclass
class TrialView:
    """One trial as the deciding code sees it (a plain object: nothing here writes)."""
    number: int
    job_id: Optional[uuid.UUID]
    status: str  # the job's status ('failed' when its job was deleted)
    pruned: bool
    params: dict
    system_attrs: dict
    checked_step: Optional[int]
    metrics: Optional[dict]
    steps_done: Optional[int]  # the job's progress


@dataclass
class NewTrial:
    params: dict
    system_attrs: dict
    spec: Optional[dict]  # the trial's JobSpec as JSON, or None when the params make an invalid spec
    error: Optional[str] = None  # ... and then why: the trial's job is created failed


@dataclass
class Decision:
    new_trials: list = field(default_factory=list)   # [NewTrial], asked in order
    prune: list = field(default_factory=list)        # trial numbers whose running jobs are stopped
    checked: dict = field(default_factory=dict)      # number -> (system_attrs, checked_step)


@dataclass
class Advanced:
    queued: list = field(default_factory=list)  # ids of the new queued jobs, to send to the broker
    pruned: list = field(default_factory=list)  # ids of the jobs asked to stop
    status: Optional[str] = None                # the sweep's status afterwards (None: no such sweep)


class SweepSnapshot:
    """What `decide` gets: the sweep row's fields, its trials, and their loss histories on demand
    (read in the same locked transaction)."""

    def __init__(self, session: Session, sweep: Sweep, trials: list[TrialView]):
        self.sweep_spec, self.trials = sweep.sweep_spec, trials
        self.trials_wanted, self.trials_created = sweep.trials, sweep.trials_created
        self._session = session

    def history(self, job_id, start: Optional[int] = None, end: Optional[int] = None) -> list:
        """The trial's recorded loss points from `start` to `end` (rows with .step and .loss)."""
        return job_store.read_loss_points(self._session, job_id, start=start, end=end)


# ---- API side ---------------------------------------------------------------------------------------------

def create_sweep(session: Session, owner: str, sweep_spec: dict, trials: int, max_active: Optional[int] = None,
                 parallelism: int = 0) -> Sweep:
    """Stores a running sweep. With `max_active`, only while the owner has room for `parallelism` more
    active jobs, else raises jobs.TooManyActiveJobs (checked and inserted in one transaction, as a job is)."""
    if max_active is not None:
        room = job_store.room_for_active_jobs(session, owner, max_active)
        if room < parallelism:
            session.rollback()
            raise job_store.TooManyActiveJobs(max_active - room, max_active)
    sweep = Sweep(owner=owner, status="running", sweep_spec=sweep_spec, trials=trials, trials_created=0)
    session.add(sweep)
    session.commit()
    return sweep


def get_sweep(session: Session, sweep_id, owner: Optional[str] = None) -> Optional[Sweep]:
    sweep = session.get(Sweep, as_uuid(sweep_id), populate_existing=True)
    session.commit()
    if sweep is None or (owner is not None and sweep.owner != owner):
        return None
    return sweep


def list_sweeps(session: Session, owner: str, limit: int = 50, cursor: Optional[str] = None):
    """Newest first, as jobs are listed; returns (sweeps, next cursor or None)."""
    query = select(Sweep).where(Sweep.owner == owner)
    if cursor is not None:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(or_(Sweep.created_at < created_at,
                                and_(Sweep.created_at == created_at, Sweep.id < last_id)))
    sweeps = list(session.scalars(query.order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit + 1)))
    session.commit()
    if len(sweeps) <= limit:
        return sweeps, None
    return sweeps[:limit], encode_cursor(sweeps[limit - 1])


def trials_with_jobs(session: Session, sweep_id) -> list[tuple[SweepTrial, Optional[Job]]]:
    """Every trial of the sweep with its job (None if the job was deleted), by trial number."""
    rows = session.execute(select(SweepTrial, Job).outerjoin(Job, SweepTrial.job_id == Job.id)
                           .where(SweepTrial.sweep_id == as_uuid(sweep_id))
                           .order_by(SweepTrial.number)).all()
    session.commit()
    return [(trial, job) for trial, job in rows]


def trial_of_job(session: Session, job_id) -> Optional[SweepTrial]:
    trial = session.scalar(select(SweepTrial).where(SweepTrial.job_id == as_uuid(job_id)))
    session.commit()
    return trial


def pruned_job_ids(session: Session, jobs) -> set[uuid.UUID]:
    """The ids of those of `jobs` that are trials early stopping pruned. The mark is on the trial; the job's
    own status stays what its run ended with (cancelled, as the worker stops it), so a job listing asks here
    to tell a pruned trial from a cancelled job. No query when none of the jobs is a sweep's trial."""
    trial_job_ids = [job.id for job in jobs if job.sweep_id is not None]
    if not trial_job_ids:
        return set()
    pruned = set(session.scalars(select(SweepTrial.job_id).where(SweepTrial.job_id.in_(trial_job_ids),
                                                                 SweepTrial.pruned.is_(True))))
    session.commit()
    return pruned


def cancel_sweep(session: Session, sweep_id) -> Optional[str]:
    """Stops the sweep: no new trials; queued trials are cancelled, running ones asked to stop.
    A finished sweep is unchanged. Returns its status, None if there is no such sweep."""
    sweep = _locked(session, sweep_id)
    if sweep is None:
        session.commit()
        return None
    if sweep.status == "running":
        sweep.status, sweep.finished_at = "cancelled", utcnow()
        now = utcnow()
        of_sweep = Job.sweep_id == sweep.id
        session.execute(update_jobs().where(of_sweep, Job.status == "queued")
                        .values(status="cancelled", finished_at=now, cancel_requested=True))
        session.execute(update_jobs().where(of_sweep, Job.status == "running")
                        .values(cancel_requested=True))
    status = sweep.status
    session.commit()
    return status


# ---- advancing (the API on create, the worker when a trial reports or ends, the sweeper) -------------------

def running_sweep_ids(session: Session) -> list[uuid.UUID]:
    ids = list(session.scalars(select(Sweep.id).where(Sweep.status == "running")))
    session.commit()
    return ids


def sweep_id_of_job(session: Session, job_id) -> Optional[uuid.UUID]:
    sweep_id = session.scalar(select(Job.sweep_id).where(Job.id == as_uuid(job_id)))
    session.commit()
    return sweep_id


def advance(session: Session, sweep_id, decide: Callable[[SweepSnapshot], Decision],
            max_active: Optional[int] = None) -> Advanced:
    """Runs `decide` on the locked sweep and writes its decision, in one transaction. With `max_active`, new
    queued trials are made only while the owner's active jobs stay within it (the owner's cap is held, as a
    submission holds it); the trials left out are asked for again at a later advance."""
    sweep = _locked(session, sweep_id)
    if sweep is None:
        session.commit()
        return Advanced()
    if sweep.status != "running":
        session.commit()
        return Advanced(status=sweep.status)
    decision = decide(SweepSnapshot(session, sweep, _trial_views(session, sweep.id)))
    done = Advanced(pruned=_prune(session, sweep.id, decision.prune))
    for number, (system_attrs, checked_step) in decision.checked.items():
        session.execute(update(SweepTrial).where(SweepTrial.sweep_id == sweep.id, SweepTrial.number == number)
                        .values(system_attrs=system_attrs, checked_step=checked_step))
    new_trials = decision.new_trials[:sweep.trials - sweep.trials_created]
    slots = None  # free active-job slots of the owner (None: no cap, or nothing to queue)
    if max_active is not None and any(new.spec is not None for new in new_trials):
        slots = job_store.room_for_active_jobs(session, sweep.owner, max_active)
    for new in new_trials:
        if slots is not None and new.spec is not None:
            if slots <= 0:
                break  # this trial and the ones after it wait for room (the same rows ask for them again)
            slots -= 1
        job = _trial_job(sweep, new)
        session.add(job)
        session.flush()
        session.add(SweepTrial(sweep_id=sweep.id, number=sweep.trials_created, job_id=job.id, params=new.params,
                               system_attrs=new.system_attrs, pruned=False))
        sweep.trials_created += 1
        if job.status == "queued":
            done.queued.append(job.id)
    if sweep.trials_created == sweep.trials and not _has_active_trials(session, sweep.id):
        sweep.status, sweep.finished_at = "finished", utcnow()
    done.status = sweep.status
    session.commit()
    return done


def _locked(session: Session, sweep_id) -> Optional[Sweep]:
    return session.scalar(select(Sweep).where(Sweep.id == as_uuid(sweep_id))
                          .with_for_update().execution_options(populate_existing=True))


def _trial_views(session: Session, sweep_id) -> list[TrialView]:
    rows = session.execute(select(SweepTrial, Job.status, Job.metrics, Job.progress_step)
                           .outerjoin(Job, SweepTrial.job_id == Job.id)
                           .where(SweepTrial.sweep_id == sweep_id).order_by(SweepTrial.number)).all()
    return [TrialView(number=t.number, job_id=t.job_id, status=status or "failed", pruned=t.pruned,
                      params=t.params, system_attrs=t.system_attrs, checked_step=t.checked_step,
                      metrics=metrics, steps_done=steps_done)
            for t, status, metrics, steps_done in rows]


def _prune(session: Session, sweep_id, numbers: list[int]) -> list[uuid.UUID]:
    """Asks the running jobs of these trials to stop and marks the trials pruned; a job that ended
    meanwhile keeps its result and its trial is not marked."""
    pruned = []
    for number in numbers:
        job_id = session.scalar(select(SweepTrial.job_id).where(SweepTrial.sweep_id == sweep_id,
                                                                SweepTrial.number == number))
        stopped = job_id is not None and session.execute(
            update_jobs().where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES))
            .values(cancel_requested=True)).rowcount == 1
        if stopped:
            session.execute(update_jobs().where(Job.id == job_id, Job.status == "queued")
                            .values(status="cancelled", finished_at=utcnow()))
            session.execute(update(SweepTrial).where(SweepTrial.sweep_id == sweep_id, SweepTrial.number == number)
                            .values(pruned=True))
            pruned.append(job_id)
    return pruned


def _trial_job(sweep: Sweep, new: NewTrial) -> Job:
    """The trial's job, named after its sweep and number (e.g. `moons-3fa2-t07`); failed at once when
    its parameters make an invalid spec."""
    job_id = uuid.uuid4()
    spec = new.spec or sweep.sweep_spec["spec"]
    common = dict(id=job_id, owner=sweep.owner, spec=spec, sweep_id=sweep.id, total_steps=spec["steps"],
                  name=f"{spec['data']['kind']}-{sweep.id.hex[:4]}-t{sweep.trials_created:02d}", tags={}, notes="")
    if new.spec is None:
        return Job(status="failed", error=new.error, finished_at=utcnow(), **common)
    return Job(status="queued", **common)


def _has_active_trials(session: Session, sweep_id) -> bool:
    return session.scalar(select(Job.id).where(Job.sweep_id == sweep_id, Job.status.in_(ACTIVE_STATUSES))
                          .limit(1)) is not None
