"""/sweeps: start a hyperparameter search, follow its leaderboard, cancel it. Trials are jobs."""
import logging
import uuid
from typing import Annotated, Optional

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core.sweep_spec import SweepSpec
from services import sweeps as search
from services.api.deps import API_DEPENDENCIES, OwnerDep, SessionDep, SettingsDep
from services.api.limits import spec_limit_errors
from services.api.routes.jobs import errors, headers, metrics_of, too_many_active_jobs
from services.api.routing import ReleaseSessionRoute
from services.api.schemas import (SubmittedSweep, SweepCounts, SweepDetail, SweepList, SweepSummary, TrialOut)
from services.store import jobs as job_store
from services.store import sweeps as sweep_store

log = logging.getLogger(__name__)
router = APIRouter(prefix="/sweeps", tags=["sweeps"], responses=errors(401, 429), route_class=ReleaseSessionRoute,
                   dependencies=API_DEPENDENCIES)
SweepId = Annotated[uuid.UUID, "the sweep's id"]
MAX_CORNER_CHECKS = 256  # specs built from the space's extremes and checked at submission


@router.post("", status_code=201, response_model=SweepDetail,
             responses={201: {"headers": headers(201)}, **errors(400, 413)})
def create_sweep(sweep: SubmittedSweep, response: Response, session: SessionDep, owner: OwnerDep,
                 settings: SettingsDep):
    """Validates the sweep (the paths exist, the trial specs it can make are valid and within the
    limits), stores it and queues its first trials."""
    problems = sweep_errors(sweep, settings)
    if problems:
        raise RequestValidationError(problems)
    try:  # room for its parallel trials now; each trial is made later only within the cap too
        row = sweep_store.create_sweep(session, owner, sweep.model_dump(mode="json"), sweep.trial_count,
                                       max_active=settings.MAX_ACTIVE_JOBS_PER_OWNER, parallelism=sweep.parallelism)
    except job_store.TooManyActiveJobs as full:
        raise too_many_active_jobs(full, f" and this sweep runs {sweep.parallelism} at once")
    try:
        search.advance(row.id)
    except Exception:  # the sweep row is the source of truth: the sweeper advances it
        log.warning("could not start sweep %s now; the sweeper will", row.id, exc_info=True)
    response.headers["Location"] = f"/sweeps/{row.id}"
    return sweep_detail(session, sweep_store.get_sweep(session, row.id))


@router.get("", response_model=SweepList)
def list_sweeps(session: SessionDep, owner: OwnerDep,
                limit: Annotated[int, Query(ge=1, le=200)] = 50,
                cursor: Annotated[Optional[str], Query(max_length=200, description="from the previous page")] = None):
    try:
        sweeps, next_cursor = sweep_store.list_sweeps(session, owner, limit=limit, cursor=cursor)
    except ValueError as e:
        raise RequestValidationError([{"loc": ("query", "cursor"), "msg": f"invalid cursor: {e}",
                                       "type": "value_error", "input": cursor}])
    return SweepList(items=[sweep_summary(session, row) for row in sweeps], next_cursor=next_cursor)


@router.get("/{sweep_id}", response_model=SweepDetail, responses=errors(404))
def get_sweep(sweep_id: SweepId, session: SessionDep, owner: OwnerDep):
    return sweep_detail(session, find_sweep(session, sweep_id, owner))


@router.post("/{sweep_id}/cancel", response_model=SweepDetail, responses=errors(404))
def cancel_sweep(sweep_id: SweepId, session: SessionDep, owner: OwnerDep):
    """No new trials; queued trials are cancelled, running ones stop within a step or two.
    A finished sweep is unchanged."""
    find_sweep(session, sweep_id, owner)
    sweep_store.cancel_sweep(session, sweep_id)
    return sweep_detail(session, sweep_store.get_sweep(session, sweep_id))


def find_sweep(session, sweep_id, owner):
    """The caller's sweep, or 404 (another owner's sweep is indistinguishable from a missing one)."""
    sweep = sweep_store.get_sweep(session, sweep_id, owner=owner)
    if sweep is None:
        raise HTTPException(404, f"no sweep {sweep_id}")
    return sweep


