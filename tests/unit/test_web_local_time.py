"""The console's ``local_time`` filter: a stored time is UTC, shown in the clinic's zone,
whatever zone the server runs in (SQLite gives times back naive: they are UTC too)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from producers.web.wording import jinja_filters


@pytest.fixture
def server_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A server whose own zone is not UTC, so a naive time read as local would show wrong."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("server_in_new_york")
def test_a_naive_stored_time_is_shown_as_utc_in_the_clinics_zone() -> None:
    local = cast(Callable[[object], str], jinja_filters(ZoneInfo("Europe/Stockholm"))["local_time"])
    assert local("2026-12-01T12:00:00") == "2026-12-01 13:00:00"
    assert local(dt.datetime(2026, 7, 1, 12, 0)) == "2026-07-01 14:00:00"
    assert local(dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)) == "2026-07-01 14:00:00"
    assert local(None) == "–"
