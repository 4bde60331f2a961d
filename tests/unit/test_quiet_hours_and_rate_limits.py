"""SMS quiet hours (local time, over midnight) and per-channel token buckets."""

from __future__ import annotations

import datetime as dt

from workers.adapters.rate_limits import InProcessRateLimiter
from workers.quiet_hours import QuietHours

QUIET = QuietHours.parse("21:00-08:00", "Europe/Stockholm")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[misc]


def test_quiet_hours_run_over_midnight_in_local_time() -> None:
    assert QUIET is not None
    # November: Stockholm is UTC+1
    assert QUIET.ends_at(utc(2026, 11, 25, 19, 59)) is None  # 20:59
    assert QUIET.ends_at(utc(2026, 11, 25, 20, 0)) == utc(2026, 11, 26, 7, 0)  # 21:00
    assert QUIET.ends_at(utc(2026, 11, 26, 5, 0)) == utc(2026, 11, 26, 7, 0)  # 06:00
    assert QUIET.ends_at(utc(2026, 11, 26, 7, 0)) is None  # 08:00
    # July: UTC+2
    assert QUIET.ends_at(utc(2026, 7, 1, 20, 30)) == utc(2026, 7, 2, 6, 0)


def test_no_quiet_hours_when_the_setting_is_empty() -> None:
    assert QuietHours.parse("", "Europe/Stockholm") is None


def test_a_token_bucket_gives_the_rate_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = InProcessRateLimiter({"sms": 50}, clock=lambda: now[0])
    assert [limiter.try_acquire("sms") for _ in range(50)] == [0.0] * 50
    assert abs(limiter.try_acquire("sms") - 0.02) < 1e-9
    now[0] += 0.1
    assert [limiter.try_acquire("sms") for _ in range(5)] == [0.0] * 5
    assert limiter.try_acquire("sms") > 0
    assert limiter.try_acquire("email") == 0.0  # no rate set: unlimited


def test_acquire_waits_as_long_as_the_bucket_says() -> None:
    now = [0.0]
    limiter = InProcessRateLimiter({"sms": 2}, clock=lambda: now[0])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    for _ in range(4):
        limiter.acquire("sms", sleep=sleep)
    assert abs(sum(slept) - 1.0) < 1e-9
