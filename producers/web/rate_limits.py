"""Requests per second per API key, shared by every ``omvant serve`` process through Redis
when ``OMVANT_REDIS_URL`` is set (each process its own budget otherwise).

dramatiq's ``WindowRateLimiter`` counts the calls in the current second of the clock; a key
over its budget is answered 429 with ``Retry-After: 1`` rather than made to wait.
"""

from __future__ import annotations

import threading
from typing import Any

from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend, StubBackend


class KeyRateLimits:
    """One window limiter per key and rate, on one backend."""

    def __init__(self, redis_url: str | None = None) -> None:
        if redis_url:
            import redis

            self.backend: Any = RedisBackend(client=redis.Redis.from_url(redis_url))
        else:
            self.backend = StubBackend()  # type: ignore[no-untyped-call]
        self._limiters: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def allow(self, key_id: str, per_second: int) -> bool:
        """Whether ``key_id`` may make one more request this second."""
        with self._lock:
            limiter = self._limiters.get((key_id, per_second))
            if limiter is None:
                limiter = WindowRateLimiter(  # type: ignore[no-untyped-call]
                    self.backend, f"omvant-api:{key_id}", limit=per_second, window=1
                )
                self._limiters[(key_id, per_second)] = limiter
        with limiter.acquire(raise_on_failure=False) as acquired:
            return bool(acquired)
