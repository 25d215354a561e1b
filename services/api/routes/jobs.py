"""/jobs: submit, list, inspect, edit, cancel, re-run, delete, and read what a job produced."""
import csv
import io
import json
import logging
import math
import uuid
from typing import Annotated, Literal, Optional

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core.spec import JobSpec
from core.predict import Forward
from services import queue
from services.api import caching
from services.api.deps import API_DEPENDENCIES, OwnerDep, ReadSessionDep, SessionDep, SettingsDep
from services.api.downsample import downsample_indices
from services.api.limits import predict_limit_errors, spec_limit_errors
from services.api.points_json import with_points
from services.api.routing import ReleaseSessionRoute
from services.api.schemas import (TAG_KEY, ErrorDetail, JobCreated, JobDetail, JobList, JobPatch, JobStatus,
                                  JobSubmission, JobSummary, LossHistory, Metrics, PredictRequest,
                                  PredictResponse, Progress, RerunRequest, Submission, Timings, finite_or_none)
from services.store import experiments as experiment_store, jobs as job_store, search, sweeps as sweep_store
from services.store.jobs import STEP_LIMIT

log = logging.getLogger(__name__)

ACTIVE_JOBS_RETRY_AFTER_SECONDS = 10
GRAPH_RETRY_AFTER_SECONDS = 1  # the seed example's graph takes ~0.3 s to draw
DEFAULT_LOSS_POINTS = 1000
MAX_LOSS_POINTS = 10_000
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
               "X-Content-Type-Options": "nosniff"}


HEADERS_OF = {
    201: {"Location": "the new job's URL, /jobs/{id}"},
    202: {"Retry-After": "seconds to wait before asking again"},
    401: {"WWW-Authenticate": "Bearer (with error=... when a key was sent but refused)"},
    429: {"Retry-After": "seconds to wait before trying again"},
    503: {"Retry-After": "seconds to wait before trying again"},
}


def headers(code):
    return {name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in HEADERS_OF.get(code, {}).items()}


def errors(*codes):
    return {code: {"model": ErrorDetail, **({"headers": headers(code)} if code in HEADERS_OF else {})}
            for code in codes}


router = APIRouter(prefix="/jobs", tags=["jobs"], responses=errors(401, 429), route_class=ReleaseSessionRoute,
                   dependencies=API_DEPENDENCIES)
JobId = Annotated[uuid.UUID, "the job's id"]


def find_job(session, job_id, owner):
    """The caller's job, or 404 (another owner's job is indistinguishable from a missing one)."""
    job = job_store.get_job(session, job_id, owner=owner)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.post("", status_code=201, response_model=JobCreated,
             responses={201: {"headers": headers(201)}, **errors(400, 413)})
def submit_job(body: Submission, session: SessionDep, owner: OwnerDep, settings: SettingsDep):
    """The body is a bare spec, or `{"spec": {...}, "name", "experiment", "tags", "notes"}` (run metadata
    beside the spec: the spec is the training recipe only)."""
    wrapped = isinstance(body, JobSubmission)
    submission = body if wrapped else JobSubmission(spec=body)
    return created(create(session, owner, settings, submission, loc=("body", "spec") if wrapped else ("body",)))


def created(job) -> Response:
    """201 with the new job's JobCreated body and Location. Built here: a returned model would be validated
    and serialized again by FastAPI, on another hop to the thread pool (a sync route's response is)."""
    return Response(orjson.dumps({"id": job.id, "name": job.name, "status": job.status}), status_code=201,
                    media_type="application/json", headers={"Location": f"/jobs/{job.id}"})


