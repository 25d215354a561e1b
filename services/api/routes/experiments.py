"""/experiments: named groups of one owner's jobs."""
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Response

from services.api.deps import API_DEPENDENCIES, OwnerDep, SessionDep
from services.api.routes.jobs import errors, headers
from services.api.routing import ReleaseSessionRoute
from services.api.schemas import ExperimentCreate, ExperimentList, ExperimentOut
from services.store import experiments as experiment_store

router = APIRouter(prefix="/experiments", tags=["experiments"], responses=errors(401, 429),
                   route_class=ReleaseSessionRoute,
                   dependencies=API_DEPENDENCIES)
ExperimentId = Annotated[uuid.UUID, "the experiment's id"]


def out(experiment, jobs):
    return ExperimentOut(id=experiment.id, name=experiment.name, description=experiment.description,
                         created_at=experiment.created_at, jobs=jobs)


def find_experiment(session, experiment_id, owner):
    experiment = experiment_store.get_experiment(session, experiment_id, owner)
    if experiment is None:
        raise HTTPException(404, f"no experiment {experiment_id}")
    return experiment


@router.post("", status_code=201, response_model=ExperimentOut,
             responses={201: {"headers": headers(201)}, **errors(400, 409, 413)})
def create_experiment(body: ExperimentCreate, response: Response, session: SessionDep, owner: OwnerDep):
    try:
        experiment = experiment_store.create_experiment(session, owner, body.name, body.description)
    except experiment_store.NameTaken as e:
        raise HTTPException(409, str(e))
    response.headers["Location"] = f"/experiments/{experiment.id}"
    return out(experiment, 0)


@router.get("", response_model=ExperimentList)
def list_experiments(session: SessionDep, owner: OwnerDep):
    return ExperimentList(items=[out(e, n) for e, n in experiment_store.list_experiments(session, owner)])


@router.get("/{experiment_id}", response_model=ExperimentOut, responses=errors(404))
def get_experiment(experiment_id: ExperimentId, session: SessionDep, owner: OwnerDep):
    experiment = find_experiment(session, experiment_id, owner)
    return out(experiment, len(experiment_store.job_ids(session, experiment.id)))


@router.delete("/{experiment_id}", status_code=204, response_class=Response, responses=errors(404))
def delete_experiment(experiment_id: ExperimentId, session: SessionDep, owner: OwnerDep):
    """Deletes the experiment AND its jobs with their history and artifacts (running ones are cancelled
    first). Final: nothing can be restored. To keep the jobs, do not delete their experiment."""
    find_experiment(session, experiment_id, owner)
    experiment_store.delete_experiment(session, experiment_id)
