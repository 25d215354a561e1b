"""What keeps `predict` from stalling the API: a bound on inferences in flight (in all and per
owner; a request over it is refused at once with Retry-After, never queued on the API's threads)
and a memory-bounded cache of loaded models by job id (a succeeded job's parameters never change)."""
import threading
from collections import OrderedDict, defaultdict
from contextlib import contextmanager

from fastapi import HTTPException

RETRY_AFTER_SECONDS = 1


class InferenceSlots:
    def __init__(self, total: int, per_owner: int):
        self.total, self.per_owner = total, per_owner
        self._lock = threading.Lock()
        self._in_flight = 0
        self._by_owner = defaultdict(int)

    @contextmanager
    def take(self, owner: str):
        """A slot for one inference; 429 when this owner has per_owner in flight, 503 when all are busy."""
        with self._lock:
            if self._by_owner[owner] >= self.per_owner:
                raise HTTPException(429, f"{self.per_owner} predictions of yours are running; retry when one "
                                         f"ends", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            if self._in_flight >= self.total:
                raise HTTPException(503, "the server is busy with other predictions; retry shortly",
                                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            self._in_flight += 1
            self._by_owner[owner] += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._by_owner[owner] -= 1
                if not self._by_owner[owner]:
                    del self._by_owner[owner]


class ModelCache:
    """Least recently used first out, holding at most max_bytes of weights (a model bigger than that
    is used once and not kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._models = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, job_id, load):
        """The model of job_id, from the cache or from load() (which must return an object with .nbytes)."""
        key = str(job_id)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load()
        with self._lock:
            if key not in self._models and model.nbytes <= self.max_bytes:
                self._models[key] = model
                self._bytes += model.nbytes
                while self._bytes > self.max_bytes:
                    _, evicted = self._models.popitem(last=False)
                    self._bytes -= evicted.nbytes
        return model

    def __len__(self):
        return len(self._models)
