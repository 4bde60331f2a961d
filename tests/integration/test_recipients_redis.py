"""The directory cache and rate limit shared through a real Redis server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.unit.test_recipient_validation import (
    BLOCKED,
    BOTH,
    NO_ACCOUNT,
    SIMULATOR,
    RecordingDirectory,
)
from workers.adapters.directory_cache import CachedAccountDirectory, RedisAccountCache
from workers.adapters.directory_server import DirectoryServer
from workers.bootstrap import build_directory
from workers.rate_limit import RateLimitExceeded, redis_limiter
from workers.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str, queue_prefix: str) -> Iterator[redis.Redis]:
    """A Redis client; every key under this test's prefix is deleted afterwards."""
    connection = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield connection
    keys = list(connection.scan_iter(match=f"{queue_prefix}*"))
    if keys:
        connection.delete(*keys)
    connection.close()


def test_two_processes_share_cached_answers(client: redis.Redis, queue_prefix: str) -> None:
    first_inner, second_inner = RecordingDirectory(), RecordingDirectory()
    first = CachedAccountDirectory(
        first_inner, RedisAccountCache(client, ttl=60, prefix=queue_prefix)
    )
    other_client = redis.Redis(connection_pool=client.connection_pool)
    second = CachedAccountDirectory(
        second_inner, RedisAccountCache(other_client, ttl=60, prefix=queue_prefix)
    )
    assert first.lookup_many([BOTH, BLOCKED]) == SIMULATOR.lookup_many([BOTH, BLOCKED])
    answered = second.lookup_many([BLOCKED, BOTH, NO_ACCOUNT])
    assert answered == SIMULATOR.lookup_many([BLOCKED, BOTH, NO_ACCOUNT])
    assert first_inner.calls == [[BOTH, BLOCKED]]
    assert second_inner.calls == [[NO_ACCOUNT]]


def test_redis_keys_and_values_name_nobody_in_clear(client: redis.Redis, queue_prefix: str) -> None:
    cache = RedisAccountCache(client, ttl=60, prefix=queue_prefix)
    cache.put_many([SIMULATOR.account(BOTH)])
    keys = list(client.scan_iter(match=f"{queue_prefix}*"))
    assert len(keys) == 1
    stored = keys[0].decode() + (client.get(keys[0]) or b"").decode()
    assert BOTH not in stored and BOTH[2:] not in stored


def test_redis_entries_expire(client: redis.Redis, queue_prefix: str) -> None:
    cache = RedisAccountCache(client, ttl=0.2, prefix=queue_prefix)
    cache.put_many([SIMULATOR.account(BOTH)])
    assert BOTH in cache.get_many([BOTH])
    deadline = time.monotonic() + 5
    while cache.get_many([BOTH]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.get_many([BOTH]) == {}


def test_an_unreachable_cache_falls_back_to_the_directory() -> None:
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    inner = RecordingDirectory()
    cached = CachedAccountDirectory(inner, RedisAccountCache(dead, ttl=60))
    assert cached.lookup_many([BOTH]) == SIMULATOR.lookup_many([BOTH])
    assert inner.calls == [[BOTH]]


def test_the_rate_limit_is_shared_between_processes(
    redis_url: str, client: redis.Redis, queue_prefix: str
) -> None:
    key = f"{queue_prefix}directory-rate"
    first = redis_limiter(redis_url, key, per_second=3, max_wait=0)
    second = redis_limiter(redis_url, key, per_second=3, max_wait=0)
    allowed = refused = 0
    for index in range(40):
        try:
            (first if index % 2 else second).acquire()
            allowed += 1
        except RateLimitExceeded:
            refused += 1
    assert refused > 0
    assert 3 <= allowed <= 6  # one second's budget for both, or two if a second turned
    other = redis_limiter(redis_url, f"{queue_prefix}other", per_second=3, max_wait=0)
    other.acquire()  # another key has its own budget


def test_settings_with_redis_wire_a_shared_cache(redis_url: str, client: redis.Redis) -> None:
    with DirectoryServer(SIMULATOR) as server:
        directory = build_directory(Settings(directory_url=server.url, redis_url=redis_url))
        try:
            assert isinstance(directory, CachedAccountDirectory)
            assert isinstance(directory.cache, RedisAccountCache)
            cache = directory.cache
            client.delete(cache.key(BOTH))
            assert directory.lookup_many([BOTH]) == SIMULATOR.lookup_many([BOTH])
            assert directory.lookup_many([BOTH]) == SIMULATOR.lookup_many([BOTH])
            assert server.requests == 1
        finally:
            client.delete(directory.cache.key(BOTH))  # type: ignore[attr-defined]
            directory.close()
