"""Which failures are outages (wait and retry the whole chunk) and which may be one bad case.

An outage of an outside system, the database or the broker fails every case of a chunk alike:
splitting the chunk would only multiply messages and, once retries run out, dead-letter every
case. Such a chunk is retried whole with backoff. Any other exception may be one poison case,
so the shell splits the chunk and lets the single cases find out.
"""

from __future__ import annotations

import builtins

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
