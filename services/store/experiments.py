"""The one module that reads and writes experiments (named groups of one owner's jobs)."""
import uuid
from typing import Optional

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.store import jobs as job_store
from services.store.models import Experiment, Job


class NameTaken(Exception):
    """The owner already has an experiment of that name."""


def create_experiment(session: Session, owner: str, name: str, description: Optional[str] = None) -> Experiment:
    experiment = Experiment(owner=owner, name=name, description=description)
    session.add(experiment)
    try:
        session.commit()
    except IntegrityError as e:
        session.rollback()
        raise NameTaken(f"an experiment named {name!r} already exists") from e
    return experiment


def get_experiment(session: Session, experiment_id, owner: str) -> Optional[Experiment]:
    experiment = session.get(Experiment, _as_uuid(experiment_id), populate_existing=True)
    session.commit()
    return experiment if experiment is not None and experiment.owner == owner else None


def find_experiment(session: Session, owner: str, name: str) -> Optional[Experiment]:
    experiment = session.scalar(select(Experiment).where(Experiment.owner == owner, Experiment.name == name))
    session.commit()
    return experiment


def experiment_named(session: Session, owner: str, name: str) -> Experiment:
    """The owner's experiment of that name, made on first use (as MLflow's set_experiment does)."""
    experiment = find_experiment(session, owner, name)
    if experiment is not None:
        return experiment
    try:
        return create_experiment(session, owner, name)
    except NameTaken:  # made by a concurrent submission a moment ago
        return find_experiment(session, owner, name)


def list_experiments(session: Session, owner: str) -> list[tuple[Experiment, int]]:
    """The owner's experiments, oldest first, each with its number of jobs."""
    counts = (select(Job.experiment_id, func.count().label("jobs")).where(Job.owner == owner)
              .group_by(Job.experiment_id).subquery())
    rows = session.execute(
        select(Experiment, func.coalesce(counts.c.jobs, 0))
        .outerjoin(counts, counts.c.experiment_id == Experiment.id)
        .where(Experiment.owner == owner).order_by(Experiment.created_at, Experiment.id)).all()
    session.commit()
    return [(experiment, count) for experiment, count in rows]


def names_by_id(session: Session, experiment_ids) -> dict[uuid.UUID, str]:
    ids = {i for i in experiment_ids if i is not None}
    if not ids:
        return {}
    rows = session.execute(select(Experiment.id, Experiment.name).where(Experiment.id.in_(ids))).all()
    session.commit()
    return dict(rows)


def job_ids(session: Session, experiment_id) -> list[uuid.UUID]:
    ids = list(session.scalars(select(Job.id).where(Job.experiment_id == _as_uuid(experiment_id))))
    session.commit()
    return ids


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def delete_experiment(session: Session, experiment_id) -> None:
    """The experiment and all its jobs (history and artifacts too), in one transaction."""
    experiment_id = _as_uuid(experiment_id)
    job_store.delete_jobs(session, list(session.scalars(select(Job.id).where(Job.experiment_id == experiment_id))))
    session.execute(delete(Experiment).where(Experiment.id == experiment_id))
    session.commit()
