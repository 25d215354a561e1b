"""Rate limits in a moving 60-second window, counted by the `limits` package: requests per owner
(RATE_LIMIT_PER_MINUTE) and failed authentications per client address (AUTH_FAILURES_PER_MINUTE).

Where the windows are kept (`window_storage`): when the service runs with a Redis broker (the compose
stack), in that Redis, so that every API process counts against one budget; otherwise (the embedded
default, one API process) in the process's memory. While Redis cannot be reached, each process counts in
its own memory again (a limit per process rather than none, or a refusal of every request), and asks
Redis again after REDIS_RETRY_SECONDS.

The memory windows are `WindowsInMemory`: `limits`' MemoryStorage drops expired entries on a threading.Timer
that it starts anew, 10 ms long, on every hit after the last one ran out, so under steady traffic (a request
every few ms or more) nearly every counted request started and ended a thread (5,000 in the API fuzz test's
5,400 requests). Here the same sweep runs inline, at most once per EXPIRY_SWEEP_SECONDS; the counts do not
depend on it (a moving window reads the entries' times), it only frees memory."""
import logging
import math
import threading
import time

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

REDIS_KEY_PREFIX = "mgs-limits"
REDIS_TIMEOUT_SECONDS = 0.5  # a request waits at most this long for an unreachable Redis, then counts locally
REDIS_RETRY_SECONDS = 5.0
EXPIRY_SWEEP_SECONDS = 1.0


class WindowsInMemory(MemoryStorage):
    """MemoryStorage that sweeps expired entries itself, on the hit that finds the last sweep over
    EXPIRY_SWEEP_SECONDS old, instead of on a new Timer thread (see the module's docstring)."""

    def __init__(self):
        super().__init__()  # starts the one Timer of its own; it ends after its one sweep
        self._next_sweep = time.monotonic() + EXPIRY_SWEEP_SECONDS
        self._sweep_lock = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces MemoryStorage's (name-mangled) private method
        if time.monotonic() < self._next_sweep or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._next_sweep = time.monotonic() + EXPIRY_SWEEP_SECONDS
            self._MemoryStorage__expire_events()
        finally:
            self._sweep_lock.release()


def window_storage(broker_url: str) -> Storage:
    """The broker's Redis when it is one, else this process's memory (see the module's docstring)."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisStorage(broker_url, key_prefix=REDIS_KEY_PREFIX, wrap_exceptions=True,
                            socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    return WindowsInMemory()


class MovingWindow:
    """At most `per_minute` counted hits per key in any 60 s (0: no limit); `name` keeps this limit's keys
    apart from another's in a shared storage."""

    def __init__(self, per_minute: int, storage: Storage, name: str):
        self.item = RateLimitItemPerMinute(per_minute) if per_minute else None
        self.name = name
        self.shared = MovingWindowRateLimiter(storage)
        self.local = self.shared if isinstance(storage, MemoryStorage) else MovingWindowRateLimiter(WindowsInMemory())
        self._shared_down_until = 0.0

    @property
    def uses_the_network(self) -> bool:
        """Whether hit() and wait() may ask Redis (and wait for it): a caller on an event loop runs them on a
        thread then, and in its own thread where they only count in memory."""
        return self.item is not None and self.local is not self.shared

    def hit(self, key: str) -> int:
        """Counts one hit if there is room: 0; else, counting nothing, the seconds until there is (>= 1)."""
        if self.item is None or self._ask("hit", key):
            return 0
        return self._retry_after(key)

    def wait(self, key: str) -> int:
        """Counts nothing: 0 if there is room for one more hit, else the seconds until there is (>= 1)."""
        if self.item is None or self._ask("test", key):
            return 0
        return self._retry_after(key)

    def _retry_after(self, key: str) -> int:
        """Seconds until the oldest counted hit leaves the window."""
        reset_at = self._ask("get_window_stats", key).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _ask(self, method: str, key: str):
        if self.local is not self.shared and time.monotonic() >= self._shared_down_until:
            try:
                return getattr(self.shared, method)(self.item, self.name, key)
            except StorageError as e:
                self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning("rate limits: Redis unreachable (%s); counting in this process for %g s",
                            type(e.storage_error).__name__, REDIS_RETRY_SECONDS)
        return getattr(self.local, method)(self.item, self.name, key)
