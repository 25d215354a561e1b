"""Response and request bodies of the HTTP API (they make the OpenAPI schema exact)."""
import math
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Optional, Union

from fastapi import Body
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WrapValidator

from core.spec import Finite, JobSpec
from core.sweep_spec import SweepSpec

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _strictly_as(model):
    """Strict types (no `false` for a number, no "5" for an integer); the models themselves are lax."""
    def validate(data, default_validation):
        return model.model_validate(data, strict=True) if isinstance(data, dict) else default_validation(data)
    return validate


_strictly = _strictly_as(JobSpec)
StrictSpec = Annotated[JobSpec, WrapValidator(_strictly)]

MAX_TAGS = 20
# No control characters in names and tags (and no NUL anywhere: PostgreSQL text cannot hold it).
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
TAG_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=f"^{TAG_KEY.pattern}$")]
TagValue = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=MAX_TAGS,
                                               description=f"key: value labels, at most {MAX_TAGS}")]
Notes = Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")]
Description = Annotated[str, StringConstraints(max_length=2_000, pattern=r"^[^\x00]*$")]
SubmittedSweep = Annotated[SweepSpec, WrapValidator(_strictly_as(SweepSpec)), Body()]
SweepStatus = Literal["running", "finished", "cancelled"]
TrialStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "pruned"]
# A job's `status` is the stored one, which has no "pruned": a trial that early stopping stopped ends
# cancelled. Listings say which trials those were, so that every view can show them as pruned.
Pruned = Annotated[bool, Field(description=(
    "true when the job is a sweep trial that the sweep's early stopping pruned; `status` stays the job's own "
    "(cancelled once its worker has stopped it). The dashboard and `mgs` show such a job as pruned, as the "
    "sweep's leaderboard does"))]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobSubmission(Closed):
    """A spec with run metadata beside it. (A body without a top-level `spec` key is a bare spec.)"""
    spec: StrictSpec
    name: Optional[Name] = Field(None, description="default: the data kind and the start of the id, e.g. moons-a3f2")
    experiment: Optional[Name] = Field(None, description="the experiment's name; made on first use")
    tags: Tags = Field(default_factory=dict)
    notes: Notes = ""


def _bare_or_wrapped(data, default_validation):
    """Route on the top-level `spec` key (JobSpec has no such field), so errors name the real field."""
    if isinstance(data, dict) and "spec" in data:
        return JobSubmission.model_validate(data)
    return _strictly(data, default_validation) if isinstance(data, dict) else default_validation(data)


Submission = Annotated[Union[JobSpec, JobSubmission], WrapValidator(_bare_or_wrapped),
                       Body(description="a bare spec, or {spec, name, experiment, tags, notes}")]


class JobPatch(Closed):
    """Only the fields sent change; tags are replaced whole."""
    name: Name = None
    tags: Tags = None
    notes: Notes = None


class RerunRequest(Closed):
    """Everything optional: by default the same spec and seed (the same history, bit for bit), in the same
    experiment with the same tags."""
    seed: Optional[Annotated[int, Field(ge=0, le=2**63 - 1)]] = Field(None, description="a new seed")
    spec_patch: Optional[dict[str, Any]] = Field(
        None, description="merged into the spec (objects merge key by key, other values replace), e.g. "
                          '{"optimizer": {"lr": 0.05}}; the result is validated as a spec')
    name: Optional[Name] = None
    experiment: Optional[Name] = None
    tags: Optional[Tags] = None
    notes: Optional[Notes] = None


class ExperimentCreate(Closed):
    name: Name
    description: Optional[Description] = None


class ExperimentOut(Closed):
    id: uuid.UUID
    name: str
    description: Optional[str]
    created_at: datetime
    jobs: int = Field(description="how many jobs it holds")


class ExperimentList(Closed):
    items: list[ExperimentOut]


class Metrics(Closed):
    final_loss: Optional[float] = None
    accuracy: Optional[float] = None
    val_loss: Optional[float] = None
    val_accuracy: Optional[float] = None
    steps_done: Optional[int] = None


class JobCreated(Closed):
    id: uuid.UUID
    name: str
    status: JobStatus


class JobSummary(Closed):
    id: uuid.UUID
    name: str
    experiment: Optional[str]
    tags: dict[str, str]
    status: JobStatus
    pruned: Pruned
    created_at: datetime
    finished_at: Optional[datetime]
    final_loss: Optional[float] = Field(description="null until the job succeeds (or if not finite)")
    metrics: Optional[Metrics]


class JobList(Closed):
    items: list[JobSummary]
    next_cursor: Optional[str] = Field(description="pass as ?cursor= for the next page; null on the last page")


class Progress(Closed):
    step: int = Field(description="steps done so far")
    total: int = Field(description="steps the spec asks for")
    latest_loss: Optional[float]


