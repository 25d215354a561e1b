"""Response and request bodies of the HTTP API (they make the OpenAPI schema exact)."""
import math
import uuid
from datetime import datetime
from typing import Annotated, Literal, Optional, Union

from fastapi import Body
from pydantic import BaseModel, ConfigDict, Field, WrapValidator

from core.spec import Finite, JobSpec

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _strictly(data, default_validation):
    """Strict types (no `false` for a number, no "5" for an integer); JobSpec itself is lax."""
    return JobSpec.model_validate(data, strict=True) if isinstance(data, dict) else default_validation(data)


SubmittedSpec = Annotated[JobSpec, WrapValidator(_strictly), Body()]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreated(Closed):
    id: uuid.UUID
    status: JobStatus


class JobSummary(Closed):
    id: uuid.UUID
    status: JobStatus
    created_at: datetime
    finished_at: Optional[datetime]
    final_loss: Optional[float] = Field(description="null until the job succeeds (or if not finite)")


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


class Metrics(Closed):
    final_loss: Optional[float] = None
    accuracy: Optional[float] = None
    val_loss: Optional[float] = None
    val_accuracy: Optional[float] = None
    steps_done: Optional[int] = None


class JobDetail(Closed):
    id: uuid.UUID
    status: JobStatus
    spec: JobSpec
    progress: Progress
    metrics: Optional[Metrics]
    timings: Timings
    attempts: int
    error: Optional[str]
    cancel_requested: bool


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


class PredictRequest(Closed):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    xs: list[list[Finite]] = Field(min_length=1, description="one list of inputs per sample")


class PredictResponse(Closed):
    ys: list[Union[float, list[float]]] = Field(
        description="one output per sample: a number for one output neuron, else a list")


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
