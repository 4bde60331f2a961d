"""Is the broker up? Is the database? Asked before a worker starts, with backoff.

A worker started while its broker or database is down (a host rebooting, a deployment that
starts everything at once) should wait for them, saying so in one line per attempt, and give
up after ``OMVANT_STARTUP_TIMEOUT_SECONDS`` with one line and exit status 2, so that its
supervisor can tell "my servers are down" from a crash. ``wait_for_servers`` does that; the
probes are real protocol handshakes (a Redis ``PING``, an AMQP connection, a ``SELECT 1``),
each bounded by a short timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from workers.server_probe import mask_url


class ServerUnreachable(RuntimeError):
    """A server did not answer; the message says which, where (password masked) and why."""


def _one_line(error: BaseException) -> str:
    """The error in one line: pika's errors keep their reason in ``args``, not in ``str``."""
    text = str(error) or "; ".join(str(a) for a in error.args) or type(error).__name__
    return " ".join(text.split()).rstrip(".")[:240]


def probe_broker(url: str, timeout: float = 3.0) -> None:
    """Connect to the broker at ``url`` and let it answer (Redis ``PING``, an AMQP handshake).

    Raises
    ------
    ServerUnreachable
        It did not answer within ``timeout`` seconds, or refused us.
    """
    scheme = url.split("://", 1)[0].lower()
    try:
        if scheme in {"redis", "rediss"}:
            import redis

            client = redis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            )
            try:
                client.ping()
            finally:
                client.close()
        elif scheme in {"amqp", "amqps"}:
            import pika

            parameters = pika.URLParameters(url)
            parameters.socket_timeout = timeout
            parameters.blocked_connection_timeout = timeout
            parameters.connection_attempts = 1
            parameters.stack_timeout = timeout
            pika.BlockingConnection(parameters).close()
    except Exception as exc:
        raise ServerUnreachable(f"the broker {mask_url(url)}: {_one_line(exc)}") from exc


def probe_database(url: str, timeout: float = 3.0) -> None:
    """Connect to the database at ``url`` and run ``SELECT 1``.

    Raises
    ------
    ServerUnreachable
        It did not answer within ``timeout`` seconds, or refused us.
    """
    import sqlalchemy as sa

    args = {"connect_timeout": max(1, int(timeout))} if url.startswith("postgresql") else {}
    engine = sa.create_engine(url, connect_args=args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        why = _one_line(getattr(exc, "orig", None) or exc)
        raise ServerUnreachable(f"the database {mask_url(url)}: {why}") from exc
    finally:
        engine.dispose()


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
            raise ServerUnreachable(
                f"cannot reach {failure} (gave up after {attempt} attempts in {waited:.0f} s, "
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