class Timings(Closed):
    queued_at: datetime
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    phases_ms: Optional[dict[str, float]] = Field(
        None, description="milliseconds per phase of the run that ended the job: queue_wait, claim, data, "
                          "compile, steps, final_metrics, graph (when asked for), save")


class JobDetail(Closed):
    id: uuid.UUID
    name: str
    experiment: Optional[str]
    experiment_id: Optional[uuid.UUID]
    tags: dict[str, str]
    notes: str
    status: JobStatus
    pruned: Pruned
    spec: JobSpec
    progress: Progress
    metrics: Optional[Metrics]
    timings: Timings
    attempts: int
    error: Optional[str]
    cancel_requested: bool
    sweep_id: Optional[uuid.UUID] = Field(None, description="the sweep this job is a trial of")
    graph: Optional[Literal["pending", "ready", "failed"]] = Field(
        None, description="the computation graph (GET /jobs/{id}/graph.svg): pending while the job is queued or "
                          "running and while, having succeeded, its graph is drawn (results are saved first); "
                          "ready; failed (graph.svg says why); null when none was asked for or the job did not "
                          "succeed")


class LossPointOut(Closed):
    step: int
    loss: Optional[float] = Field(description="null where the loss was not finite")
    accuracy: Optional[float]
    lr: Optional[float]


class LossHistory(Closed):
    job_id: uuid.UUID
    status: JobStatus
    total_points: int = Field(description="points in the requested step range before downsampling")
    points: list[LossPointOut]


class ComparedRun(Closed):
    id: uuid.UUID
    name: str
    status: JobStatus
    pruned: Pruned
    experiment: Optional[str]
    tags: dict[str, str]
    metrics: Optional[Metrics]
    loss: list[Optional[float]] = Field(description="the loss at each of `steps`; null where none was recorded")


class Comparison(Closed):
    runs: list[ComparedRun] = Field(description="in the order the ids were given")
    differences: dict[str, list[Any]] = Field(
        description="dotted spec path -> each run's value, for the paths whose values differ")
    steps: list[int] = Field(description="the common step grid of the runs' `loss`")


class WorkerOut(Closed):
    name: str = Field(description="host:pid of the worker process")
    started_at: datetime
    last_heartbeat: datetime
    busy: bool
    current_job: Optional[uuid.UUID] = Field(description="the job it runs, if it is yours")


class PredictRequest(Closed):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    xs: list[list[Finite]] = Field(min_length=1, description="one list of inputs per sample")


class PredictResponse(Closed):
    ys: list[Union[float, list[float]]] = Field(
        description="one output per sample: a number for one output neuron, else a list")


class TrialOut(Closed):
    number: int = Field(description="0, 1, ... in the order the search asked for them")
    job_id: Optional[uuid.UUID] = Field(description="the trial's job (null if it was deleted)")
    status: TrialStatus = Field(description="the job's status, or pruned when early stopping ended it")
    pruned: bool
    params: dict[str, Any] = Field(description="dotted spec path -> the value this trial used")
    objective: Optional[float] = Field(description="the objective metric; null until the trial succeeds")
    metrics: Optional[Metrics]
    steps_done: int


class SweepCounts(Closed):
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    pruned: int


class SweepSummary(Closed):
    id: uuid.UUID
    status: SweepStatus = Field(description="running until every trial has ended (finished) or it is cancelled")
    created_at: datetime
    finished_at: Optional[datetime]
    method: Literal["grid", "random", "tpe"]
    objective: str
    direction: Literal["minimize", "maximize"]
    trials: int = Field(description="trials in all")
    trials_created: int = Field(description="trials asked for so far")
    best_objective: Optional[float]


class SweepList(Closed):
    items: list[SweepSummary]
    next_cursor: Optional[str] = Field(description="pass as ?cursor= for the next page; null on the last page")


class SweepDetail(SweepSummary):
    sweep: SweepSpec = Field(description="the sweep as submitted, with defaults filled in")
    counts: SweepCounts
    best: Optional[TrialOut] = Field(description="the succeeded trial with the best objective")
    leaderboard: list[TrialOut] = Field(description="succeeded trials best first, then the others by number")


class Health(Closed):
    status: Literal["ok"]


class Readiness(Closed):
    status: Literal["ready", "unavailable"]
    database: str
    broker: str


class ErrorDetail(Closed):
    detail: str


def finite_or_none(x):
    """JSON has no NaN or infinity; a diverged value is reported as null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class Boundary(Closed):
    job_id: uuid.UUID
    size: int = Field(description="cells per side (the request's size, capped by the server's budget)")
    x: list[float] = Field(description="the cells' centres along the first input, ascending")
    y: list[float] = Field(description="the cells' centres along the second input, ascending")
    classes: list[list[int]] = Field(description="classes[row][col]: the predicted class at (x[col], y[row])")
    points: list[list[float]] = Field(description="the dataset's samples, [x, y] each")
    labels: list[int] = Field(description="each sample's class")
