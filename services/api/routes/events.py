"""GET /jobs/{id}/events: a job's progress as Server-Sent Events, for pages that follow a run live.

Each `progress` event carries the loss points written since the last one and the job's status; its
id is the last step sent, so a client that reconnects with `Last-Event-ID` misses nothing and gets
nothing twice. An `end` event follows the job's final status and the stream closes. The route
polls the store from a worker thread (the event loop only waits), and a stream lives at most
EVENTS_MAX_SECONDS: the client reconnects with its Last-Event-ID, as EventSource does by itself."""
import time
import uuid
from typing import Annotated, Optional

import anyio
from fastapi import APIRouter, Depends, Header
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.api.deps import API_DEPENDENCIES, OwnerDep, SessionDep, SettingsDep
from services.api.points_json import with_points
from services.api.routes.jobs import find_job, headers
from services.api.routing import ReleaseSessionRoute
from services.api.schemas import finite_or_none
from services.store import db, jobs as job_store
from services.store.history import EMPTY
from services.store.jobs import STEP_LIMIT

FINAL = ("succeeded", "failed", "cancelled")
MAX_POINTS_PER_EVENT = 2000
RETRY_MS = 1000



def json_errors(*codes):
    """Error responses are JSON even though this route's own media type is text/event-stream."""
    return {code: {"description": "error", "headers": headers(code),
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}}
            for code in codes}


router = APIRouter(prefix="/jobs", tags=["jobs"], responses=json_errors(401, 429), route_class=ReleaseSessionRoute,
                   dependencies=API_DEPENDENCIES)


def owned_job_id(job_id: uuid.UUID, session: SessionDep, owner: OwnerDep) -> uuid.UUID:
    """404 before the stream starts; the request's session is released at once (a stream is long)."""
    find_job(session, job_id, owner)
    session.close()
    return job_id


def read_progress(job_id, after_step):
    """(status, progress, points after `after_step`), in one short transaction of its own."""
    with db.session_scope() as session:
        job = job_store.get_job(session, job_id)
        if job is None:  # deleted meanwhile
            return "cancelled", None, EMPTY
        status = job.status
        progress = {"step": job.progress_step or 0, "total": job.total_steps,
                    "latest_loss": finite_or_none(job.latest_loss)}
        start = after_step + 1
        points = job_store.get_loss_points(session, job_id, start=start,
                                           end=min(start + MAX_POINTS_PER_EVENT - 1, STEP_LIMIT))
    return status, progress, points


@router.get("/{job_id}/events", response_class=EventSourceResponse, responses={
    **json_errors(404), 200: {"description": "`progress` events (data: status, progress, points; id: the last step "
                                        "sent) until an `end` event after the job's final status"}})
async def job_events(job_id: Annotated[uuid.UUID, Depends(owned_job_id)], settings: SettingsDep,
                     last_event_id: Annotated[Optional[int], Header(
                         ge=-1, le=STEP_LIMIT, description="the id of the last event received: "
                                                           "resume after that step")] = None):
    last_step = -1 if last_event_id is None else last_event_id
    deadline = time.monotonic() + settings.EVENTS_MAX_SECONDS
    sent = None
    yield ServerSentEvent(comment="stream open", retry=RETRY_MS)
    while True:
        status, progress, points = await anyio.to_thread.run_sync(read_progress, job_id, last_step)
        if points:
            last_step = int(points.steps[-1])
        final = status in FINAL and len(points) < MAX_POINTS_PER_EVENT
        # JSON made from the points' columns (points_json: one line, compact, no object per point), not by
        # FastAPI's encoder walking every point.
        data = with_points({"status": status, "progress": progress}, points).decode()
        if final:
            yield ServerSentEvent(event="end", id=str(last_step), raw_data=data)
            return
        if points or (status, progress) != sent:
            yield ServerSentEvent(event="progress", id=str(last_step), raw_data=data)
            sent = (status, progress)
        if len(points) < MAX_POINTS_PER_EVENT:
            if time.monotonic() >= deadline:
                return  # the client reconnects with Last-Event-ID
            await anyio.sleep(settings.EVENTS_POLL_SECONDS)
