"""Is the broker up? Is the database? Asked before a worker starts, with backoff.

A worker started while its broker or database is down (a host rebooting, a deployment that
starts everything at once) should wait for them, saying so in one line per attempt, and give
up after ``OMVANT_STARTUP_TIMEOUT_SECONDS`` with one line and exit status 2, so that its
supervisor can tell "my servers are down" from a crash. ``wait_for_servers`` does that; the
probes are ``workers.server_probe``'s (one wording everywhere: the masked URL, the cause and
what to check), each bounded by ``OMVANT_CONNECT_TIMEOUT``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass


class ServerUnreachable(RuntimeError):
    """A server did not answer; the message says which, where (password masked) and why."""


def backoff_delays(first: float = 0.5, factor: float = 2.0, cap: float = 10.0) -> Iterator[float]:
    """0.5, 1, 2, 4, 8, 10, 10, ... seconds: the waits between attempts (pure)."""
    delay = first
    while True:
        yield min(delay, cap)
        delay *= factor


@dataclass(frozen=True)
class Check:
    """One server to wait for: its name in messages and how to ask it."""

    name: str
    probe: Callable[[], None]


def wait_for_servers(
    checks: Sequence[Check],
    *,
    timeout: float,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Ask each server until all answer, backing off between attempts; returns the attempts.

    Says one line per failed attempt (which server, why, when the next try is).

    Raises
    ------
    ServerUnreachable
        A server still did not answer after ``timeout`` seconds; the message says which and
        that the worker gave up.
    """
    started = clock()
    delays = backoff_delays()
    attempt = 0
    pending = list(checks)
    while True:
        attempt += 1
        failure: ServerUnreachable | None = None
        for check in list(pending):
            try:
                check.probe()
            except ServerUnreachable as exc:
                failure = exc
                break
            pending.remove(check)
        if failure is None:
            return attempt
        waited = clock() - started
        if waited >= timeout:
            tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
            raise ServerUnreachable(
                f"cannot reach {failure} (gave up after {tries} in {waited:.0f} s, "
                "OMVANT_STARTUP_TIMEOUT_SECONDS)"
            ) from failure
        delay = min(next(delays), timeout - waited)
        say(f"waiting for {failure} (attempt {attempt}, next in {delay:.1f} s)")
        sleep(delay)


QUIET_LIBRARIES = ("pika", "kombu", "amqp", "alembic", "urllib3", "httpx", "httpcore")
"""Library loggers that are chatty at INFO (a line per connection, per migration plugin)."""


def quiet_libraries(level: int = logging.WARNING) -> None:
    """Raise the library loggers in ``QUIET_LIBRARIES`` to ``level``: their INFO lines say
    nothing an operator acts on, and pika logs every failed connection at ERROR or worse."""
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.getLogger(name).level))
    logging.getLogger("pika").setLevel(logging.CRITICAL)
