"""Per-owner request rate limit: a sliding window over the last 60 seconds.

It lives in this process's memory, which is exact for one API process; with
several API processes each one enforces the limit on its own share."""
import math
import threading
import time
from collections import defaultdict, deque

WINDOW_SECONDS = 60.0


class SlidingWindowLimiter:
    def __init__(self, per_minute, clock=time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._hits = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, owner):
        """Count one request; return 0 if allowed, else the seconds to wait (>= 1)."""
        if not self.per_minute:
            return 0
        now = self.clock()
        with self._lock:
            hits = self._hits[owner]
            while hits and hits[0] <= now - WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(1, math.ceil(hits[0] + WINDOW_SECONDS - now))
            hits.append(now)
            return 0