def create(session, owner, settings, submission: JobSubmission, loc):
    """Checks the limits, stores the job and sends it; shared by submit and rerun."""
    spec = submission.spec
    problems = spec_limit_errors(spec, settings)
    if problems:
        raise RequestValidationError([{**p, "loc": loc + tuple(p["loc"][1:])} for p in problems])
    cap = settings.MAX_ACTIVE_JOBS_PER_OWNER
    experiment = None
    if submission.experiment is not None:
        active = job_store.count_active_jobs(session, owner)  # a quick no, before an experiment is made for nothing
        if active >= cap:
            raise too_many_active_jobs(job_store.TooManyActiveJobs(active, cap))
        experiment = experiment_store.experiment_named(session, owner, submission.experiment)
    try:  # the count that decides, and the insert, in one transaction that holds the owner's cap
        job = job_store.create_job(session, owner, spec, name=submission.name, tags=submission.tags,
                                   notes=submission.notes, experiment_id=experiment and experiment.id, max_active=cap)
    except job_store.TooManyActiveJobs as full:
        raise too_many_active_jobs(full)
    try:
        queue.enqueue(job.id)
    except Exception:  # the job row is the source of truth: the sweeper sends it again
        log.warning("could not enqueue job %s now; it stays queued for the sweeper", job.id, exc_info=True)
    return job


def too_many_active_jobs(full: job_store.TooManyActiveJobs, wanted: str = "") -> HTTPException:
    return HTTPException(429, f"{full.active} jobs queued or running{wanted}, the limit is {full.limit}; "
                              f"wait for some to finish", headers={"Retry-After": str(ACTIVE_JOBS_RETRY_AFTER_SECONDS)})


@router.get("", response_model=JobList)
def list_jobs(session: SessionDep, owner: OwnerDep,
              status: Optional[JobStatus] = None,
              experiment: Annotated[Optional[str], Query(max_length=200, description="an experiment's name")] = None,
              sweep: Annotated[Optional[uuid.UUID], Query(description="a sweep's id: its trials")] = None,
              tag: Annotated[Optional[list[str]], Query(
                  description="`key:value`, or `key` for any value; repeat for several (all must match)")] = None,
              filter: Annotated[Optional[str], Query(max_length=1000, description=(
                  "conditions joined by `and` on spec fields and metrics, e.g. "
                  "`optimizer.lr>=0.05 and metrics.val_accuracy>0.9 and data.kind=moons`"))] = None,
              sort: Annotated[str, Query(max_length=100, description=(
                  "created_at, name, a spec field (optimizer.lr) or metrics.<name>; jobs without it come last"))
              ] = "created_at",
              order: Literal["asc", "desc"] = "desc",
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              cursor: Annotated[Optional[str], Query(max_length=1000, description="from the previous page")] = None):
    """Your jobs, filtered and sorted, a page at a time."""
    tags = parse_tags(tag or [])
    try:
        conditions = search.parse_filter(filter) if filter is not None else []
    except search.FilterError as e:
        raise RequestValidationError([{"loc": ("query", "filter"), "msg": str(e), "type": "value_error"}])
    try:
        search.sort_column(sort)
    except search.FilterError as e:
        raise RequestValidationError([{"loc": ("query", "sort"), "msg": str(e), "type": "value_error"}])
    experiment_id = None
    if experiment is not None:
        found = experiment_store.find_experiment(session, owner, experiment)
        if found is None:
            return JobList(items=[], next_cursor=None)
        experiment_id = found.id
    try:
        jobs, next_cursor = job_store.list_jobs(session, owner, status=status, limit=limit, cursor=cursor,
                                                experiment_id=experiment_id, sweep_id=sweep, tags=tags,
                                                conditions=conditions,
                                                sort=sort, descending=order == "desc")
    except ValueError as e:
        raise RequestValidationError([{"loc": ("query", "cursor"), "msg": f"invalid cursor: {e}",
                                       "type": "value_error", "input": cursor}])
    names = experiment_store.names_by_id(session, [job.experiment_id for job in jobs])
    pruned = sweep_store.pruned_job_ids(session, jobs)
    return JobList(items=[summary(job, names, pruned) for job in jobs],
                   next_cursor=None if next_cursor is None else str(next_cursor))


def parse_tags(filters: list[str]) -> dict:
    tags = {}
    for text in filters:
        key, _, value = text.partition(":")
        if not TAG_KEY.fullmatch(key) or len(value) > 200:
            raise RequestValidationError([{"loc": ("query", "tag"), "type": "value_error",
                                           "msg": f"invalid tag filter {text!r}: expected key or key:value, the "
                                                  f"key made of letters, digits, '_', '.' or '-' (at most 64)"}])
        tags[key] = value if ":" in text else None
    return tags


