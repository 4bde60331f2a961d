"""The SMS rate limit is one bucket in Redis, shared by every worker process."""

from __future__ import annotations

import pytest
import redis

from workers.adapters.rate_limits import RedisRateLimiter

pytestmark = pytest.mark.integration


def test_the_redis_bucket_is_shared_by_every_limiter_on_the_same_redis(
    redis_url: str, queue_prefix: str
) -> None:
    first_client = redis.Redis.from_url(redis_url)
    second_client = redis.Redis.from_url(redis_url)
    try:
        first = RedisRateLimiter(first_client, {"sms": 5}, prefix=queue_prefix)
        second = RedisRateLimiter(second_client, {"sms": 5}, prefix=queue_prefix)
        taken = [first.try_acquire("sms") == 0 for _ in range(3)]
        taken += [second.try_acquire("sms") == 0 for _ in range(3)]
        assert taken == [True] * 5 + [False]
        assert 0 < first.try_acquire("sms") <= 0.2
        assert first.try_acquire("email") == 0  # no rate configured for e-mail here
    finally:
        first_client.delete(f"omvant:{queue_prefix}rate:sms")
        first_client.close()
        second_client.close()
