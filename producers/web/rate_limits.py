"""Requests per second per API key, shared by every ``omvant serve`` process through Redis
when ``OMVANT_REDIS_URL`` is set (each process its own budget otherwise).

dramatiq's ``WindowRateLimiter`` counts the calls in the current second of the clock; a key
over its budget is answered 429 with ``Retry-After: 1`` rather than made to wait. The clock is
given (``time.time`` unless a test gives its own), so which second a call counts in is decided
by the caller, not by how fast the machine is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

COUNTER_TTL_MS = 10_000
"""How long a second's counter is kept. Each second has its own counter, so keeping one longer
than its second changes no count; it only spares a caller whose clock is not the machine's."""


class _ClockedWindow(WindowRateLimiter):
    """dramatiq's one-second window, its second read from ``clock`` (dramatiq reads
    ``time.time()`` in ``_get_keys``; the key is its ``key@second``)."""

    def __init__(self, backend: Any, key: str, *, limit: int, clock: Callable[[], float]) -> None:
        super().__init__(backend, key, limit=limit, window=1)  # type: ignore[no-untyped-call]
        self.clock = clock

    def _get_keys(self) -> list[str]:
        return [f"{self.key}@{int(self.clock())}"]

    def _acquire(self) -> bool:
        keys = self._get_keys()
        return bool(
            self.backend.incr_and_sum(
                keys[0], self._get_keys, 1, maximum=self.limit, ttl=COUNTER_TTL_MS
            )
        )


class KeyRateLimits:
    """One window limiter per key and rate, on one backend."""

    def __init__(
        self, redis_url: str | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        if redis_url:
            import redis

            self.backend: Any = RedisBackend(client=redis.Redis.from_url(redis_url))
        else:
            self.backend = StubBackend()  # type: ignore[no-untyped-call]
        self.clock = clock
        self._limiters: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def allow(self, key_id: str, per_second: int) -> bool:
        """Whether ``key_id`` may make one more request this second."""
        with self._lock:
            limiter = self._limiters.get((key_id, per_second))
            if limiter is None:
                limiter = _ClockedWindow(
                    self.backend, f"omvant-api:{key_id}", limit=per_second, clock=self.clock
                )
                self._limiters[(key_id, per_second)] = limiter
        with limiter.acquire(raise_on_failure=False) as acquired:
            return bool(acquired)