@router.get("/{job_id}", response_model=JobDetail, responses=errors(404))
def get_job(job_id: JobId, session: ReadSessionDep, owner: OwnerDep):
    """Clients poll this while a job runs: its reads are one round trip each, and its answer is serialized once."""
    return as_json(detail(session, find_job(session, job_id, owner)))


def as_json(model) -> Response:
    """A built response model as JSON, serialized by pydantic on the route's thread. Returned as a model, FastAPI
    would validate it again and serialize it then, on one more hop to the thread pool (a sync route's response
    is). The bytes are the same: pydantic serializes both ways, and no field has an alias."""
    return Response(model.model_dump_json(), media_type="application/json")


@router.patch("/{job_id}", response_model=JobDetail, responses=errors(400, 404, 413))
def update_job(job_id: JobId, body: JobPatch, session: SessionDep, owner: OwnerDep):
    """Changes the run metadata: name, tags (replaced whole), notes. The spec and results never change."""
    find_job(session, job_id, owner)
    return detail(session, job_store.update_job(session, job_id, **body.model_dump(exclude_unset=True)))


@router.post("/{job_id}/cancel", response_model=JobDetail, responses=errors(404))
def cancel_job(job_id: JobId, session: SessionDep, owner: OwnerDep):
    """A queued job never starts; a running one stops within a step or two. A finished job is unchanged."""
    find_job(session, job_id, owner)
    return detail(session, job_store.cancel_job(session, job_id))


OPTIONAL_HEADER = {"required": False, "schema": {"type": "string"}}
FINAL_LOSS_HEADERS = {
    "ETag": {**OPTIONAL_HEADER, "description": "only once the job is finished: its history no longer changes"},
    "Cache-Control": {**OPTIONAL_HEADER, "description": "`private, no-cache` with an ETag: keep it, ask again"}}


@router.get("/{job_id}/loss", response_model=LossHistory, responses={
    **errors(404), 200: {"headers": FINAL_LOSS_HEADERS},
    304: {"description": "Not Modified: the job is finished and If-None-Match named this answer's ETag"}})
def get_loss(job_id: JobId, session: SessionDep, owner: OwnerDep,
             start: Annotated[Optional[int], Query(ge=0, le=STEP_LIMIT, description="first step (inclusive)")] = None,
             end: Annotated[Optional[int], Query(ge=0, le=STEP_LIMIT, description="last step (inclusive)")] = None,
             max_points: Annotated[int, Query(ge=1, le=MAX_LOSS_POINTS)] = DEFAULT_LOSS_POINTS,
             if_none_match: Annotated[Optional[str], Header(description="an ETag this endpoint gave")] = None):
    """The loss history, also while the job runs; long curves are shrunk to max_points keeping spikes.
    A finished job's answer has an ETag: asked again with If-None-Match, it is 304 (see services/api/caching.py)."""
    if start is not None and end is not None and end < start:
        raise RequestValidationError([{"loc": ("query", "end"), "msg": f"end ({end}) is before start ({start})",
                                       "type": "value_error", "input": end}])
    job = find_job(session, job_id, owner)
    etag = caching.final_etag(job, start, end, max_points)
    cache = {} if etag is None else {"ETag": etag, "Cache-Control": caching.REVALIDATE}
    if caching.matches(if_none_match, etag):
        return Response(status_code=304, headers=cache)
    history, total = job_store.get_loss_curve(session, job_id, lambda loss: downsample_indices(loss, max_points),
                                              start=start, end=end)
    # JSON made from the history's columns (points_json), with no model, dict or float object per point.
    body = with_points({"job_id": str(job.id), "status": job.status, "total_points": total}, history)
    return Response(body, media_type="application/json", headers=cache)


@router.get("/{job_id}/params", responses={**errors(404), 200: {
    "description": "the final parameters, loadable with core.nn.MLP.from_json",
    "content": {"application/json": {"schema": {"type": "object"}}}}})
