"""A blocking rate limit on calls to an outside system, shared through Redis when configured.

Built on dramatiq's ``WindowRateLimiter`` (at most ``per_second`` calls in any one second of
the clock), with its Redis backend so that every worker process draws on one budget, or its
in-process backend for the embedded setup. dramatiq's limiter only says yes or no; this waits
for a yes, up to ``max_wait`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend, StubBackend


class RateLimitExceeded(RuntimeError):
    """No call was allowed within the longest wait; the caller treats it as transient."""


class RateLimiter:
    """At most ``per_second`` calls per second on ``key``, across every process on ``backend``.

    Parameters
    ----------
    backend
        A dramatiq rate-limiter backend: ``RedisBackend`` (shared) or ``StubBackend`` (local).
    key
        What is limited (one budget per key).
    per_second
        Calls allowed in one second.
    max_wait
        Longest time ``acquire`` waits before raising ``RateLimitExceeded``.
    """

    def __init__(
        self,
        backend: Any,
        key: str,
        *,
        per_second: int,
        max_wait: float = 10.0,
        poll: float = 0.01,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.per_second = max(1, per_second)
        self.max_wait = max_wait
        self._poll = poll
        self._sleep = sleep
        self._limiter = WindowRateLimiter(  # type: ignore[no-untyped-call]
            backend, key, limit=self.per_second, window=1
        )

    def acquire(self) -> None:
        """Wait until one more call is allowed.

        Raises
        ------
        RateLimitExceeded
            No call was allowed within ``max_wait`` seconds.
        """
        deadline = time.monotonic() + self.max_wait
        while True:
            with self._limiter.acquire(raise_on_failure=False) as acquired:
                if acquired:
                    return
            if time.monotonic() >= deadline:
                raise RateLimitExceeded(
                    f"{self.key}: no call allowed within {self.max_wait:g} s "
                    f"(limit {self.per_second} per second)"
                )
            self._sleep(self._poll)


def in_process_limiter(key: str, *, per_second: int, max_wait: float = 10.0) -> RateLimiter:
    """A limiter whose budget this process alone draws on."""
    backend = StubBackend()  # type: ignore[no-untyped-call]
    return RateLimiter(backend, key, per_second=per_second, max_wait=max_wait)


def redis_limiter(
    redis_url: str, key: str, *, per_second: int, max_wait: float = 10.0
) -> RateLimiter:
    """A limiter whose budget every process using the same Redis and key shares."""
    return RateLimiter(RedisBackend(url=redis_url), key, per_second=per_second, max_wait=max_wait)
