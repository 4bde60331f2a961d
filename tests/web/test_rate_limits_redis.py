"""The per-key rate limit is one budget for every ``omvant serve`` process when Redis is set."""

from __future__ import annotations

import time
import uuid

import pytest

from producers.web.rate_limits import KeyRateLimits

pytestmark = pytest.mark.integration


def test_two_processes_share_one_budget_through_redis(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/8"
    now = [float(int(time.time()))]  # one second for both processes, however slow the run

    def clock() -> float:
        return now[0]

    first, second = KeyRateLimits(url, clock=clock), KeyRateLimits(url, clock=clock)
    key = f"k-{uuid.uuid4().hex[:8]}"
    allowed = [limits.allow(key, 3) for limits in (first, second) * 3]
    assert allowed == [True, True, True, False, False, False]
    alone = KeyRateLimits(None, clock=clock)
    assert sum(alone.allow(key, 3) for _ in range(6)) == 3  # in-process: its own budget
    now[0] += 1  # the next second: both processes have a new shared budget
    assert [limits.allow(key, 3) for limits in (second, first) * 2] == [True, True, True, False]
