"""The SMS rate limit is one budget in Redis, shared by every worker process."""

from __future__ import annotations

import contextlib
import time

import pytest
import redis

from workers.adapters.notifier_wiring import build_rate_limits
from workers.rate_limit import RateLimitExceeded
from workers.settings import Settings

pytestmark = pytest.mark.integration


def test_two_workers_on_one_redis_share_the_sms_budget(redis_url: str, queue_prefix: str) -> None:
    settings = Settings(redis_url=redis_url, queue_prefix=queue_prefix, sms_per_second=4)
    for _ in range(5):  # the window is a clock second: try again if one ends mid-test
        first, second = build_rate_limits(settings), build_rate_limits(settings)
        for limits in (first, second):
            limits.limiters["sms"].max_wait = 0
        started = int(time.time())
        taken = 0
        with contextlib.suppress(RateLimitExceeded):
            for limits in (first, second, first, second, first, second):
                limits.acquire("sms")
                taken += 1
        if int(time.time()) == started:
            break
        time.sleep(0.1)
    assert taken == 4
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"*{queue_prefix}notify:*"):
        client.delete(key)
    client.close()
