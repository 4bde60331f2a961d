"""SMS quiet hours (local time, over midnight) and per-channel token buckets."""

from __future__ import annotations

import contextlib
import datetime as dt
import time

from workers.adapters.notifier_wiring import build_rate_limits
from workers.quiet_hours import QuietHours
from workers.rate_limit import RateLimitExceeded
from workers.settings import Settings

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


def test_each_channel_has_its_own_limit_and_a_full_one_is_a_transient_failure() -> None:
    settings = Settings(sms_per_second=3, email_per_second=0, queue_prefix="t-limits.")
    for _ in range(5):  # the window is a clock second: try again if one ends mid-test
        limits = build_rate_limits(settings)
        for limiter in limits.limiters.values():
            limiter.max_wait = 0
        second = int(time.time())
        taken = 0
        with contextlib.suppress(RateLimitExceeded):
            for _ in range(5):
                limits.acquire("sms")
                taken += 1
        for _ in range(20):
            limits.acquire("email")  # no limit set for e-mail
        if int(time.time()) == second:
            break
    assert taken == 3
    assert set(limits.limiters) == {"sms"}
