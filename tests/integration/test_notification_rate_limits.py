"""The SMS rate limit is one budget in Redis, shared by every worker process."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import redis

from producers.chaos.servers import RedisServer
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


def test_a_cut_redis_connection_is_asked_again_not_raised_to_the_sender(
    own_redis: RedisServer,
) -> None:
    limits = build_rate_limits(Settings(redis_url=own_redis.url, sms_per_second=100_000))
    errors: list[BaseException] = []
    done = threading.Event()

    def sender() -> None:  # a send thread, acquiring as fast as it can
        while not done.is_set():
            try:
                limits.acquire("sms")
            except Exception as exc:  # what the sender would meet
                errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):  # cut while WATCH ... EXEC pipelines are in flight
            time.sleep(0.05)
            own_redis.cut_clients()
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=10)
    # a redis.ConnectionError here left a claimed send in doubt
    assert errors == []


def test_a_redis_that_stays_away_is_a_transient_rate_limit_failure(
    own_redis: RedisServer,
) -> None:
    limits = build_rate_limits(Settings(redis_url=own_redis.url, sms_per_second=1000))
    limits.acquire("sms")
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(RateLimitExceeded, match="did not answer"):
        limits.acquire("sms")
    assert time.monotonic() - started < 5  # a few quick tries, not the minute-long wait
