"""The directory cache in memory, the in-process rate limit, the HTTP client's error mapping
(httpx's own mock transport stands in for the network) and the wiring by settings."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.clocks import ManualClock
from tests.unit.test_recipient_validation import (
    BLOCKED,
    BOTH,
    NO_ACCOUNT,
    SIMULATOR,
    RecordingDirectory,
)
from workers.adapters.account_directory import (
    Account,
    AccountStatus,
    DirectoryRefused,
    DirectoryUnavailable,
    SimulatedAccountDirectory,
    account_to_json,
)
from workers.adapters.directory_cache import CachedAccountDirectory, InMemoryAccountCache
from workers.adapters.http_account_directory import HttpAccountDirectory
from workers.bootstrap import build_directory
from workers.rate_limit import RateLimitExceeded, in_process_limiter
from workers.settings import Settings


def test_the_cache_answers_repeats_and_asks_only_about_the_rest() -> None:
    inner = RecordingDirectory()
    cached = CachedAccountDirectory(inner, InMemoryAccountCache(ttl=60))
    first = cached.lookup_many([BOTH, BLOCKED])
    second = cached.lookup_many([BLOCKED, BOTH, NO_ACCOUNT])
    assert inner.calls == [[BOTH, BLOCKED], [NO_ACCOUNT]]
    assert first == SIMULATOR.lookup_many([BOTH, BLOCKED])
    assert second == SIMULATOR.lookup_many([BLOCKED, BOTH, NO_ACCOUNT])
    assert (cached.hits, cached.misses) == (2, 3)


def test_a_number_the_directory_does_not_know_is_cached_as_no_account() -> None:
    class Empty(RecordingDirectory):
        def lookup_many(self, personnummer: object) -> dict[str, Account]:
            super().lookup_many(personnummer)  # type: ignore[arg-type]
            return {}

    inner = Empty()
    cached = CachedAccountDirectory(inner, InMemoryAccountCache(ttl=60))
    assert cached.lookup_many([BOTH])[BOTH].status == AccountStatus.NO_ACCOUNT
    assert cached.lookup_many([BOTH])[BOTH].status == AccountStatus.NO_ACCOUNT
    assert len(inner.calls) == 1


def test_entries_expire_after_their_time_to_live() -> None:
    clock = ManualClock(1000.0)
    cache = InMemoryAccountCache(ttl=30, clock=clock)
    cache.put_many([SIMULATOR.account(BOTH)])
    clock.now += 29.9
    assert BOTH in cache.get_many([BOTH])
    clock.now += 0.2
    assert cache.get_many([BOTH]) == {}


def test_the_memory_cache_is_bounded_and_drops_the_oldest() -> None:
    cache = InMemoryAccountCache(ttl=60, max_entries=2)
    cache.put_many([SIMULATOR.account(n) for n in (BOTH, BLOCKED, NO_ACCOUNT)])
    assert set(cache.get_many([BOTH, BLOCKED, NO_ACCOUNT])) == {BLOCKED, NO_ACCOUNT}


def test_the_rate_limit_refuses_calls_beyond_its_budget() -> None:
    limiter = in_process_limiter("test-refuses", per_second=3, max_wait=0)
    allowed = refused = 0
    for _ in range(40):
        try:
            limiter.acquire()
            allowed += 1
        except RateLimitExceeded:
            refused += 1
    assert refused > 0
    assert 3 <= allowed <= 6  # one second, or two if the loop straddled a second's turn


def test_the_rate_limit_waits_for_the_next_second_rather_than_fail() -> None:
    limiter = in_process_limiter("test-waits", per_second=2, max_wait=3)
    for _ in range(3):
        limiter.acquire()  # the third waits for a new second


def mock_directory(handler: httpx.MockTransport, **kwargs: object) -> HttpAccountDirectory:
    return HttpAccountDirectory("http://directory.test", transport=handler, **kwargs)  # type: ignore[arg-type]


def answer_from_simulator(request: httpx.Request) -> httpx.Response:
    numbers = json.loads(request.content)["personnummer"]
    accounts = SIMULATOR.lookup_many(numbers)
    return httpx.Response(200, json={"accounts": [account_to_json(a) for a in accounts.values()]})


def test_the_http_client_batches_and_reads_the_answer() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(len(json.loads(request.content)["personnummer"]))
        return answer_from_simulator(request)

    directory = mock_directory(httpx.MockTransport(handler), batch_size=2)
    numbers = [BOTH, BLOCKED, NO_ACCOUNT, BOTH]
    assert directory.lookup_many(numbers) == SIMULATOR.lookup_many([BOTH, BLOCKED, NO_ACCOUNT])
    assert seen == [2, 1]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b"{}", DirectoryUnavailable),
        (503, b"{}", DirectoryUnavailable),
        (408, b"{}", DirectoryUnavailable),
        (429, b"{}", DirectoryUnavailable),
        (200, b"not json", DirectoryUnavailable),
        (200, b'{"accounts": [{"status": "active"}]}', DirectoryUnavailable),
        (200, b'{"accounts": [{"personnummer": "1", "status": "odd"}]}', DirectoryUnavailable),
        (400, b"{}", DirectoryRefused),
        (401, b"{}", DirectoryRefused),
        (404, b"{}", DirectoryRefused),
        (422, b"{}", DirectoryRefused),
    ],
)
def test_the_http_client_maps_failures_to_transient_or_permanent(
    status: int, body: bytes, error: type[Exception]
) -> None:
    directory = mock_directory(httpx.MockTransport(lambda _r: httpx.Response(status, content=body)))
    with pytest.raises(error) as raised:
        directory.lookup_many([BOTH])
    assert BOTH not in str(raised.value) and BOTH[2:] not in str(raised.value)


def test_a_rate_limit_that_will_not_yield_is_a_transient_failure() -> None:
    limiter = in_process_limiter("test-http", per_second=1, max_wait=0)
    transport = httpx.MockTransport(answer_from_simulator)
    directory = mock_directory(transport, batch_size=1, limiter=limiter)
    with pytest.raises(DirectoryUnavailable, match="no call allowed"):
        directory.lookup_many([BOTH, BLOCKED, NO_ACCOUNT])


def test_settings_choose_the_directory() -> None:
    simulated = build_directory(Settings(seed=7))
    assert isinstance(simulated, SimulatedAccountDirectory) and simulated.seed == 7
    wired = build_directory(Settings(directory_url="http://127.0.0.1:9", directory_rate=5))
    assert isinstance(wired, CachedAccountDirectory)
    assert isinstance(wired.cache, InMemoryAccountCache)
    assert isinstance(wired.directory, HttpAccountDirectory)
    assert wired.directory.limiter is not None and wired.directory.limiter.per_second == 5
    uncached = build_directory(
        Settings(directory_url="http://127.0.0.1:9", directory_cache_seconds=0)
    )
    assert isinstance(uncached, HttpAccountDirectory)
    wired.close()
    uncached.close()
