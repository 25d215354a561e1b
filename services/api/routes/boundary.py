"""GET /jobs/{id}/boundary: the trained model's class over a grid covering a 2-D dataset, with the
dataset's points, for the page to draw (the micrograd demo's decision-boundary picture)."""
import json
import math
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from core.data import generate
from core.predict import Forward
from core.spec import JobSpec
from services.api.deps import API_DEPENDENCIES, OwnerDep, SessionDep, SettingsDep
from services.api.limits import FORWARD_NODES_PER_PARAMETER
from services.api.routes.jobs import errors, find_job, parameter_count
from services.api.routing import ReleaseSessionRoute
from services.api.schemas import Boundary
from services.store import jobs as job_store

PLANE_DATASETS = ("moons", "circles", "xor", "spirals", "blobs")
MARGIN = 0.1  # of the data's extent, on each side

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=errors(401, 429), route_class=ReleaseSessionRoute,
                   dependencies=API_DEPENDENCIES)


@router.get("/{job_id}/boundary", response_model=Boundary, responses=errors(404, 409, 503))
def get_boundary(job_id: uuid.UUID, request: Request, session: SessionDep, owner: OwnerDep, settings: SettingsDep,
                 size: Annotated[int, Query(ge=2, le=200, description="grid cells per side (capped by the "
                                                                      "server's budget)")] = 60):
    """A plain (sync) route: FastAPI runs it in a worker thread, so the forward pass never blocks the event loop.
    The grid is shrunk until it builds no bigger a graph than one training step may (MAX_NODES_PER_STEP), and
    it runs as predict does: core.predict's arrays, within the inference slots, with the cached model."""
    job = find_job(session, job_id, owner)
    data = job.spec.get("data", {})
    if data.get("kind") not in PLANE_DATASETS:
        raise HTTPException(404, f"job {job_id} has no decision boundary: its data is not a 2-D dataset "
                                 f"({', '.join(PLANE_DATASETS)})")
    if job.status != "succeeded":
        raise HTTPException(409, f"job {job_id} is {job.status}; the boundary needs a succeeded job")
    spec = JobSpec.model_validate(job.spec)
    n_parameters = parameter_count([spec.input_count()] + spec.model.layers)
    size = min(size, settings.BOUNDARY_MAX_GRID,
               math.isqrt(settings.MAX_NODES_PER_STEP // (FORWARD_NODES_PER_PARAMETER * n_parameters)))
    xs, labels = generate(data["kind"], spec.data.n_samples, spec.data.noise, spec.seed, spec.data.classes)
    x_range, y_range = extent([x for x, _ in xs]), extent([y for _, y in xs])
    grid_x, grid_y = axis(x_range, size), axis(y_range, size)
    session.commit()  # no transaction held through the inference
    with request.app.state.inference_slots.take(owner):
        model = request.app.state.models.get(job_id, lambda: Forward(
            json.loads(job_store.get_artifact(session, job_id, "params"))))
        try:
            outputs = model([[x, y] for y in grid_y for x in grid_x])
        except (OverflowError, ValueError):
            raise HTTPException(409, f"job {job_id}'s model overflows on this grid") from None
    classes = [predicted_class(out) for out in outputs]
    return Boundary(job_id=job.id, size=size, x=grid_x, y=grid_y,
                    classes=[classes[row * size:(row + 1) * size] for row in range(size)],
                    points=[[x, y] for x, y in xs], labels=[int(label) for label in labels])


def predicted_class(output):
    """Several outputs: the largest (softmax_ce, one-hot sse); one output: its sign (targets ±1, bce logits)."""
    if isinstance(output, list):
        return max(range(len(output)), key=lambda i: output[i] if math.isfinite(output[i]) else -math.inf)
    return int(output > 0)


def extent(values):
    low, high = min(values), max(values)
    pad = (high - low) * MARGIN or 1.0
    return low - pad, high + pad


def axis(bounds, size):
    low, high = bounds
    return [low + (high - low) * (i + 0.5) / size for i in range(size)]
