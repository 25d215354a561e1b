"""The workers table: each worker process beats its row; readers list the live ones."""
import uuid
from datetime import timedelta
from typing import Optional

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.store.models import Job, Worker, utcnow


def beat(session: Session, name: str, current_job_id) -> None:
    """current_job_id: a UUID, its text (a Celery task's argument, as the heartbeat thread passes it) or None."""
    now = utcnow()
    if current_job_id is not None and not isinstance(current_job_id, uuid.UUID):
        current_job_id = uuid.UUID(str(current_job_id))
    updated = session.execute(update(Worker).where(Worker.name == name)
                              .values(heartbeat_at=now, current_job_id=current_job_id)).rowcount
    if not updated:
        session.add(Worker(name=name, started_at=now, heartbeat_at=now, current_job_id=current_job_id))
    session.commit()


def forget(session: Session, name: Optional[str] = None, silent_for_seconds: Optional[float] = None) -> None:
    """Drops the row of worker `name` (it stops), or the rows of workers silent for `silent_for_seconds`."""
    if name is not None:
        session.execute(delete(Worker).where(Worker.name == name))
    if silent_for_seconds is not None:
        session.execute(delete(Worker).where(Worker.heartbeat_at < utcnow() - timedelta(seconds=silent_for_seconds)))
    session.commit()


def live_workers(session: Session, owner: str, stale_after: float) -> list[dict]:
    """Workers that beat within `stale_after` seconds, oldest first. A worker's current job is named only
    to its owner: others see that the worker is busy, not whose job it runs."""
    rows = session.execute(
        select(Worker.name, Worker.started_at, Worker.heartbeat_at, Worker.current_job_id, Job.owner)
        .outerjoin(Job, Job.id == Worker.current_job_id)
        .where(Worker.heartbeat_at >= utcnow() - timedelta(seconds=stale_after))
        .order_by(Worker.started_at, Worker.name)).all()
    session.commit()
    return [{"name": r.name, "started_at": r.started_at, "last_heartbeat": r.heartbeat_at,
             "busy": r.current_job_id is not None,
             "current_job": r.current_job_id if r.owner == owner else None} for r in rows]


def count_live(session: Session, stale_after: float) -> list:
    """(name, heartbeat_at) of the live workers, for /metrics."""
    rows = session.execute(select(Worker.name, Worker.heartbeat_at)
                           .where(Worker.heartbeat_at >= utcnow() - timedelta(seconds=stale_after))).all()
    session.commit()
    return rows
