"""The press rate limit: a minimum interval per button and a token bucket over all buttons."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class RateLimiter:
    """Per-button minimum interval plus a token bucket over all buttons (``burst``, refilled per minute)."""

    KEYS = 256  # keys remembered before the expired ones are dropped

    def __init__(self, *, interval_s: float, burst: int, per_minute: float, clock: Callable[[], float]):
        self.interval_s = interval_s
        self.burst = burst
        self.rate = per_minute / 60.0
        self.clock = clock
        self.tokens = float(burst)
        self._stamp = clock()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            last = self._last.get(key)
            if len(self._last) >= self.KEYS:  # keys of check-in codes come and go: forget those that expired
                self._last = {k: t for k, t in self._last.items() if now - t < self.interval_s}
            self._last[key] = now  # a held-down hammering keeps extending the pause
            if last is not None and now - last < self.interval_s:
                return False
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True