def get_params(job_id: JobId, session: SessionDep, owner: OwnerDep):
    job = find_job(session, job_id, owner)
    text = job_store.get_artifact(session, job_id, "params")
    if text is None:
        raise HTTPException(404, f"job {job_id} has no parameters yet (status {job.status})")
    return Response(text, media_type="application/json", headers=attachment(f"{job.id}-params.json"))


@router.get("/{job_id}/loss.csv", response_class=Response, responses={**errors(404), 200: {
    "description": "the whole loss history (not downsampled): step,loss,accuracy,lr; empty where unknown",
    "content": {"text/csv": {"schema": {"type": "string"}}}}})
def get_loss_csv(job_id: JobId, session: SessionDep, owner: OwnerDep):
    job = find_job(session, job_id, owner)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "loss", "accuracy", "lr"])
    for p in job_store.get_loss_points(session, job_id):
        writer.writerow([p.step] + ["" if v is None else repr(float(v)) for v in (p.loss, p.accuracy, p.lr)])
    return Response(out.getvalue(), media_type="text/csv", headers=attachment(f"{job.id}-loss.csv"))


def attachment(filename):
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@router.post("/{job_id}/rerun", status_code=201, response_model=JobCreated,
             responses={201: {"headers": headers(201)}, **errors(400, 404, 413)})
def rerun_job(job_id: JobId, session: SessionDep, owner: OwnerDep, settings: SettingsDep,
              body: Optional[RerunRequest] = None):
    """A new job from this one's spec (same seed: the same history bit for bit), optionally with a new seed or
    a spec patch; in the same experiment with the same tags unless the body says otherwise."""
    job = find_job(session, job_id, owner)
    body = body or RerunRequest()
    spec = merge(job.spec, body.spec_patch or {})
    if body.seed is not None:
        spec["seed"] = body.seed
    try:
        spec = JobSpec.model_validate(spec, strict=True)
    except ValidationError as e:
        raise RequestValidationError([{"loc": ("body", "spec_patch") + tuple(err["loc"]), "msg": err["msg"],
                                       "type": err["type"]} for err in e.errors()])
    experiment = body.experiment
    if experiment is None and job.experiment_id is not None:
        experiment = experiment_store.names_by_id(session, [job.experiment_id])[job.experiment_id]
    submission = JobSubmission(spec=spec, name=body.name, experiment=experiment,
                               tags=job.tags if body.tags is None else body.tags,
                               notes=f"re-run of {job.name} ({job.id})" if body.notes is None else body.notes)
    return created(create(session, owner, settings, submission, loc=("body", "spec_patch")))


