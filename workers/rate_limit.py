"""A blocking rate limit on calls to an outside system, shared through Redis when configured.

Built on dramatiq's ``WindowRateLimiter`` (at most ``per_second`` calls in any one second of
the clock), with its Redis backend so that every worker process draws on one budget, or its
in-process backend for the embedded setup. dramatiq's limiter only says yes or no; this waits
for a yes, up to ``max_wait`` seconds.

A cut Redis connection (``CLIENT KILL``, a restart, a network blip) fails the limiter's
``WATCH`` pipeline at once, and redis-py does not retry a watched pipeline: the limiter asks
again on a fresh connection a few times, then says ``RateLimitExceeded`` (transient), so a
caller never meets a Redis error in the middle of its work (the notification sender had
claimed its group and left it in doubt when one escaped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

BACKEND_ATTEMPTS = 3
"""Tries on a backend that did not answer (each on a fresh connection) before giving up."""
_BACKEND_DOWN = (redis.ConnectionError, redis.TimeoutError)


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
        self._limiter = _Window(  # type: ignore[no-untyped-call]
            backend, key, limit=self.per_second, window=1
        )

    def acquire(self) -> None:
        """Wait until one more call is allowed.

        Raises
        ------
        RateLimitExceeded
            No call was allowed within ``max_wait`` seconds, or the backend (Redis) did not
            answer ``BACKEND_ATTEMPTS`` times in a row.
        """
        self.take(1)

    def take(self, wanted: int, *, wait: bool = True) -> int:
        """Take up to ``wanted`` turns at once (a batch of sends): as many as the current
        second has left, at least one; waits for the first as ``acquire`` does (``wait=False``:
        0 when none is left now). The batch is sent at once, so it never takes more than one
        second's budget.

        Raises
        ------
        RateLimitExceeded
            As ``acquire`` (never with ``wait=False`` for want of turns).
        """
        deadline = time.monotonic() + self.max_wait
        failures = 0
        while True:
            try:
                taken = self._take_now(min(max(1, wanted), self.per_second))
            except _BACKEND_DOWN as exc:
                failures += 1
                if failures >= BACKEND_ATTEMPTS:
                    raise RateLimitExceeded(
                        f"{self.key}: the rate limit's Redis did not answer "
                        f"({type(exc).__name__}, {failures} times)"
                    ) from exc
                self._sleep(self._poll * failures)
                continue
            failures = 0
            if taken or not wait:
                return taken
            if time.monotonic() >= deadline:
                raise RateLimitExceeded(
                    f"{self.key}: no call allowed within {self.max_wait:g} s "
                    f"(limit {self.per_second} per second)"
                )
            self._sleep(self._poll)

    def _take_now(self, wanted: int) -> int:
        """Take ``wanted`` turns of this second, or if they are not left, half as many, and so
        on down to one; 0 when none is left."""
        while wanted >= 1:
            if self._limiter.acquire_many(wanted):
                return wanted
            wanted //= 2
        return 0


class _Window(WindowRateLimiter):
    """dramatiq's window limiter, taking several turns in one step (its ``acquire`` takes one)."""

    def acquire_many(self, amount: int) -> bool:
        """Take ``amount`` turns of the window if they are left (all or none)."""
        keys = self._get_keys()  # type: ignore[no-untyped-call]
        return bool(
            self.backend.incr_and_sum(
                keys[0],
                self._get_keys,
                amount,
                maximum=self.limit,
                ttl=self.window_millis,
            )
        )


def in_process_limiter(key: str, *, per_second: int, max_wait: float = 10.0) -> RateLimiter:
    """A limiter whose budget this process alone draws on."""
    backend = StubBackend()  # type: ignore[no-untyped-call]
    return RateLimiter(backend, key, per_second=per_second, max_wait=max_wait)


def redis_limiter(
    redis_url: str, key: str, *, per_second: int, max_wait: float = 10.0
) -> RateLimiter:
    """A limiter whose budget every process using the same Redis and key shares."""
    return RateLimiter(RedisBackend(url=redis_url), key, per_second=per_second, max_wait=max_wait)
