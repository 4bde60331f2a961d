"""Which failures are outages (wait and retry the whole chunk) and which may be one bad case.

An outage of an outside system, the database or the broker fails every case of a chunk alike:
splitting the chunk would only multiply messages and, once retries run out, dead-letter every
case. Such a chunk is retried whole with backoff. Any other exception may be one poison case,
so the shell splits the chunk and lets the single cases find out.

Retries are counted (``OMVANT_MAX_RETRIES``) for failures that may be the case's own, and timed
for outages: a chunk failing because a server is away is retried, backing off to 20 s, for
``OMVANT_OUTAGE_RETRY_SECONDS`` (10 minutes) before it is dead-lettered. Counted alone, five
retries waited about 6 s in all, so a 25 s SMS-gateway outage dead-lettered whole chunks and
failed every case in them (a chaos run on RabbitMQ: 1,175 of 2,000 cases).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable

import dramatiq
import dramatiq.errors
import httpx
import sqlalchemy.exc

from workers.adapters.account_directory import DirectoryUnavailable
from workers.adapters.degraded import ProviderUnavailable
from workers.adapters.inbox import InboxUnavailable
from workers.adapters.notifiers import NotifierUnavailable
from workers.attachments.scanner import ScannerUnavailable
from workers.rate_limit import RateLimitExceeded

OUTAGES: tuple[type[BaseException], ...] = (
    DirectoryUnavailable,
    InboxUnavailable,
    NotifierUnavailable,
    ProviderUnavailable,
    ScannerUnavailable,
    RateLimitExceeded,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    dramatiq.errors.BrokerConnectionError,
    httpx.TransportError,
    builtins.TimeoutError,
    builtins.ConnectionError,
)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` is an outage that fails a whole chunk alike (retry it whole)."""
    return isinstance(error, OUTAGES)


MIN_BACKOFF_MS = 200
"""The first retry's delay; each next one doubles (dramatiq adds up to as much again)."""
MAX_BACKOFF_MS = 20_000
"""The longest delay between two retries."""


def retries_for(seconds: float) -> int:
    """How many retries, backing off from ``MIN_BACKOFF_MS`` to ``MAX_BACKOFF_MS``, wait at
    least ``seconds`` in all (pure)."""
    waited, delay, count = 0.0, MIN_BACKOFF_MS / 1000, 0
    while waited < seconds:
        waited += min(delay, MAX_BACKOFF_MS / 1000)
        delay *= 2
        count += 1
    return count


def retry_when(max_retries: int, outage_seconds: float) -> Callable[[int, BaseException], bool]:
    """dramatiq's ``retry_when``: retry a failure that may be the message's own ``max_retries``
    times; retry an outage (or a ``Retry`` asked for by a 429) until it has been retried for
    ``outage_seconds``."""
    outage_retries = max(max_retries, retries_for(outage_seconds))

    def decide(retries: int, exception: BaseException) -> bool:
        outage = is_outage(exception) or isinstance(exception, dramatiq.Retry)
        return retries < (outage_retries if outage else max_retries)

    return decide