def merge(base, patch):
    """`patch` laid over `base`: objects merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


@router.delete("/{job_id}", status_code=204, response_class=Response, responses=errors(404))
def delete_job(job_id: JobId, session: SessionDep, owner: OwnerDep):
    """Deletes the job with its history and artifacts, for good; a running job is cancelled first (its worker
    stops at its next write)."""
    find_job(session, job_id, owner)
    job_store.delete_job(session, job_id)


@router.get("/{job_id}/graph.svg", response_class=Response, responses={**errors(404), 200: {
    "description": "the computation graph of one training step",
    "content": {"image/svg+xml": {"schema": {"type": "string"}}}}, 202: {
    "description": "the job has succeeded and its graph is being drawn: ask again after Retry-After seconds",
    "model": ErrorDetail, "headers": headers(202)}})
def get_graph(job_id: JobId, session: SessionDep, owner: OwnerDep):
    """The SVG; 202 while a succeeded job's graph is still being drawn (it is drawn after the results are
    saved); 404 saying why when there is none and will be none."""
    job = find_job(session, job_id, owner)
    if job.status == "succeeded" and job.graph_status == "pending":
        return JSONResponse({"detail": f"job {job_id} has no graph yet: the graph is being drawn"},
                            status_code=202, headers={"Retry-After": str(GRAPH_RETRY_AFTER_SECONDS)})
    svg = job_store.get_artifact(session, job_id, "graph_svg")
    if svg is None:
        raise HTTPException(404, f"job {job_id} has no graph: {why_no_graph(job)}")
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)


def why_no_graph(job) -> str:
    if job.status in ("queued", "running"):
        return "it has not finished"
    if job.status != "succeeded":
        return f"it ended {job.status}"
    if not job.spec.get("record", {}).get("graph_svg", True):
        return "its spec did not ask for it (record.graph_svg)"
    if job.graph_error == job_store.CANCELLED_WHILE_DRAWING:
        return "it was cancelled while the graph was being drawn"
    return f"rendering it failed: {job.graph_error or 'no reason was recorded'}"


@router.post("/{job_id}/predict", response_model=PredictResponse, responses=errors(400, 404, 409, 413, 429, 503))
def predict(job_id: JobId, body: PredictRequest, request: Request, session: SessionDep, owner: OwnerDep,
            settings: SettingsDep):
    """Limits are checked from the job's spec before its parameters are loaded; the forward pass runs as
    arrays (core.predict), at most PREDICT_CONCURRENCY at once (PREDICT_PER_OWNER per owner)."""
    job = find_job(session, job_id, owner)
    if job.status != "succeeded":
        raise HTTPException(409, f"job {job_id} is {job.status}; predictions need a succeeded job")
    spec = JobSpec.model_validate(job.spec)
    sizes = [spec.input_count()] + spec.model.layers
    check_inputs(body.xs, sizes[0], predict_limit_errors(body.xs, parameter_count(sizes), settings))
    session.commit()  # no transaction (on SQLite, a write lock) held through the inference
    with request.app.state.inference_slots.take(owner):
        model = request.app.state.models.get(job_id, lambda: Forward(
            json.loads(job_store.get_artifact(session, job_id, "params"))))
        check_inputs(body.xs, model.nin)
        try:
            ys = model(body.xs)
        except (OverflowError, ValueError):
            ys = [math.nan]
    if not all(math.isfinite(v) for y in ys for v in (y if isinstance(y, list) else [y])):
        raise HTTPException(422, "the model's output is not finite for these inputs")
    return PredictResponse(ys=ys)


def parameter_count(sizes):
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))


def check_inputs(xs, n_inputs, errors=()):
    if errors:
        raise RequestValidationError(errors)
    wrong = [{"loc": ("body", "xs", i), "msg": f"expected {n_inputs} inputs, got {len(x)}",
              "type": "value_error", "input": x} for i, x in enumerate(xs) if len(x) != n_inputs]
    if wrong:
        raise RequestValidationError(wrong)


def summary(job, experiment_names, pruned_ids):
    return JobSummary(id=job.id, name=job.name, experiment=experiment_names.get(job.experiment_id), tags=job.tags,
                      status=job.status, pruned=job.id in pruned_ids, created_at=job.created_at,
                      finished_at=job.finished_at,
                      final_loss=finite_or_none(job.final_loss), metrics=metrics_of(job))


def metrics_of(job):
    metrics = job.metrics and {k: finite_or_none(v) if k != "steps_done" else v
                               for k, v in job.metrics.items() if k in Metrics.model_fields}
    return None if metrics is None else Metrics(**metrics)


def detail(session, job):
    names = experiment_store.names_by_id(session, [job.experiment_id])
    return JobDetail(
        id=job.id, name=job.name, experiment=names.get(job.experiment_id), experiment_id=job.experiment_id,
        tags=job.tags, notes=job.notes, status=job.status, pruned=bool(sweep_store.pruned_job_ids(session, [job])),
        spec=JobSpec.model_validate(job.spec),
        progress=Progress(step=job.progress_step or 0, total=job.total_steps,
                          latest_loss=finite_or_none(job.latest_loss)),
        metrics=metrics_of(job),
        timings=Timings(queued_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
                        phases_ms=job.phase_seconds and {k: round(1000 * v, 3) for k, v in job.phase_seconds.items()}),
        attempts=job.attempts, error=job.error, cancel_requested=job.cancel_requested, sweep_id=job.sweep_id,
        graph=graph_state(job))


def graph_state(job) -> Optional[str]:
    """pending (queued, running, or succeeded and being drawn), ready, failed; None when none will come."""
    if not job.spec.get("record", {}).get("graph_svg", True) or job.status in ("failed", "cancelled"):
        return None
    if job.status in ("queued", "running"):
        return "pending"
    return job.graph_status
