"""A background thread that tells the job table this run is alive, however long a step takes."""
import logging
import threading

from sqlalchemy.exc import InterfaceError, OperationalError

from services.store import jobs
from services.store.db import session_scope

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, job_id, token: str, every_seconds: float):
        self.job_id, self.token, self.every_seconds = job_id, token, every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _beat(self):
        while not self._stop.wait(self.every_seconds):
            try:
                with session_scope() as session:
                    if not jobs.heartbeat(session, self.job_id, self.token):
                        return  # superseded or finished: the run's next write finds out and stops
            except (OperationalError, InterfaceError):
                log.warning("heartbeat for job %s failed; retrying", self.job_id, exc_info=True)
