"""The per-key rate limit is one budget for every ``omvant serve`` process when Redis is set."""

from __future__ import annotations

import time
import uuid

import pytest

from producers.web.rate_limits import KeyRateLimits

pytestmark = pytest.mark.integration


def test_two_processes_share_one_budget_through_redis(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/8"
    first, second = KeyRateLimits(url), KeyRateLimits(url)
    key = f"k-{uuid.uuid4().hex[:8]}"
    time.sleep(1 - time.time() % 1 + 0.01)  # start just after a second begins
    allowed = [limits.allow(key, 3) for limits in (first, second) * 3]
    assert sum(allowed) == 3, allowed
    alone = KeyRateLimits(None)
    assert sum(alone.allow(key, 3) for _ in range(6)) == 3  # in-process: its own budget
