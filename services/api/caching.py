"""HTTP revalidation of what cannot change any more: a finished job's loss history.

A job in a final status has its whole history written (only the run that owns a job writes it, and a finished
job has none), and a re-run is a new job, so GET /jobs/{id}/loss of a finished job answers the same bytes to the
same query for as long as the job exists. Such answers carry an ETag and `Cache-Control: private, no-cache`: a
client keeps the body and asks again with If-None-Match, and gets 304 with no body, the history neither read
nor encoded (the job is still looked up first: its owner, and a deleted job's 404). A browser does this by
itself. A running job's answer carries neither header (it grows)."""
import hashlib
from typing import Optional

from services.store.models import FINAL_STATUSES

# Part of every ETag: change it when the body a query gives changes (its format), so no client keeps an old one.
BODY_VERSION = "1"
REVALIDATE = "private, no-cache"


def final_etag(job, *query) -> Optional[str]:
    """The ETag of a finished job's answer to `query` (the parameters that shape the body); None while the job
    can still change."""
    if job.status not in FINAL_STATUSES:
        return None
    finished = job.finished_at.isoformat() if job.finished_at else ""
    key = "|".join(map(str, (BODY_VERSION, job.id, job.status, finished, *query)))
    return f'"{hashlib.sha256(key.encode()).hexdigest()[:32]}"'


def matches(if_none_match: Optional[str], etag: Optional[str]) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 asks for If-None-Match)."""
    if etag is None or if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)
