"""/compare: several runs side by side: the spec fields that differ, the metrics, the loss curves on one grid."""
import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from services.api.deps import API_DEPENDENCIES, OwnerDep, SessionDep
from services.api.downsample import downsample_indices
from services.api.routes.jobs import DEFAULT_LOSS_POINTS, MAX_LOSS_POINTS, errors, find_job, metrics_of
from services.api.routing import ReleaseSessionRoute
from services.api.schemas import Comparison, ComparedRun, finite_or_none
from services.store import experiments as experiment_store, jobs as job_store, sweeps as sweep_store

MIN_RUNS, MAX_RUNS = 2, 20
router = APIRouter(prefix="/compare", tags=["jobs"], responses=errors(401, 429), route_class=ReleaseSessionRoute,
                   dependencies=API_DEPENDENCIES)


@router.get("", response_model=Comparison, responses=errors(404))
def compare(session: SessionDep, owner: OwnerDep,
            ids: Annotated[list[str], Query(description=f"{MIN_RUNS} to {MAX_RUNS} job ids: repeat ids= or "
                                                        "separate them with commas")],
            max_points: Annotated[int, Query(ge=1, le=MAX_LOSS_POINTS,
                                             description="about this many grid steps in all")] = DEFAULT_LOSS_POINTS):
    """`differences` maps each dotted spec path whose value is not the same in every run to the runs' values
    (in the order of `runs`; null where a run's spec has no such field). Each run's `loss` is aligned on
    `steps`: null where that run recorded no loss at that step. The grid is the union of every run's curve
    downsampled as /jobs/{id}/loss does (spikes kept), each run to max_points / number of runs."""
    job_ids = parse_ids(ids)
    jobs = [find_job(session, job_id, owner) for job_id in job_ids]
    names = experiment_store.names_by_id(session, [job.experiment_id for job in jobs])
    histories = [job_store.get_loss_points(session, job.id) for job in jobs]
    budget = max(4, max_points // len(jobs))
    steps = sorted({step for history in histories
                    for step in history.steps[downsample_indices(history.loss, budget)].tolist()})
    flat = [flatten(job.spec) for job in jobs]
    paths = sorted({path for spec in flat for path in spec})
    differences = {path: [spec.get(path) for spec in flat] for path in paths
                   if any(spec.get(path) != flat[0].get(path) or path not in spec for spec in flat)}
    pruned = sweep_store.pruned_job_ids(session, jobs)
    runs = []
    for job, history in zip(jobs, histories):
        by_step = dict(zip(history.steps.tolist(), history.loss.tolist()))
        runs.append(ComparedRun(id=job.id, name=job.name, status=job.status, pruned=job.id in pruned,
                                experiment=names.get(job.experiment_id), tags=job.tags, metrics=metrics_of(job),
                                loss=[finite_or_none(by_step.get(step)) for step in steps]))
    return Comparison(runs=runs, differences=differences, steps=steps)


def parse_ids(raw: list[str]) -> list[uuid.UUID]:
    def refuse(msg):
        return RequestValidationError([{"loc": ("query", "ids"), "msg": msg, "type": "value_error"}])
    texts = [text.strip() for item in raw for text in item.split(",") if text.strip()]
    if not MIN_RUNS <= len(texts) <= MAX_RUNS:
        raise refuse(f"compare takes {MIN_RUNS} to {MAX_RUNS} job ids, got {len(texts)}")
    ids = []
    for text in texts:
        try:
            job_id = uuid.UUID(text)
        except ValueError:
            raise refuse(f"{text[:50]!r} is not a job id (a UUID)")
        if job_id in ids:
            raise refuse(f"job {job_id} is listed twice")
        ids.append(job_id)
    return ids


def flatten(value, prefix=""):
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}; lists stay whole values."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat
