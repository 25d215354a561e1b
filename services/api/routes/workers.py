"""/workers: the live worker processes, from the workers table they beat into."""
from fastapi import APIRouter

from services.api.deps import API_DEPENDENCIES, OwnerDep, SessionDep, SettingsDep
from services.api.routes.jobs import errors
from services.api.routing import ReleaseSessionRoute
from services.api.schemas import WorkerOut
from services.store import workers as worker_store

router = APIRouter(prefix="/workers", tags=["workers"], responses=errors(401, 429), route_class=ReleaseSessionRoute,
                   dependencies=API_DEPENDENCIES)


@router.get("", response_model=list[WorkerOut])
def list_workers(session: SessionDep, owner: OwnerDep, settings: SettingsDep):
    """Workers that beat within STALE_AFTER_SECONDS, oldest first. Any key holder sees every worker and
    whether it is busy; `current_job` is named only to the owner of that job (as of the worker's last beat,
    every HEARTBEAT_SECONDS)."""
    return worker_store.live_workers(session, owner, settings.STALE_AFTER_SECONDS)
