"""Per-channel send rates (e.g. SMS 50/s) as token buckets.

``RedisRateLimiter`` keeps one bucket per channel in Redis, so every worker process on every
host shares the limit; ``InProcessRateLimiter`` limits one process (the embedded set-up).
A bucket holds at most one second's tokens, so a burst never exceeds the rate for long.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any


class RateLimiter(abc.ABC):
    """Hands out permission to send, one notification at a time, per channel."""

    @abc.abstractmethod
    def try_acquire(self, channel: str) -> float:
        """Take a token if there is one and return 0; else return the seconds to wait."""

    def acquire(self, channel: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait until a token for ``channel`` is free and take it."""
        while (wait := self.try_acquire(channel)) > 0:
            sleep(wait)


class Unlimited(RateLimiter):
    """No limit (channels without a configured rate)."""

    def try_acquire(self, channel: str) -> float:
        return 0.0


class InProcessRateLimiter(RateLimiter):
    """Token buckets in this process's memory."""

    def __init__(
        self, rates: Mapping[str, float], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rates = dict(rates)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def try_acquire(self, channel: str) -> float:
        rate = self.rates.get(channel)
        if not rate or rate <= 0:
            return 0.0
        capacity = max(1.0, rate)
        with self._lock:
            now = self.clock()
            tokens, stamp = self._buckets.get(channel, (capacity, now))
            tokens = min(capacity, tokens + (now - stamp) * rate)
            if tokens >= 1:
                self._buckets[channel] = (tokens - 1, now)
                return 0.0
            self._buckets[channel] = (tokens, now)
            return (1 - tokens) / rate


_TAKE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or capacity
local stamp = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], 60)
return tostring(wait)
"""


class RedisRateLimiter(RateLimiter):
    """Token buckets in Redis (one hash per channel), updated atomically by a Lua script."""

    def __init__(self, client: Any, rates: Mapping[str, float], *, prefix: str = "") -> None:
        self.client = client
        self.rates = dict(rates)
        self.prefix = prefix
        self._take = client.register_script(_TAKE)

    def try_acquire(self, channel: str) -> float:
        rate = self.rates.get(channel)
        if not rate or rate <= 0:
            return 0.0
        key = f"omvant:{self.prefix}rate:{channel}"
        return float(self._take(keys=[key], args=[rate, max(1.0, rate)]))
