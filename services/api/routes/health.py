"""Liveness (the process answers) and readiness (the database and the broker answer)."""
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services import queue
from services.api.deps import API_DEPENDENCIES
from services.api.schemas import Health, Readiness
from services.redact import mask_passwords
from services.store import db

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"], dependencies=API_DEPENDENCIES)


@router.get("/healthz", response_model=Health)
def healthz():
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz():
    database, broker = probe(db.check_database), probe(queue.check_broker)
    ready = database == "ok" and broker == "ok"
    body = Readiness(status="ready" if ready else "unavailable", database=database, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def probe(check):
    try:
        check()
        return "ok"
    except Exception as e:  # the answer says only which part is down; the log says why (no password)
        log.warning("readiness check %s failed: %s: %s", check.__qualname__, type(e).__name__, mask_passwords(e))
        return "down"