# ---- validation -------------------------------------------------------------------------------------------

def sweep_errors(sweep: SweepSpec, settings) -> list:
    """422 errors in pydantic's shape, each naming its field: the sweep's own consistency, the limits,
    and the trial specs made from the extremes of the space (each parameter alone, then together)."""
    found = [_error(("body",) + loc, msg) for loc, msg in sweep.problems()]
    if sweep.trial_count > settings.MAX_TRIALS:
        found.append(_error(("body", "trials"), f"{sweep.trial_count} trials, the limit is {settings.MAX_TRIALS}"))
    if sweep.parallelism > settings.MAX_PARALLELISM:
        found.append(_error(("body", "parallelism"),
                            f"parallelism is {sweep.parallelism}, the limit is {settings.MAX_PARALLELISM}"))
    found += [{**e, "loc": ("body", "spec") + tuple(e["loc"][1:])} for e in spec_limit_errors(sweep.spec, settings)]
    if found:
        return found
    for checked, (paths, params) in enumerate(sweep.corner_params()):
        if checked == MAX_CORNER_CHECKS:
            break
        problem = _trial_spec_problem(sweep, params, settings)
        if problem:
            loc = ("body", "space", paths[0]) if len(paths) == 1 else ("body", "space")
            return [_error(loc, f"{_describe(params)} makes an invalid trial spec: {problem}")]
    return []


def _trial_spec_problem(sweep, params, settings) -> Optional[str]:
    try:
        spec = sweep.trial_spec(params)
    except ValidationError as e:
        first = e.errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'spec'}: {first['msg']}"
    over = spec_limit_errors(spec, settings)
    if over:
        return f"{'.'.join(map(str, over[0]['loc'][1:])) or 'spec'}: {over[0]['msg']}"
    return None


def _describe(params) -> str:
    text = ", ".join(f"{path}={value!r}" for path, value in params.items())
    return text if len(text) <= 300 else text[:300] + "..."


def _error(loc, msg):
    return {"loc": loc, "msg": msg, "type": "value_error", "input": None}


# ---- responses --------------------------------------------------------------------------------------------

def sweep_summary(session, row, trials=None) -> SweepSummary:
    sweep = SweepSpec.model_validate(row.sweep_spec)
    if trials is None:
        trials = leaderboard(sweep, sweep_store.trials_with_jobs(session, row.id))
    best = trials[0].objective if trials and trials[0].objective is not None else None
    return SweepSummary(id=row.id, status=row.status, created_at=row.created_at, finished_at=row.finished_at,
                        method=sweep.method, objective=sweep.objective, direction=sweep.direction,
                        trials=row.trials, trials_created=row.trials_created, best_objective=best)


def sweep_detail(session, row) -> SweepDetail:
    sweep = SweepSpec.model_validate(row.sweep_spec)
    trials = leaderboard(sweep, sweep_store.trials_with_jobs(session, row.id))
    counts = {status: 0 for status in SweepCounts.model_fields}
    for trial in trials:
        counts[trial.status] += 1
    best = trials[0] if trials and trials[0].objective is not None else None
    return SweepDetail(**sweep_summary(session, row, trials).model_dump(), sweep=sweep,
                       counts=SweepCounts(**counts), best=best, leaderboard=trials)


def leaderboard(sweep: SweepSpec, rows) -> list[TrialOut]:
    trials = [trial_out(sweep, trial, job) for trial, job in rows]
    sign = 1 if sweep.direction == "minimize" else -1
    return sorted(trials, key=lambda t: (t.objective is None, sign * (t.objective or 0), t.number))


def trial_out(sweep: SweepSpec, trial, job) -> TrialOut:
    status = "pruned" if trial.pruned else job.status if job is not None else "failed"
    objective = sweep.objective_value(job.metrics) if job is not None and job.status == "succeeded" else None
    return TrialOut(number=trial.number, job_id=trial.job_id, status=status, pruned=trial.pruned,
                    params=trial.params, objective=objective, metrics=metrics_of(job) if job else None,
                    steps_done=(job.progress_step or 0) if job else 0)
